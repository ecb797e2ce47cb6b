"""The one training loop: K runs of one network trained together (K = 1 for a run alone), with per-epoch
metrics, probes, divergence detection and resumable state for every run.

Each run keeps everything that makes it itself: its seed and initialisation, its own generator for data order,
augmentation and dropout, its own learning rate per step (schedule or update strategy), its own divergence,
probes and history. A run therefore ends the same, to float rounding, whether it trains alone or in an
ensemble; that is what lets the store keep each member as an ordinary run.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .batches import EvalBatches, TrainBatches, member_eval_batch
from .config import RunConfig
from .data import DataSplits, load_data
from .init import initialise
from .models import CHANNELS_LAST_ON_CPU, build_model, model_context
from .optim import build_optimizer
from .progress import progress_bar
from .probes import activation_variance, input_output_cka, roc_auc
from .registry import ConfigError
from .schedules import PER_BATCH, build_schedule, set_lr
from .strategies import build_strategy
from .stack import ModelStack
from .step import TrainStep, autocast_for

CHECKPOINT_FORMAT = 2  # bump when EpochState changes meaning; older checkpoints are restarted, not misread


@dataclass
class Run:
    """A finished (or diverged) run: its config, per-epoch history, summary and probe records."""

    config: RunConfig
    history: pd.DataFrame
    summary: dict
    grad_norms: Optional[pd.DataFrame] = None  # step, epoch, grad_norm
    activations: Optional[pd.DataFrame] = None  # epoch, layer_index, layer, variance, std
    path: Optional[Path] = None
    cached: bool = False

    @property
    def status(self) -> str:
        return self.summary["status"]


@dataclass
class EpochState:
    """Everything needed to continue one run after ``epoch`` (what its checkpoint holds)."""

    epoch: int
    model: dict
    optimizer: dict  # the run's slice of the stacked optimizer state
    lr: float  # the rate the next epoch starts from
    schedule: dict
    strategy: dict
    generator: torch.Tensor
    history: list[dict]
    grad_norms: list[dict] = field(default_factory=list)
    activations: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    cka_init: Optional[float] = None
    format: int = CHECKPOINT_FORMAT


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ConfigError for a CUDA device this machine lacks."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked, but CUDA is not available on this machine")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} asked, but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s)")
    return device


def build(cfg: RunConfig, data: DataSplits, device: torch.device) -> nn.Module:
    """Model for ``cfg`` with its shapes taken from the data, initialised under the run's seed."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, **cfg.model.options, **model_context(data.input_shape, data.num_classes))
    initialise(model, cfg.init.name, cfg.init.options)
    model.to(device)
    if uses_channels_last(cfg, data, device):
        model.to(memory_format=torch.channels_last)
    return model


def uses_channels_last(cfg: RunConfig, data: DataSplits, device: torch.device) -> bool:
    if not (cfg.channels_last and data.is_image):
        return False
    return device.type == "cuda" or (device.type == "cpu" and cfg.model.name in CHANNELS_LAST_ON_CPU)


def uses_graphs(cfg: RunConfig, device: torch.device) -> bool:
    return device.type == "cuda" and cfg.cuda_graphs and not cfg.compile


def training_batches(cfg: RunConfig, data: DataSplits, device: torch.device) -> TrainBatches:
    """The shuffled (and, for images, augmented) training batches of an epoch, as ``cfg`` asks."""
    augment = cfg.data.augment and data.is_image
    return TrainBatches(data.train, cfg.batch_size, data.mean, data.std,
                        crop_padding=cfg.data.crop_padding if augment else 0, flip=augment and cfg.data.flip,
                        drop_last=cfg.drop_last, channels_last=uses_channels_last(cfg, data, device))


@torch.no_grad()
def evaluate(stack: ModelStack, batches: EvalBatches, amp: bool, binary: bool) -> list[dict]:
    """Every member's mean loss and accuracy (and ROC-AUC for binary tasks) over ``batches``, in eval mode."""
    stack.train(False)
    k, device = stack.k, stack.device
    loss_sum = torch.zeros(k, device=device)
    correct = torch.zeros(k, device=device, dtype=torch.long)
    scores = []
    for x, y in batches:
        with autocast_for(device, amp):
            out = stack.logits(x)
        out = out.to(torch.promote_types(out.dtype, torch.float32))
        loss_sum += F.cross_entropy(out.flatten(0, 1), y.repeat(k), reduction="none").view(k, -1).sum(1)
        correct += (out.argmax(-1) == y).sum(1)
        if binary:
            scores.append(out.softmax(-1)[..., 1])
    n = len(batches.data)
    losses, hits = (loss_sum / n).tolist(), correct.tolist()
    results = [{"loss": losses[i], "acc": hits[i] / n} for i in range(k)]
    if binary:
        scores = torch.cat(scores, dim=1)
        for i in range(k):
            results[i]["auc"] = roc_auc(scores[i], batches.data.y)
    return results


