"""Model FLOPs counting, split sizes without the data, and the projected cost of a profile."""
import pytest
import torch

from hpnb import RunConfig
from hpnb.studies import load, validate_file
from hpnb.config import DataConfig
from hpnb.data import load_data
from hpnb.models import build_model
from hpnb.projection import project
from hpnb.timing import EnsembleCost, Sizes, split_sizes
from hpnb.utilisation import training_flops

from conftest import REPO


def test_training_flops_of_an_mlp_are_exact():
    batch, d_in, width, classes = 16, 28, 64, 2
    model = build_model("mlp", in_features=d_in, num_classes=classes, depth=2, width=width)
    x, y = torch.randn(batch, d_in), torch.randint(0, classes, (batch,))
    forward = 2 * batch * (d_in * width + width * width + width * classes)
    weight_grads = forward
    input_grads = 2 * batch * (width * width + width * classes)  # none for the first layer: x needs no gradient
    assert training_flops(model, x, y) == forward + weight_grads + input_grads
    assert all(p.grad is None for p in model.parameters())  # counting leaves no gradients behind


def test_training_flops_of_a_convolution_are_exact():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 10))
    x, y = torch.randn(4, 3, 6, 6), torch.randint(0, 10, (4,))
    conv = 2 * 4 * (6 * 6) * 8 * (3 * 9)  # per output value: 3×3×3 multiply-adds
    linear = 2 * 4 * (8 * 6 * 6) * 10
    # forward conv + its weight gradient; forward linear + weight and input gradients
    assert training_flops(model, x, y) == 2 * conv + 3 * linear


@pytest.mark.parametrize("data, expected", [
    ({"name": "cifar100", "num_classes": 50, "validation": "holdout", "val_size": 0.1},
     Sizes((3, 32, 32), 50, 22_500, 2_500, 5_000)),  # chapter 1
    ({"name": "cifar100", "validation": "holdout", "val_size": 10_000},
     Sizes((3, 32, 32), 100, 40_000, 10_000, 10_000)),  # chapter 2
    ({"name": "mnist", "validation": "test"}, Sizes((1, 28, 28), 10, 60_000, 10_000, 0)),  # chapter 3
    ({"name": "higgs", "train_size": 100_000, "test_size": 20_000, "validation": "test"},
     Sizes((28,), 2, 100_000, 20_000, 0)),  # chapter 4
])
def test_split_sizes_of_the_paper_datasets_without_their_files(data, expected):
    assert split_sizes(DataConfig(**data)) == expected


def test_split_sizes_of_bundled_data_match_the_loader():
    cfg = DataConfig(name="digits", image_size=16, channels=3, train_size=700, val_size=0.2)
    splits = load_data(cfg)
    assert split_sizes(cfg) == Sizes((3, 16, 16), 10, len(splits.train), len(splits.val), len(splits.test))


def test_epoch_cost_is_steps_plus_validation_time():
    sizes = Sizes((1, 28, 28), 10, 60_000, 10_000, 0)
    cost = EnsembleCost(members=4, step_seconds=0.002, eval_per_sample=0.0005)
    assert cost.epoch_seconds(sizes, 64, drop_last=False) == pytest.approx(938 * 0.002 + 5.0)  # ⌈60000/64⌉ steps
    assert cost.epoch_seconds(sizes, 64, drop_last=True) == pytest.approx(937 * 0.002 + 5.0)


def test_projection_covers_every_planned_run_of_a_chapter():
    chapter = "04_ldlt_lipschitz_init"
    table = project("smoke", [chapter[:2]], steps=2, device="cpu", root=REPO)
    notebook = REPO / "notebooks" / f"{chapter}.ipynb"
    runs = load(notebook).plan(validate_file(notebook, REPO / "params" / "smoke" / f"{chapter}.yaml")).configs()
    assert table.runs.sum() == len(runs)
    # two depths × two optimizers make four kinds of ensemble; the inits (He and two scales) × two seeds of
    # each kind train together
    assert len(table) == 4 and list(table.ensembles) == [str(3 * 2)] * 4
    assert (table.hours > 0).all()
