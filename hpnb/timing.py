"""Timing the real training loop on random data of the real shape, so a run's cost on this device is known
without its dataset: split sizes computed from the data config, stand-in tensors, and the measured seconds
per training step and per evaluated sample of an ensemble."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from .batches import EvalBatches, member_eval_batch
from .config import DataConfig, RunConfig
from .data import STATS, DataSplits, TensorSet, load_data
from .stack import ModelStack
from .loop import build, evaluate, fit_members, resolve_device, uses_channels_last

# Official splits: (input shape, train images, test images, classes)
OFFICIAL = {
    "cifar10": ((3, 32, 32), 50_000, 10_000, 10),
    "cifar100": ((3, 32, 32), 50_000, 10_000, 100),
    "mnist": ((1, 28, 28), 60_000, 10_000, 10),
    "fashion_mnist": ((1, 28, 28), 60_000, 10_000, 10),
}


@dataclass(frozen=True)
class Sizes:
    shape: tuple
    classes: int
    train: int
    val: int  # evaluated every epoch
    test: int  # evaluated every epoch or at the end; 0 when it is the validation split


def split_sizes(data: DataConfig) -> Sizes:
    """The split sizes ``load_data`` would produce, computed without the files (classes are balanced in
    CIFAR and nearly so in MNIST, so a class filter keeps that fraction)."""
    if data.name in ("digits", "synthetic"):  # bundled or generated: just load them
        s = load_data(data, "cpu")
        if s.val is s.test:
            return Sizes(s.input_shape, s.num_classes, len(s.train), len(s.test), 0)
        return Sizes(s.input_shape, s.num_classes, len(s.train), len(s.val) if s.val is not None else 0, len(s.test))
    if data.name == "higgs":
        shape, train, test, classes = (28,), data.train_size or 100_000, data.test_size or 20_000, 2
    else:
        shape, train, test, classes = OFFICIAL[data.name]
        if data.num_classes is not None:
            train, test = train * data.num_classes // classes, test * data.num_classes // classes
            classes = data.num_classes
        train, test = min(train, data.train_size or train), min(test, data.test_size or test)
    if data.validation == "holdout":
        val = int(data.val_size) if data.val_size >= 1 else math.ceil(data.val_size * train)
        return Sizes(shape, classes, train - val, val, test)
    if data.validation == "test":
        return Sizes(shape, classes, train, test, 0)
    return Sizes(shape, classes, train, 0, test)


def stand_in(cfg: RunConfig, sizes: Sizes, train: int, evaluated: int, device: torch.device) -> DataSplits:
    """Random data of the real shape and class count, ``train`` + ``evaluated`` samples, on ``device``."""
    def make(n: int) -> TensorSet:
        y = torch.randint(0, sizes.classes, (n,), device=device)
        if len(sizes.shape) == 3:
            return TensorSet(torch.randint(0, 256, (n, *sizes.shape), dtype=torch.uint8, device=device), y)
        return TensorSet(torch.randn(n, *sizes.shape, device=device), y)

    mean = std = None
    if len(sizes.shape) == 3:
        stats = STATS.get(cfg.data.name, ((0.5,) * sizes.shape[0], (0.25,) * sizes.shape[0]))
        mean, std = (torch.tensor(s[: sizes.shape[0]], device=device) for s in stats)
    held_out = make(evaluated) if evaluated else None
    return DataSplits(make(train), held_out, held_out, sizes.classes, mean, std, "random stand-in")


@dataclass
class EnsembleCost:
    """Measured cost of one ensemble on this device."""

    members: int
    step_seconds: float  # one training step of all members
    eval_per_sample: float  # seconds to evaluate one sample with all members

    def epoch_seconds(self, sizes: Sizes, batch_size: int, drop_last: bool) -> float:
        steps = sizes.train // batch_size if drop_last else math.ceil(sizes.train / batch_size)
        return steps * self.step_seconds + sizes.val * self.eval_per_sample


def timed_configs(cfgs: Sequence[RunConfig], device: str) -> list[RunConfig]:
    """The runs as the timing trains them: two epochs (the first pays for warm-up, compilation, graph capture),
    no test pass, no per-epoch probes; what sets the cost of a step is kept."""
    return [cfg.replace(**{"epochs": 2, "test_every_epoch": False, "device": device,
                           "schedule": {"name": "constant"}, "strategy": {"name": "none"},
                           "probes.activation_variance": False, "probes.cka": False}) for cfg in cfgs]


def measure(cfgs: Sequence[RunConfig], steps: int, evaluated: int | None = None) -> EnsembleCost:
    """Seconds per training step of ``cfgs`` trained together, and per evaluated sample, on their device."""
    device = resolve_device(cfgs[0].device)
    cfgs = timed_configs(cfgs, str(device))
    sizes = split_sizes(cfgs[0].data)
    if evaluated is None:
        evaluated = min(max(sizes.val + sizes.test, 1), 2 * cfgs[0].eval_batch_size)
    data = stand_in(cfgs[0], sizes, steps * cfgs[0].batch_size, evaluated, device)
    train_only = DataSplits(data.train, None, None, data.num_classes, data.mean, data.std, data.description)
    runs = fit_members(cfgs, progress=False, data=train_only)
    step_seconds = float(runs[0].history["seconds"].iloc[-1]) / steps
    eval_per_sample = 0.0
    if evaluated:
        stack = ModelStack([build(cfg, data, device) for cfg in cfgs])
        batches = EvalBatches(data.val, member_eval_batch(cfgs[0].eval_batch_size, len(cfgs)), data.mean, data.std,
                              uses_channels_last(cfgs[0], data, device))
        binary = sizes.classes == 2 or cfgs[0].probes.roc_auc
        evaluate(stack, batches, cfgs[0].amp, binary)
        start = time.perf_counter()
        evaluate(stack, batches, cfgs[0].amp, binary)  # ends with a host read, so it is synchronised
        eval_per_sample = (time.perf_counter() - start) / evaluated
    return EnsembleCost(len(cfgs), step_seconds, eval_per_sample)


__all__ = ["Sizes", "split_sizes", "stand_in", "EnsembleCost", "measure", "timed_configs", "OFFICIAL"]