class Member:
    """One run's own state inside an ensemble: rate, schedule, strategy, generator, history, probes."""

    def __init__(self, cfg: RunConfig, steps_per_epoch: int, device: torch.device):
        self.cfg = cfg
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)
        # torch's schedulers drive a stand-in optimizer; its rate is read off for every step.
        self.rate = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.optimizer.options["lr"])
        self.schedule = build_schedule(self.rate, cfg.schedule.name, cfg.schedule.options, cfg.epochs,
                                       steps_per_epoch)
        self.per_batch = cfg.schedule.name in PER_BATCH
        self.strategy = build_strategy(cfg.strategy.name, cfg.strategy.options, r0=self.lr)
        self.history: list[dict] = []
        self.grad_norms: list[dict] = []
        self.activations: list[dict] = []
        self.seconds = 0.0
        self.status, self.diverged_at = "finished", None
        self.cka_init: Optional[float] = None

    @property
    def lr(self) -> float:
        return self.rate.param_groups[0]["lr"]

    @property
    def active(self) -> bool:
        return self.status != "diverged"

    def epoch_rates(self, steps: int) -> list[float]:
        """The rate of every step of the coming epoch (per-batch schedules advance as they go)."""
        rates = []
        for _ in range(steps):
            rates.append(self.lr)
            if self.per_batch:
                self.rate.step()  # a no-op update: the stand-in's gradient is None
                self.schedule.step()
        return rates

    def end_epoch(self, val_loss: Optional[float]) -> None:
        """Advance an epoch schedule, then let the strategy set the next rate from the validation loss."""
        if not self.per_batch:
            self.rate.step()
            self.schedule.step()
        if val_loss is not None:
            new_lr = self.strategy.after_epoch(val_loss)
            if new_lr is not None:
                set_lr(self.rate, new_lr)

    def restore(self, state: EpochState) -> None:
        set_lr(self.rate, state.lr)
        self.schedule.load_state_dict(state.schedule)
        self.strategy.load_state_dict(state.strategy)
        self.generator.set_state(state.generator)
        self.history, self.grad_norms = list(state.history), list(state.grad_norms)
        self.activations, self.seconds, self.cka_init = list(state.activations), state.seconds, state.cka_init


def ensemble_key(cfg: RunConfig) -> str:
    """Runs with equal keys can train together: same network, data, batches, optimizer family, epochs and
    probes; they may differ in seed, initialisation, optimizer hyperparameters, schedule and strategy."""
    import json

    raw = cfg.to_dict()
    for key in ("seed", "init", "schedule", "strategy"):
        raw.pop(key)
    raw["optimizer"] = raw["optimizer"]["name"]
    return json.dumps(raw, sort_keys=True, default=str)


