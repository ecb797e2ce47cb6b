"""``sweep``: a grid of configs × seeds, each run trained or reused, gathered into one tidy DataFrame."""
from __future__ import annotations

import itertools
import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Iterable, Mapping, Sequence, Union

import pandas as pd

from .config import RunConfig
from .registry import ConfigError
from .runner import COUNTERS, DEFAULT, ConfigLike, RunBusy, StoreLike, as_config, as_store, train

Grid = Union[Mapping[str, Sequence], Sequence[Mapping], None]


def expand(base: RunConfig, grid: Grid = None, seeds: Iterable[int] = (0,)) -> list[tuple[dict, RunConfig]]:
    """All (labels, config) points: a dict grid is a Cartesian product over dotted keys; a list of dicts
    gives one point per dict. Keys starting with ``label`` (``label``, ``label_depth`` …) only name the point;
    the others are config keys. Every point is validated here."""
    if grid is None:
        points = [{}]
    elif isinstance(grid, Mapping):
        keys = list(grid)
        points = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    else:
        points = [dict(p) for p in grid]
    out = []
    for point in points:
        for seed in seeds:
            labels = {**point, "seed": seed}
            changes = {k: v for k, v in labels.items() if not k.startswith("label")}
            try:
                cfg = base.replace(**changes)
            except ConfigError as err:
                raise ConfigError(f"sweep point {point}: {err}") from None
            out.append((labels, cfg))
    return out


def check_jobs(jobs) -> int:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"jobs: got {jobs!r}, expected an integer >= 1 (runs trained at once)")
    return jobs


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)  # share the cores: one OpenMP pool per process would oversubscribe them


def _train_in_worker(cfg: RunConfig, store) -> object:
    return train(cfg, store=store, progress=False, wait=True)


def sweep(base: ConfigLike, grid: Grid = None, seeds: Iterable[int] = (0,), store: StoreLike = DEFAULT,
          progress: bool = True, jobs: int = 1) -> pd.DataFrame:
    """Run every grid point for every seed; one row per run and epoch, with the grid's columns.

    A run that raises is recorded (status ``failed``, its error message) and the sweep goes on. Runs another
    process is training are left for last and then waited for, so parallel sweeps share the work.
    ``jobs > 1`` trains that many runs at once in worker processes (small networks leave a GPU mostly idle
    between kernel launches, so several runs fill it); the result is that of ``jobs=1`` up to float rounding.
    """
    check_jobs(jobs)
    points = expand(as_config(base), grid, list(seeds))
    bar = None
    if progress and os.environ.get("HPNB_PROGRESS", "1") != "0":
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), desc="sweep" + (f" ({jobs} at once)" if jobs > 1 else ""), unit="run",
                   dynamic_ncols=True)
    frames = {}
    counts = {"trained": 0, "cached": 0, "failed": 0}

    def record(i: int, run=None, err: Exception | None = None, trace: str = "") -> None:
        labels, cfg = points[i]
        if err is not None:  # recorded, not raised: one bad run must not lose the sweep
            counts["failed"] += 1
            frames[i] = pd.DataFrame([{**labels, "hash": cfg.hash, "status": "failed",
                                       "error": f"{type(err).__name__}: {err}", "traceback": trace}])
        else:
            counts["cached" if run.cached else "trained"] += 1
            frame = run.history.copy()
            for key, value in labels.items():
                frame[key] = [value] * len(frame)  # a list: values may themselves be lists
            frame["hash"], frame["status"], frame["error"] = cfg.hash, run.status, None
            frames[i] = frame
        if bar is not None:
            bar.update(1)
            bar.set_postfix(counts)

    if jobs == 1 or len(points) < 2:
        _sweep_here(points, store, progress, record)
    else:
        _sweep_in_workers(points, store, jobs, record)
    if bar is not None:
        bar.close()
    label_cols = list(points[0][0]) if points else []
    result = pd.concat([frames[i] for i in sorted(frames)], ignore_index=True) if frames else pd.DataFrame()
    front = [c for c in label_cols + ["hash", "status", "error"] if c in result]
    result = result[front + [c for c in result.columns if c not in front]]
    result.attrs.update(counts)
    return result


def _sweep_here(points: list, store: StoreLike, progress: bool, record) -> None:
    deferred = []

    def attempt(i: int, wait: bool) -> None:
        try:
            run = train(points[i][1], store=store, progress=progress, wait=wait)
        except RunBusy:
            deferred.append(i)
        except Exception as err:
            record(i, err=err, trace=traceback.format_exc(limit=3))
        else:
            record(i, run)

    for i in range(len(points)):
        attempt(i, wait=False)
    for i in list(deferred):
        deferred.remove(i)
        attempt(i, wait=True)


def _sweep_in_workers(points: list, store: StoreLike, jobs: int, record) -> None:
    """Each worker trains whole runs through the store (so a killed sweep resumes as usual); results come back
    as Run objects. Workers are spawned, not forked: a forked CUDA context or OpenMP pool is unusable."""
    store = as_store(store)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(threads,))
    try:
        futures = {pool.submit(_train_in_worker, cfg, store): i for i, (_, cfg) in enumerate(points)}
        for future in as_completed(futures):
            i = futures[future]
            err = future.exception()
            if err is not None:
                record(i, err=err, trace="".join(traceback.format_exception(err, limit=3)))
            else:
                run = future.result()
                COUNTERS["cached" if run.cached else "trained"] += 1  # the worker counted in its own process
                record(i, run)
    except BaseException:  # an interrupt stops the workers now, not after the queue; their runs resume later
        for process in list(pool._processes.values()):  # the executor has no public way to stop running work
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def probe_table(df: pd.DataFrame, probe: str, store: StoreLike = DEFAULT) -> pd.DataFrame:
    """A probe's records (``"activations"`` or ``"grad_norms"``) for every finished run of a sweep, with the
    sweep's label columns attached."""
    from .runner import as_store

    run_store = as_store(store)
    labels = list(df.columns[: df.columns.get_loc("hash")])  # sweep() puts the grid's columns first
    frames = []
    for _, row in df[df.status != "failed"].drop_duplicates("hash").iterrows():
        run = run_store.load_hash(row["hash"])
        table = getattr(run, probe) if run is not None else None
        if table is not None:
            table = table.copy()
            for col in labels:
                table[col] = [row[col]] * len(table)
            frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
