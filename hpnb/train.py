"""The one training loop: per-epoch metrics, probes, divergence detection and resumable state."""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import RunConfig
from .data import Batches, DataSplits, load_data
from .init import initialise
from .models import build_model, count_parameters
from .optim import build_optimizer
from .probes import activation_variance, input_output_cka, roc_auc
from .schedules import PER_BATCH, build_schedule, build_strategy, set_lr


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
    """Everything needed to continue a run after ``epoch`` (what a checkpoint holds)."""

    epoch: int
    model: dict
    optimizer: dict
    schedule: dict
    strategy: dict
    generator: torch.Tensor
    cpu_rng: torch.Tensor
    cuda_rng: Optional[list]
    history: list[dict]
    grad_norms: list[dict] = field(default_factory=list)
    activations: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name!r} asked, but CUDA is not available on this machine")
    return torch.device(name)


def build(cfg: RunConfig, data: DataSplits, device: torch.device) -> nn.Module:
    """Model for ``cfg`` with its shapes taken from the data, initialised under the run's seed."""
    torch.manual_seed(cfg.seed)
    shape = data.input_shape
    context = {"num_classes": data.num_classes}
    if data.is_image:
        context.update(in_channels=shape[0], image_size=shape[1])
    else:
        context.update(in_features=shape[0])
    model = build_model(cfg.model.name, **cfg.model.options, **context)
    initialise(model, cfg.init.name, cfg.init.options)
    model.to(device)
    if device.type == "cuda" and cfg.channels_last and data.is_image:
        model.to(memory_format=torch.channels_last)
    return model