def fit_members(cfgs: Sequence[RunConfig], resumes: Optional[Sequence[Optional[EpochState]]] = None,
                on_epoch: Optional[Callable[[int, list[int], Callable[[int], EpochState]], None]] = None,
                progress: bool = True, data: Optional[DataSplits] = None) -> list[Run]:
    """Train ``cfgs`` together (they must share ``ensemble_key``), each from scratch or from its ``resumes``
    entry (all at the same epoch). After every epoch, ``on_epoch(epoch, training, state_of)`` gets the indices
    of the members still training and may call ``state_of(i)`` for member i's checkpoint."""
    cfgs = list(cfgs)
    resumes = list(resumes) if resumes is not None else [None] * len(cfgs)
    if len({ensemble_key(c) for c in cfgs}) != 1:
        raise ValueError("fit_members: these runs cannot train together (see ensemble_key)")
    starts = {0 if r is None else r.epoch for r in resumes}
    if len(starts) != 1:
        raise ValueError(f"fit_members: members resume from different epochs {sorted(starts)}")
    first = cfgs[0]
    device = resolve_device(first.device)
    data = data or load_data(first.data, device)
    train_batches = training_batches(first, data, device)
    steps = len(train_batches)
    if steps == 0:
        raise ConfigError(f"batch_size: {first.batch_size} with drop_last leaves no batch of the {len(data.train)} "
                          f"training samples")
    stack = ModelStack([build(cfg, data, device) for cfg in cfgs])
    if first.probes.grad_norm and first.probes.grad_norm not in stack.params:
        raise ConfigError(f"probes.grad_norm: the model has no parameter {first.probes.grad_norm!r}")
    optimizer = build_optimizer(first.optimizer.name, stack.params, [c.optimizer.options for c in cfgs])
    members = [Member(cfg, steps, device) for cfg in cfgs]
    channels_last = uses_channels_last(first, data, device)
    splits = {"val": data.val, "test": None if data.test is data.val else data.test}
    eval_size = member_eval_batch(first.eval_batch_size, len(cfgs))
    eval_batches = {name: EvalBatches(split, eval_size, data.mean, data.std, channels_last)
                    for name, split in splits.items() if split is not None}
    binary = data.num_classes == 2 or first.probes.roc_auc
    probe_x = cka_x = None
    if first.probes.activation_variance:
        probe_x = EvalBatches(data.val if data.val is not None else data.train, 1, data.mean, data.std).first(
            first.probes.activation_samples)
    if first.probes.cka:
        if not hasattr(stack.template, "features"):
            raise ConfigError(f"probes.cka: model {first.model.name!r} exposes no 'features' (last hidden layer)")
        cka_x = EvalBatches(data.test if data.test is not None else data.train, 1, data.mean, data.std).first(2048)

    start = starts.pop() + 1
    for i, (member, state) in enumerate(zip(members, resumes)):
        if state is not None:
            stack.load_state_dict(i, state.model)
            optimizer.load_member_state(i, state.optimizer)
            member.restore(state)
            continue
        if cka_x is not None:
            member.cka_init = input_output_cka(stack.module(i), cka_x)
        if probe_x is not None:
            member.activations += [{"epoch": 0, **r} for r in activation_variance(stack.module(i), probe_x)]

    step = TrainStep(stack, optimizer, first.amp, first.probes.grad_norm, compile=first.compile)
    if uses_graphs(first, device):
        from .graphs import GraphedStep

        step_fn = GraphedStep(step)
    else:
        step_fn = step
    active = torch.tensor([float(m.active) for m in members], device=device, dtype=torch.float64)
    generators = [m.generator for m in members]
    label = f"run {first.hash[:8]}" if len(cfgs) == 1 else f"ensemble of {len(cfgs)} runs"
    bar = progress_bar(progress, total=first.epochs, initial=start - 1, desc=label, unit="epoch", leave=False)
    n_seen = train_batches.seen()
    for epoch in range(start, first.epochs + 1):
        stack.set_epoch(epoch)
        stack.train(True)
        rates = torch.tensor([m.epoch_rates(steps) for m in members], dtype=torch.float64).T.to(device)
        starting_lr = rates[0].tolist()
        step.begin_epoch(steps)
        t0 = time.perf_counter()
        draws = train_batches.draw(generators)
        for s, (x, y) in enumerate(train_batches.batches(draws)):
            step_fn(x, y, stack.noise(y.shape[1], generators), rates[s], active)
        losses = (step.loss_sum / n_seen).tolist()  # the epoch's one host sync
        hits = step.correct.tolist()
        train_seconds = time.perf_counter() - t0
        norms = step.norms.T.cpu().tolist() if step.norms is not None else None
        with_test = first.test_every_epoch or epoch == first.epochs
        results = {name: evaluate(stack, batches, first.amp, binary) for name, batches in eval_batches.items()
                   if name != "test" or with_test}
        for i, member in enumerate(members):
            if not member.active:
                continue
            row = {"epoch": epoch, "lr": starting_lr[i], "train_loss": losses[i], "train_acc": hits[i] / n_seen}
            if norms is not None:
                base = len(member.grad_norms)
                member.grad_norms += [{"step": base + j + 1, "epoch": epoch, "grad_norm": v}
                                      for j, v in enumerate(norms[i])]
                row["grad_norm_mean"] = sum(norms[i]) / len(norms[i])
            if not math.isfinite(losses[i]):
                member.status, member.diverged_at = "diverged", epoch
                active[i] = 0.0
            else:
                _record_evaluation(row, results, i, copy_val_to_test=with_test and data.test is data.val)
                member.end_epoch(row.get("val_loss"))
                if probe_x is not None and epoch == member.cfg.epochs:  # at init (above) and after training
                    member.activations += [{"epoch": epoch, **r}
                                           for r in activation_variance(stack.module(i), probe_x)]
                if cka_x is not None:
                    row["cka"] = input_output_cka(stack.module(i), cka_x)
            epoch_seconds = time.perf_counter() - t0
            member.seconds += epoch_seconds
            row.update(seconds=train_seconds, samples_per_sec=n_seen / train_seconds)
            member.history.append(row)
        if bar is not None:
            if len(members) == 1 and members[0].history:
                row = members[0].history[-1]
                bar.set_postfix({k: f"{row[k]:.3f}" for k in ("train_loss", "val_acc") if k in row}, refresh=False)
            bar.update(1)
        if not any(m.active for m in members):
            break
        if on_epoch is not None:
            training = [i for i, m in enumerate(members) if m.active]
            on_epoch(epoch, training, lambda i, epoch=epoch: _state(stack, optimizer, members[i], i, epoch))
    if bar is not None:
        bar.close()
    return [_finish(m, stack, i, device, data) for i, m in enumerate(members)]


