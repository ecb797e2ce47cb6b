"""``hpnb project``: how long a profile's chapters would take on this device, before training any of them.

Every run the chapters would train (``planned_runs``) is grouped by what sets its cost per sample (network,
optimizer, batch sizes, input shape, augmentation, per-step probe, device options). For each group, the real
training loop runs two short epochs on random data of the real shape; the second epoch's training time and
a timed evaluation pass give seconds per sample, which the real split sizes turn into seconds per epoch. No
dataset is needed, so a paper profile can be costed on a machine that does not hold its data.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .chapters import planned_runs
from .config import DataConfig, RunConfig
from .data import STATS, Batches, DataSplits, TensorSet, load_data
from .train import build, evaluate, fit, resolve_device

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


def cost_key(cfg: RunConfig) -> str:
    """What the time per sample depends on; runs with the same key cost the same per epoch."""
    return json.dumps({
        "model": [cfg.model.name, cfg.model.options], "optimizer": cfg.optimizer.name,
        "batch": [cfg.batch_size, cfg.eval_batch_size, cfg.drop_last], "data": split_sizes(cfg.data).shape,
        "augment": [cfg.data.augment, cfg.data.crop_padding, cfg.data.flip], "probe": cfg.probes.grad_norm,
        "device": [cfg.device, cfg.amp, cfg.channels_last, cfg.compile]}, sort_keys=True, default=str)


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
    held_out = make(evaluated)
    return DataSplits(make(train), held_out, held_out, sizes.classes, mean, std, "random stand-in")


@dataclass
class EpochCost:
    train_per_sample: float  # seconds
    eval_per_sample: float

    def epoch_seconds(self, sizes: Sizes) -> float:
        return sizes.train * self.train_per_sample + sizes.val * self.eval_per_sample


def measure(cfg: RunConfig, steps: int) -> EpochCost:
    """Seconds per training and per evaluated sample of ``cfg`` on its device, from the real loop."""
    device = resolve_device(cfg.device)
    sizes = split_sizes(cfg.data)
    n_train = steps * cfg.batch_size
    n_eval = min(max(sizes.val + sizes.test, 1), 2 * cfg.eval_batch_size)
    data = stand_in(cfg, sizes, n_train, n_eval, device)
    # two epochs: the first pays for warm-up (allocator, kernel choice, compilation); test only at the end
    timed = cfg.replace(**{"epochs": 2, "test_every_epoch": False, "schedule": {"name": "constant"},
                           "strategy": {"name": "none"}, "probes.activation_variance": False,
                           "probes.cka": False})
    run = fit(timed, progress=False, data=data)
    train_per_sample = float(run.history["seconds"].iloc[-1]) / n_train
    model = build(timed, data, device)
    batches = Batches(data.val, cfg.eval_batch_size, data.mean, data.std,
                      channels_last=device.type == "cuda" and cfg.channels_last and data.is_image)  # as fit's
    binary = sizes.classes == 2 or cfg.probes.roc_auc
    evaluate(model, batches, timed, device, binary)
    start = time.perf_counter()
    evaluate(model, batches, timed, device, binary)  # evaluate() ends with a host read, so this is synchronised
    return EpochCost(train_per_sample, (time.perf_counter() - start) / n_eval)


def project(profile: str = "paper", chapters=None, steps: int | None = None, device: str = "auto",
            root: Path | None = None) -> pd.DataFrame:
    """One row per chapter and cost group: runs, epochs, measured seconds per epoch and projected hours.
    Every parameter file is checked before anything is timed."""
    from .report import plan

    _, picked = plan(profile, chapters, root)
    plans = {ch.name: ch.plan for ch in picked}
    device = str(resolve_device(device))
    steps = steps or (20 if device.startswith("cuda") else 3)
    rows, costs = [], {}
    for chapter, chapter_plan in plans.items():
        groups: dict[str, list[RunConfig]] = {}
        for cfg in planned_runs(chapter, chapter_plan):
            cfg = cfg.replace(device=device)
            groups.setdefault(cost_key(cfg), []).append(cfg)
        varying = _varying_options([runs[0] for runs in groups.values()])
        for key, runs in groups.items():
            if key not in costs:
                costs[key] = measure(runs[0], steps)
            first, sizes = runs[0], split_sizes(runs[0].data)
            per_epoch = costs[key].epoch_seconds(sizes)
            test_seconds = sizes.test * costs[key].eval_per_sample * sum(
                r.epochs if r.test_every_epoch else 1 for r in runs)
            epochs = sum(r.epochs for r in runs)
            options = [f"{k}={v}" for k, v in first.model.options.items() if k in varying or k == "width"]
            if first.probes.grad_norm:
                options.append("grad-norm probe")
            rows.append({"chapter": chapter, "model": first.model.name, "options": ", ".join(options),
                         "optimizer": first.optimizer.name, "batch": first.batch_size,
                         "train / val / test": f"{sizes.train:,} / {sizes.val:,} / {sizes.test:,}",
                         "runs": len(runs), "epochs": epochs, "seconds_per_epoch": per_epoch,
                         "hours": (epochs * per_epoch + test_seconds) / 3600})
            r = rows[-1]
            print(f"{chapter[:2]}  {r['model']} ({r['options'] or 'as configured'}), {r['optimizer']}, batch "
                  f"{r['batch']}: {r['runs']} runs, {epochs} epochs × {per_epoch:.3g} s = {r['hours']:.3g} h",
                  flush=True)
    table = pd.DataFrame(rows)
    table.attrs["device"] = device
    return table


def _varying_options(configs: list[RunConfig]) -> set:
    """Model options whose value differs between configs of the same model (the ones worth printing)."""
    seen: dict = {}
    for cfg in configs:
        for key, value in cfg.model.options.items():
            seen.setdefault((cfg.model.name, key), set()).add(repr(value))
    return {key for (_, key), values in seen.items() if len(values) > 1}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    by_chapter = table.groupby("chapter", sort=False)[["runs", "epochs", "hours"]].sum()
    by_chapter.loc["all chapters"] = by_chapter.sum()
    return by_chapter


def add_project_parser(sub) -> None:
    p = sub.add_parser("project", help="projected device-hours of a profile's runs, measured on this machine")
    p.add_argument("--profile", default="paper", help="quick, paper, smoke or a folder of parameter files")
    p.add_argument("--chapter", nargs="*", default=None, help="chapter names (or prefixes such as 01)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per cost group (default 20 GPU, 3 CPU)")
    p.add_argument("--device", default="auto")

    def run(args) -> int:
        from .registry import ConfigError

        try:
            table = project(args.profile, args.chapter, args.steps, args.device)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        totals = summary(table)
        print(f"\nprojected {table.attrs['device']} hours, runs one after another "
              f"(chapters with jobs > 1 train several at once and take less):")
        print(totals.to_string(float_format=lambda v: f"{v:,.3g}"))
        return 0

    p.set_defaults(func=run)
