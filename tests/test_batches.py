import torch

from hpnb.batches import EpochDraws, EvalBatches, TrainBatches, normalise, random_crop
from hpnb.data import TensorSet


def test_random_crop_cuts_the_window_at_the_given_offsets():
    x = torch.arange(3 * 2 * 6 * 6, dtype=torch.uint8).view(3, 2, 6, 6)
    dy, dx = torch.tensor([0, 2, 4]), torch.tensor([4, 0, 2])
    out = random_crop(x, 2, dy, dx)
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(3):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 6, dx[i]:dx[i] + 6])
    assert torch.equal(random_crop(x, 2, torch.full((3,), 2), torch.full((3,), 2)), x)  # centre = no shift


def test_normalise_scales_uint8_images_per_channel_and_leaves_features_alone():
    x = torch.tensor([[[[255]], [[0]]]], dtype=torch.uint8)  # one 1×1 image, 2 channels
    out = normalise(x, torch.tensor([0.5, 0.25]), torch.tensor([0.25, 0.5]))
    assert out.flatten().tolist() == [2.0, -0.5]  # (1 - .5)/.25, (0 - .25)/.5
    features = torch.randn(4, 3)
    assert normalise(features, None, None) is features


def test_epoch_draws_come_from_the_runs_own_generator():
    draw = lambda seed: EpochDraws.draw(10, torch.Generator().manual_seed(seed), 2, True)  # noqa: E731
    a, b, c = draw(0), draw(0), draw(1)
    assert sorted(a.order.tolist()) == list(range(10))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("order", "dy", "dx", "flip"))
    assert not torch.equal(a.order, c.order)
    assert int(a.dy.min()) >= 0 and int(a.dy.max()) <= 4


def test_each_member_of_a_stack_gets_exactly_its_solo_batches():
    images = torch.randint(0, 256, (11, 3, 8, 8), dtype=torch.uint8)
    data = TensorSet(images, torch.arange(11))
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.2, 0.2])
    batches = TrainBatches(data, 4, mean, std, crop_padding=1, flip=True)
    seeds = [3, 7, 11]
    stacked = list(batches.batches(batches.draw([torch.Generator().manual_seed(s) for s in seeds])))
    assert len(stacked) == len(batches) == 3 and stacked[-1][0].shape == (3, 3, 3, 8, 8)  # partial batch of 3
    for k, seed in enumerate(seeds):
        alone = list(batches.batches(batches.draw([torch.Generator().manual_seed(seed)])))
        for (xs, ys), (xa, ya) in zip(stacked, alone):
            assert torch.equal(xs[k], xa[0]) and torch.equal(ys[k], ya[0])
    epoch_labels = torch.cat([y[0] for _, y in stacked])
    assert sorted(epoch_labels.tolist()) == list(range(11))  # every sample once per epoch


def test_drop_last_and_eval_batches_in_order():
    data = TensorSet(torch.full((10, 1, 2, 2), 255, dtype=torch.uint8), torch.arange(10))
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    assert len(TrainBatches(data, 4, mean, std, drop_last=True)) == 2
    assert TrainBatches(data, 4, mean, std, drop_last=True).seen() == 8
    assert len(TrainBatches(data, 4, mean, std)) == 3 and TrainBatches(data, 4, mean, std).seen() == 10
    evaluation = list(EvalBatches(data, 4, mean, std))
    assert [y.tolist() for _, y in evaluation] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(evaluation[0][0], torch.full((4, 1, 2, 2), 2.0))