def _record_evaluation(row: dict, results: dict, i: int, copy_val_to_test: bool) -> None:
    for name, per_member in results.items():
        for key, value in per_member[i].items():
            row[f"{name}_{key}"] = value
    if copy_val_to_test:  # validating on the test split: measured once
        row.update({k.replace("val_", "test_", 1): v for k, v in list(row.items()) if k.startswith("val_")})


def _state(stack: ModelStack, optimizer, member: Member, i: int, epoch: int) -> EpochState:
    return EpochState(epoch=epoch, model=stack.state_dict(i), optimizer=optimizer.member_state(i), lr=member.lr,
                      schedule=member.schedule.state_dict(), strategy=member.strategy.state_dict(),
                      generator=member.generator.get_state(), history=list(member.history),
                      grad_norms=list(member.grad_norms), activations=list(member.activations),
                      seconds=member.seconds, cka_init=member.cka_init)


def _finish(member: Member, stack: ModelStack, i: int, device: torch.device, data: DataSplits) -> Run:
    frame = pd.DataFrame(member.history)
    summary = summarise(member.cfg, frame, member.status, member.diverged_at, member.seconds,
                        stack.parameter_count(), device, data)
    summary["ensemble_size"] = stack.k
    if member.cka_init is not None:
        summary["cka_init"] = member.cka_init
    return Run(member.cfg, frame, summary,
               grad_norms=pd.DataFrame(member.grad_norms) if member.grad_norms else None,
               activations=pd.DataFrame(member.activations) if member.activations else None)


def fit(cfg: RunConfig, resume: Optional[EpochState] = None,
        on_epoch: Optional[Callable[[EpochState], None]] = None, progress: bool = True,
        data: Optional[DataSplits] = None) -> Run:
    """Train one run alone (an ensemble of one); ``on_epoch`` receives its state after every epoch."""
    callback = None if on_epoch is None else (lambda epoch, training, state_of: on_epoch(state_of(0)))
    return fit_members([cfg], [resume], callback, progress, data)[0]


def summarise(cfg: RunConfig, history: pd.DataFrame, status: str, diverged_at, seconds: float,
              n_params: int, device: torch.device, data: DataSplits) -> dict:
    last = history.iloc[-1].to_dict() if len(history) else {}
    summary = {"hash": cfg.hash, "status": status, "diverged_at": diverged_at, "epochs_run": len(history),
               "seconds": seconds, "parameters": n_params, "device": str(device), "torch": torch.__version__,
               "data": data.description}
    summary.update({f"final_{k}": v for k, v in last.items() if k not in ("epoch",) and isinstance(v, float)})
    if "val_acc" in history:
        summary["best_val_acc"] = float(history["val_acc"].max())
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}


def describe_data(cfg: RunConfig) -> str:
    """One line saying what data ``cfg`` runs on (for a chapter's first screen)."""
    return load_data(cfg.data, "cpu").description


__all__ = ["Run", "EpochState", "fit", "fit_members", "ensemble_key", "evaluate", "build", "training_batches",
           "resolve_device", "describe_data"]