def _autocast(cfg: RunConfig, device: torch.device):
    if device.type == "cuda" and cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, cfg: RunConfig, device: torch.device, binary: bool) -> dict:
    """Mean loss and accuracy (and ROC-AUC for binary tasks) over ``batches`` in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    scores = []
    for x, y in batches:
        with _autocast(cfg, device):
            out = model(x)
        out = out.float()
        loss_sum += F.cross_entropy(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        if binary:
            scores.append(out.softmax(1)[:, 1])
    n = len(batches.data)
    result = {"loss": loss_sum.item() / n, "acc": correct.item() / n}
    if binary:
        result["auc"] = roc_auc(torch.cat(scores), batches.data.y)
    return result


def training_batches(cfg: RunConfig, data: DataSplits, generator: torch.Generator) -> Batches:
    """The shuffled (and, for images, augmented) training batches of one epoch, as ``cfg`` asks."""
    augment = cfg.data.augment and data.is_image
    return Batches(data.train, cfg.batch_size, data.mean, data.std, shuffle=True,
                   crop_padding=cfg.data.crop_padding if augment else 0, flip=augment and cfg.data.flip,
                   drop_last=cfg.drop_last, generator=generator,
                   channels_last=generator.device.type == "cuda" and cfg.channels_last and data.is_image)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled or os.environ.get("HPNB_PROGRESS", "1") == "0":
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="epoch", leave=False, dynamic_ncols=True)


def fit(cfg: RunConfig, resume: Optional[EpochState] = None,
        on_epoch: Optional[Callable[[EpochState], None]] = None, progress: bool = True,
        data: Optional[DataSplits] = None) -> Run:
    """Train ``cfg`` from scratch or from ``resume``; call ``on_epoch`` with the state after every epoch."""
    device = resolve_device(cfg.device)
    data = data or load_data(cfg.data, device)
    model = build(cfg, data, device)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer.name, cfg.optimizer.options)
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed)
    channels_last = device.type == "cuda" and cfg.channels_last and data.is_image
    train_batches = training_batches(cfg, data, generator)
    if len(train_batches) == 0:
        raise ValueError(f"batch_size {cfg.batch_size} with drop_last leaves no batch of {len(data.train)} samples")
    eval_batches = {name: Batches(split, cfg.eval_batch_size, data.mean, data.std, channels_last=channels_last)
                    for name, split in (("val", data.val), ("test", data.test)) if split is not None}
    schedule = build_schedule(optimizer, cfg.schedule.name, cfg.schedule.options, cfg.epochs, len(train_batches))
    per_batch = cfg.schedule.name in PER_BATCH
    strategy = build_strategy(cfg.strategy.name, cfg.strategy.options, r0=optimizer.param_groups[0]["lr"])
    binary = data.num_classes == 2 or cfg.probes.roc_auc
    probe_param = dict(model.named_parameters()).get(cfg.probes.grad_norm) if cfg.probes.grad_norm else None
    if cfg.probes.grad_norm and probe_param is None:
        raise ValueError(f"probes.grad_norm: the model has no parameter {cfg.probes.grad_norm!r}")
    probe_x = None
    if cfg.probes.activation_variance:
        probe_source = data.val if data.val is not None else data.train
        probe_x, _ = next(iter(Batches(probe_source, cfg.probes.activation_samples, data.mean, data.std)))

    cka_x = None
    if cfg.probes.cka:
        if not hasattr(model, "features"):
            raise ValueError(f"probes.cka: model {cfg.model.name!r} exposes no 'features' (last hidden layer)")
        cka_source = data.test if data.test is not None else data.train
        cka_x, _ = next(iter(Batches(cka_source, 2048, data.mean, data.std)))

    history, grad_norms, activations, seconds, start = [], [], [], 0.0, 1
    cka_init = input_output_cka(model, cka_x) if cka_x is not None else None
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        schedule.load_state_dict(resume.schedule)
        strategy.load_state_dict(resume.strategy)
        generator.set_state(resume.generator)
        torch.set_rng_state(resume.cpu_rng)
        if resume.cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(resume.cuda_rng)
        history, grad_norms = list(resume.history), list(resume.grad_norms)
        activations, seconds, start = list(resume.activations), resume.seconds, resume.epoch + 1
    elif probe_x is not None:
        activations += [{"epoch": 0, **r} for r in activation_variance(model, probe_x)]

    run_model = torch.compile(model) if cfg.compile and device.type == "cuda" else model
    bar = _progress(cfg.epochs, start - 1, f"run {cfg.hash[:8]}", progress)
    status, diverged_at = "finished", None
    step = len(grad_norms)
    for epoch in range(start, cfg.epochs + 1):
        if hasattr(model, "set_epoch"):
            model.set_epoch(epoch)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        norms = []
        t0 = time.perf_counter()
        for x, y in train_batches:
            with _autocast(cfg, device):
                out = run_model(x)
            loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if probe_param is not None:  # after backward, before the step
                norms.append(torch.linalg.vector_norm(probe_param.grad.detach().float()))
            optimizer.step()
            if per_batch:
                schedule.step()
            # Accumulate on the device: no host sync inside the step.
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
        n_seen = len(train_batches) * cfg.batch_size if cfg.drop_last else len(data.train)
        train_loss = loss_sum.item() / n_seen
        train_seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": correct.item() / n_seen}
        if norms:
            values = torch.stack(norms).cpu().tolist()
            grad_norms += [{"step": step + i + 1, "epoch": epoch, "grad_norm": v} for i, v in enumerate(values)]
            step += len(values)
            row["grad_norm_mean"] = sum(values) / len(values)
        if not math.isfinite(train_loss):
            status, diverged_at = "diverged", epoch
        else:
            for name, batches in eval_batches.items():
                if name == "test" and not (cfg.test_every_epoch or epoch == cfg.epochs):
                    continue
                if name == "test" and data.test is data.val:  # validating on the test split: measured once
                    row.update({k.replace("val_", "test_", 1): v for k, v in list(row.items()) if k.startswith("val_")})
                    continue
                for key, value in evaluate(model, batches, cfg, device, binary).items():
                    row[f"{name}_{key}"] = value
            if not per_batch:
                schedule.step()
            if "val_loss" in row:
                new_lr = strategy.after_epoch(row["val_loss"])
                if new_lr is not None:
                    set_lr(optimizer, new_lr)
            if probe_x is not None and epoch == cfg.epochs:  # at init (above) and after training
                activations += [{"epoch": epoch, **r} for r in activation_variance(model, probe_x)]
            if cka_x is not None:
                row["cka"] = input_output_cka(model, cka_x)
        seconds += time.perf_counter() - t0
        row.update(seconds=train_seconds, samples_per_sec=n_seen / train_seconds)
        history.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("train_loss", "val_acc") if k in row})
        if status == "diverged":
            break
        if on_epoch is not None:
            on_epoch(EpochState(
                epoch=epoch, model=model.state_dict(), optimizer=optimizer.state_dict(),
                schedule=schedule.state_dict(), strategy=strategy.state_dict(), generator=generator.get_state(),
                cpu_rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                history=history, grad_norms=grad_norms, activations=activations, seconds=seconds))
    if bar is not None:
        bar.close()
    frame = pd.DataFrame(history)
    summary = summarise(cfg, frame, status, diverged_at, seconds, count_parameters(model), device, data)
    if cka_init is not None:
        summary["cka_init"] = cka_init
    return Run(cfg, frame, summary,
               grad_norms=pd.DataFrame(grad_norms) if grad_norms else None,
               activations=pd.DataFrame(activations) if activations else None)


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


__all__ = ["Run", "EpochState", "fit", "evaluate", "build", "training_batches", "resolve_device", "describe_data"]
