"""Training runs through the store: cached when finished, resumed when interrupted, locked while running, and
trained together as ensembles where they can be.

``train`` handles one run; ``train_runs`` many: it takes each run's lock, reuses what the store holds, groups
the rest into ensembles (``hpnb.ensembles``), trains them, stores every member as its own run, and leaves runs
another process holds for last, waiting for them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from .config import RunConfig
from .data import DataSplits, load_data
from .models import input_mismatch
from .ensembles import free_bytes, group, member_cap
from .progress import progress_bar
from .registry import ConfigError
from .store import RunStore
from .loop import EpochState, Run, ensemble_key, fit_members, resolve_device
from .workers import cpu_workers, run_calls

ConfigLike = Union[RunConfig, dict, str, Path]
StoreLike = Union[RunStore, str, Path, None]
DEFAULT = "default"


class RunBusy(RuntimeError):
    """Another process is training this run right now."""


@dataclass
class Outcome:
    """What became of one asked-for run: its Run (trained or reused), or the error that stopped it."""

    config: RunConfig
    run: Optional[Run] = None
    error: Optional[str] = None
    trace: str = ""

    @property
    def cached(self) -> bool:
        return self.run is not None and self.run.cached


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


def prepare_data(cfg: RunConfig) -> DataSplits:
    """The run's data on its device: raises ConfigError for a device this machine lacks or a model that cannot
    take the data's inputs, and DataError for data that is missing or fails its checks (all before anything is
    written)."""
    data = load_data(cfg.data, resolve_device(cfg.device))
    problem = input_mismatch(cfg.model.name, cfg.model.options, data.input_shape, data.num_classes)
    if problem is not None:
        raise ConfigError(f"model: {cfg.model.name!r} cannot take the inputs of dataset {cfg.data.name!r} "
                          f"(samples of shape {tuple(data.input_shape)}, {data.num_classes} classes): {problem}")
    return data


def checkpoint_seconds() -> float:
    """Least time between checkpoints of a run ($HPNB_CHECKPOINT_SECONDS, default 60; 0: every epoch). The
    last epoch is always checkpointed. Big ensembles would otherwise spend their time writing weights."""
    return float(os.environ.get("HPNB_CHECKPOINT_SECONDS", "60"))


class _Checkpointer:
    def __init__(self, store: RunStore, cfgs: Sequence[RunConfig], after_epoch: Optional[Callable[[], None]]):
        self.store, self.cfgs, self.last = store, cfgs, time.monotonic()
        self.every, self.after_epoch = checkpoint_seconds(), after_epoch

    def __call__(self, epoch: int, training: list[int], state_of: Callable[[int], EpochState]) -> None:
        if epoch == self.cfgs[0].epochs or time.monotonic() - self.last >= self.every:
            for i in training:
                self.store.save_epoch(self.cfgs[i], state_of(i))
            self.last = time.monotonic()
        if self.after_epoch is not None:
            self.after_epoch()


def _fit_and_store(cfgs: list[RunConfig], resumes: list, store: RunStore | None, progress: bool,
                   data=None, after_epoch: Optional[Callable[[], None]] = None) -> list[Run]:
    on_epoch = _Checkpointer(store, cfgs, after_epoch) if store is not None else None
    runs = fit_members(cfgs, resumes, on_epoch, progress=progress, data=data)
    return [store.save_run(run) if store is not None else run for run in runs]


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
        return _fit_and_store([cfg], [None], None, progress, prepare_data(cfg))[0]
    cached = run_store.load(cfg, quarantine=False)  # reading needs no lock: files are replaced atomically
    if cached is not None:
        return cached
    data = prepare_data(cfg)
    with run_store.lock(cfg, wait=wait) as held:
        if not held:
            raise RunBusy(cfg.hash)
        cached = run_store.load(cfg)  # finished meanwhile by another process, or damaged: quarantined here
        if cached is not None:
            return cached
        run_store.clean_partial_writes(cfg)
        return _fit_and_store([cfg], [run_store.load_checkpoint(cfg)], run_store, progress, data)[0]


def train_runs(configs: Sequence[ConfigLike], store: StoreLike = DEFAULT, progress: bool = True,
               max_members: Optional[int] = None,
               on_outcome: Optional[Callable[[Outcome], None]] = None,
               workers: Optional[int] = None) -> list[Outcome]:
    """Train or reuse every config; one Outcome per config, in order. Runs that can train together do, up
    to ``max_members`` per ensemble (default: what fits in memory). A run that raises is recorded, not raised,
    and the others go on; if an ensemble raises, its members are retried one at a time. On a CPU, with a
    store, the ensembles train in ``workers`` processes (default ``hpnb.workers.cpu_workers()``)."""
    workers = cpu_workers() if workers is None else workers  # a bad $HPNB_CPU_WORKERS fails before any work
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers: got {workers!r}; give a whole number of worker processes, at least 1 "
                          f"(1 trains in this process)")
    cfgs = [as_config(c) for c in configs]
    unique = list({cfg.hash: cfg for cfg in cfgs}.values())
    run_store = as_store(store)
    outcomes: dict[str, Outcome] = {}
    held: dict[str, contextlib.ExitStack] = {}  # locks of the runs this call trains, released as each ends

    def done(outcome: Outcome) -> None:
        outcomes[outcome.config.hash] = outcome
        if outcome.config.hash in held:
            held.pop(outcome.config.hash).close()
        if on_outcome is not None:
            on_outcome(outcome)

    ready, deferred = [], []
    try:
        for cfg in unique:
            if run_store is None:
                ready.append((cfg, None))
                continue
            cached = run_store.load(cfg, quarantine=False)  # no lock needed to read a finished run
            if cached is not None:
                done(Outcome(cfg, cached))
                continue
            lock = contextlib.ExitStack()
            if not lock.enter_context(run_store.lock(cfg, wait=False)):
                lock.close()
                deferred.append(cfg)  # another process trains it: wait for it at the end
                continue
            held[cfg.hash] = lock
            cached = run_store.load(cfg)  # finished meanwhile, or damaged: quarantined here
            if cached is not None:
                done(Outcome(cfg, cached))
                continue
            run_store.clean_partial_writes(cfg)
            ready.append((cfg, run_store.load_checkpoint(cfg)))
        _train_ready(ready, run_store, progress, max_members, done, workers)
    finally:
        for lock in held.values():
            lock.close()
    for cfg in deferred:
        try:
            done(Outcome(cfg, train(cfg, run_store, progress=progress, wait=True)))
        except Exception as err:
            done(Outcome(cfg, error=f"{type(err).__name__}: {err}", trace=traceback.format_exc(limit=3)))
    return [outcomes[cfg.hash] for cfg in cfgs]


def _train_ready(ready: list, store: RunStore | None, progress: bool, max_members: Optional[int], done,
                 workers: int = 1) -> None:
    """Train runs whose locks are held: grouped by what they share and the epoch they resume from; on a CPU
    with a store, the ensembles go to ``workers`` processes (``hpnb.workers``)."""
    by_kind: dict[tuple, list] = {}
    for cfg, state in ready:
        by_kind.setdefault((ensemble_key(cfg), 0 if state is None else state.epoch), []).append((cfg, state))
    chunks = []  # (members, data)
    for members in by_kind.values():
        cfgs = [cfg for cfg, _ in members]
        try:
            data = prepare_data(cfgs[0])
            device = data.train.x.device
            sharing = workers > 1 and store is not None and device.type == "cpu"  # the workers share the RAM
            share = free_bytes(device) / workers if sharing else None
            cap = member_cap(cfgs[0], data.input_shape, data.num_classes, device, max_members, share)
        except Exception as err:  # the data or device is missing: every member fails alike
            for cfg in cfgs:
                done(Outcome(cfg, error=f"{type(err).__name__}: {err}", trace=traceback.format_exc(limit=3)))
            continue
        chunks += [([members[i] for i in chunk], data) for chunk in group(cfgs, {ensemble_key(cfgs[0]): cap})]
    on_cpu = all(data.train.x.device.type == "cpu" for _, data in chunks)
    if workers > 1 and store is not None and len(chunks) > 1 and on_cpu:
        ensembles = [members for members, _ in chunks]
        chunks.clear()  # the workers load their own data: this process need not hold it meanwhile
        _train_in_workers(ensembles, store, workers, progress, done)
        return
    for members, data in chunks:
        _train_chunk(members, store, progress, data, done)


def _train_in_workers(chunks: list[list], store: RunStore, workers: int, progress: bool, done) -> None:
    """The ensembles in CPU worker processes (``hpnb.workers``); this process keeps the locks and reads each
    member's run back from the store. An ensemble whose worker dies fails; its checkpoints stay for a resume."""
    expected = [members[0][0].epochs - (members[0][1].epoch if members[0][1] else 0) for members in chunks]
    ticked = [0] * len(chunks)
    bar = progress_bar(progress, total=sum(expected), unit="epoch",
                       desc=f"{len(chunks)} ensembles in {min(workers, len(chunks))} processes")

    def tick(i: int) -> None:
        if bar is not None and ticked[i] < expected[i]:  # retries of single members tick again
            bar.update(1)
        ticked[i] += 1

    def ended(i: int) -> None:  # an ensemble that stopped early (all diverged) or was lost: its epochs are over
        if bar is not None and ticked[i] < expected[i]:
            bar.update(expected[i] - ticked[i])
        ticked[i] = expected[i]

    def report(i: int, errors: dict[str, tuple[str, str]]) -> None:
        """Each member's Outcome: its run if the store holds it (a member stored before its worker died counts
        as trained), else its error."""
        ended(i)
        for cfg, _ in chunks[i]:
            run = store.load(cfg)
            if run is not None:
                done(Outcome(cfg, dataclasses.replace(run, cached=False)))
                continue
            error, trace = errors.get(cfg.hash, (f"a worker trained run {cfg.hash}, but the store holds no "
                                                 f"finished run for it", ""))
            done(Outcome(cfg, error=error, trace=trace))

    def finished(i: int, results: list) -> None:
        report(i, {run_hash: (error, trace) for run_hash, error, trace in results if error})

    def lost(i: int, why: str) -> None:
        report(i, {cfg.hash: (f"ensemble of {len(chunks[i])} run(s): {why}", "") for cfg, _ in chunks[i]})

    calls = [(_train_in_worker, ([cfg for cfg, _ in members], str(store.root))) for members in chunks]
    try:
        run_calls(calls, workers, finished, lost, tick)
    finally:
        if bar is not None:
            bar.close()


