"""``train``: run one config through the store — cached if finished, resumed if interrupted, locked while running."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from .config import RunConfig
from .data import DataSplits, load_data
from .registry import ConfigError
from .store import RunStore
from .train import Run, fit, resolve_device

ConfigLike = Union[RunConfig, dict, str, Path]
StoreLike = Union[RunStore, str, Path, None]
DEFAULT = "default"


class RunBusy(RuntimeError):
    """Another process is training this run right now."""


def as_config(config: ConfigLike) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.from_dict(config)
    return RunConfig.from_yaml(config)


def as_store(store: StoreLike) -> RunStore | None:
    if store is None:
        return None
    if isinstance(store, RunStore):
        return store
    return RunStore(None if store == DEFAULT else store)


# Counts of what this process trained and reused, for the report's index page.
COUNTERS = {"trained": 0, "cached": 0}


def prepare_data(cfg: RunConfig) -> DataSplits:
    """The run's data on its device: raises ConfigError for a device this machine lacks and DataError for data
    that is missing or fails its checks (both before anything is written)."""
    import torch

    try:
        device = resolve_device(cfg.device)
    except RuntimeError as err:
        raise ConfigError(str(err)) from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {cfg.device!r} asked, but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s)")
    return load_data(cfg.data, device)


def train(config: ConfigLike, store: StoreLike = DEFAULT, progress: bool = True, wait: bool = True) -> Run:
    """Train ``config`` (a RunConfig, dict or YAML path) and return its Run.

    With a store (default ``outputs/runs``): a finished run is returned from disk (also from a read-only store);
    an interrupted one resumes from its last checkpoint; two processes never train the same run at once (the
    second waits, then reads the first one's result, or raises RunBusy if ``wait`` is False).
    ``store=None`` trains in memory only. Bad input raises ConfigError or DataError before anything is written
    (the data is loaded before the run's lock is taken); a store that cannot be written raises StoreError.
    """
    cfg = as_config(config)
    run_store = as_store(store)
    if run_store is None:
        COUNTERS["trained"] += 1
        return fit(cfg, progress=progress)
    cached = run_store.load(cfg, quarantine=False)  # reading needs no lock: files are replaced atomically
    if cached is not None:
        COUNTERS["cached"] += 1
        return cached
    data = prepare_data(cfg)
    with run_store.lock(cfg, wait=wait) as held:
        if not held:
            raise RunBusy(cfg.hash)
        cached = run_store.load(cfg)  # finished meanwhile by another process, or damaged: quarantined here
        if cached is not None:
            COUNTERS["cached"] += 1
            return cached
        run_store.clean_partial_writes(cfg)
        state = run_store.load_checkpoint(cfg)
        run = fit(cfg, resume=state, on_epoch=lambda s: run_store.save_epoch(cfg, s), progress=progress, data=data)
        COUNTERS["trained"] += 1
        return run_store.save_run(run)
