import contextlib
import copy
import os
from pathlib import Path

import pytest

os.environ.setdefault("HPNB_PROGRESS", "0")
os.environ.setdefault("HPNB_CHECKPOINT_SECONDS", "0")  # checkpoint every epoch: tests interrupt runs mid-way
os.environ.setdefault("HPNB_CPU_WORKERS", "1")  # train in-process; tests/test_workers.py tests the workers
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def graph_nodes(t) -> set[str]:
    """The names of every autograd node behind tensor ``t`` (which kernels' backward it will run)."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in seen:
            seen.add(type(node).__name__)
            todo += [n for n, _ in node.next_functions]
    return seen


def ensemble_conv_case(side: int, layout: str, k: int = 3):
    """Stacked 3×3 conv weights (K, 4, 2, 3, 3) and member batches (K, 5, 2, side, side) in float64, the batches
    laid out as hpnb lays them ("members beside channels") or plainly stacked."""
    import torch

    from hpnb.batches import members_beside_channels

    g = torch.Generator().manual_seed(1)
    weights = torch.randn(k, 4, 2, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(k, 5, 2, side, side, generator=g, dtype=torch.float64)
    return weights, members_beside_channels(x) if layout == "members beside channels" else x


def tiny_dict(**overrides) -> dict:
    """A run that trains in well under a second: the MNIST net on 12×12 digits."""
    raw = {
        "data": {"name": "digits", "image_size": 12, "channels": 1, "val_size": 0.1},
        "model": {"name": "mnist_cnn"},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "epochs": 3,
        "batch_size": 64,
        "device": "cpu",
    }
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


@pytest.fixture
def tiny():
    return tiny_dict


@pytest.fixture
def store(tmp_path):
    from hpnb import RunStore

    return RunStore(tmp_path / "runs")


# An ensemble slow enough to be killed mid-way (≈ 0.5 s an epoch): augmentation and dropout, so the generator
# states must survive the kill too.
SLOW_ENSEMBLE = [tiny_dict(model={"name": "cifar_cnn"}, data={"name": "digits", "image_size": 16, "channels": 3,
                                                               "augment": True, "crop_padding": 2},
                           batch_size=32, epochs=8, seed=seed, optimizer={"name": "sgd", "lr": lr, "momentum": 0.9})
                 for seed, lr in ((0, 0.01), (1, 0.01), (0, 0.02))]


# --------------------------------------------------------------------------- fault-injection figures
# Every fault-injection case records whether it was handled; the table is printed at the end of the run,
# passing or not, so CI's log shows what was tried (tests/test_faults.py, test_data.py).
FAULT_FIGURES: dict[str, list[int]] = {}


def record_fault(category: str, handled: bool) -> None:
    tried_handled = FAULT_FIGURES.setdefault(category, [0, 0])
    tried_handled[0] += 1
    tried_handled[1] += bool(handled)


class fault_case(contextlib.ContextDecorator):
    """``with fault_case("category"):`` (or ``@fault_case(...)`` on a test) counts the case as tried, and as
    handled if the block passes."""

    def __init__(self, category: str):
        self.category = category

    def __enter__(self):
        return self

    def __exit__(self, kind, value, trace):
        record_fault(self.category, kind is None)
        return False


def pytest_terminal_summary(terminalreporter):
    if not FAULT_FIGURES:
        return
    width = max(len(c) for c in FAULT_FIGURES) + 2
    terminalreporter.section("fault injection: inputs and faults tried / handled")
    terminalreporter.write_line(f"{'category':<{width}}{'tried':>7}{'handled':>9}")
    for category, (tried, handled) in FAULT_FIGURES.items():
        terminalreporter.write_line(f"{category:<{width}}{tried:>7}{handled:>9}")
    rows = [v for c, v in FAULT_FIGURES.items() if not c.startswith(" ")]  # indented rows are "of which"
    tried, handled = (sum(v[i] for v in rows) for i in (0, 1))
    terminalreporter.write_line(f"{'total':<{width}}{tried:>7}{handled:>9}")