_worker_data: dict[str, DataSplits] = {}  # in a worker process: the dataset of the runs it trains now


def _train_in_worker(cfgs: list[RunConfig], root: str, tick) -> list[tuple[str, Optional[str], str]]:
    """In a worker process: train one ensemble into the store at ``root``, loading its data and checkpoints
    here; (hash, error or None, trace) for each member."""
    store, results = RunStore(root), []
    try:
        key = json.dumps([cfgs[0].to_dict()["data"], cfgs[0].device], sort_keys=True, default=str)
        if key not in _worker_data:
            _worker_data.clear()  # one dataset at a time: a worker moves from one kind of run to the next
            _worker_data[key] = prepare_data(cfgs[0])
        members = [(cfg, store.load_checkpoint(cfg)) for cfg in cfgs]
    except Exception as err:  # the parent loaded the same data and checkpoints, so this is rare
        return [(cfg.hash, f"{type(err).__name__}: {err}", traceback.format_exc(limit=3)) for cfg in cfgs]
    _train_chunk(members, store, False, _worker_data[key],
                 lambda outcome: results.append((outcome.config.hash, outcome.error, outcome.trace)), after_epoch=tick)
    return results


def _train_chunk(members: list, store: RunStore | None, progress: bool, data, done,
                 after_epoch: Optional[Callable[[], None]] = None) -> None:
    cfgs, resumes = [m[0] for m in members], [m[1] for m in members]
    try:
        runs = _fit_and_store(cfgs, resumes, store, progress, data, after_epoch)
    except Exception as err:
        if len(members) > 1:  # find out which member is at fault: each on its own
            for member in members:
                _train_chunk([member], store, progress, data, done, after_epoch)
            return
        done(Outcome(cfgs[0], error=f"{type(err).__name__}: {err}", trace=traceback.format_exc(limit=3)))
        return
    for cfg, run in zip(cfgs, runs):
        done(Outcome(cfg, run))


__all__ = ["train", "train_runs", "Outcome", "RunBusy", "as_config", "as_store", "checkpoint_seconds"]
