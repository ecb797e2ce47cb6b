"""``sweep``: a grid of configs × seeds, each run trained or reused, gathered into one tidy DataFrame."""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Optional, Sequence, Union

import pandas as pd

from .config import RunConfig
from .registry import ConfigError
from .progress import progress_bar
from .runner import DEFAULT, ConfigLike, Outcome, StoreLike, as_config, as_store, train_runs

Grid = Union[Mapping[str, Sequence], Sequence[Mapping], None]


def config_changes(point: dict) -> dict:
    """A grid point's config keys: those starting with ``label`` only name the point."""
    return {k: v for k, v in point.items() if not k.startswith("label")}


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
            try:
                cfg = base.replace(**config_changes(labels))
            except ConfigError as err:
                raise ConfigError(f"sweep point {point}: {err}") from None
            out.append((labels, cfg))
    return out


def sweep(base: ConfigLike, grid: Grid = None, seeds: Iterable[int] = (0,), store: StoreLike = DEFAULT,
          progress: bool = True, max_members: Optional[int] = None) -> pd.DataFrame:
    """Run every grid point for every seed; one row per run and epoch, with the grid's columns first.

    Runs that differ only in seed, initialisation, optimizer hyperparameters, schedule or strategy train
    together as ensembles (up to ``max_members`` at once; default: what fits in memory). A run that raises is
    recorded (status ``failed``, its error message) and the sweep goes on. Runs another process is training
    are waited for at the end, so parallel sweeps share the work. ``df.attrs`` counts the runs trained,
    reused and failed.
    """
    points = expand(as_config(base), grid, list(seeds))
    bar = progress_bar(progress, total=len({cfg.hash for _, cfg in points}), desc="sweep", unit="run")
    counts = {"trained": 0, "cached": 0, "failed": 0}

    def count(outcome: Outcome) -> None:
        counts["failed" if outcome.error else "cached" if outcome.cached else "trained"] += 1
        if bar is not None:  # refresh at tqdm's pace, not per run: a cached sweep would print a line per run in logs
            bar.set_postfix(counts, refresh=False)
            bar.update(1)

    outcomes = train_runs([cfg for _, cfg in points], as_store(store), progress, max_members, on_outcome=count)
    if bar is not None:
        bar.close()
    return _frame(points, outcomes, counts)


def collect(base: ConfigLike, grid: Grid = None, seeds: Iterable[int] = (0,),
            store: StoreLike = DEFAULT) -> Optional[pd.DataFrame]:
    """The sweep's rows from runs already finished in ``store``, or None if any is missing; trains nothing
    and takes no lock (a planner reads results this way)."""
    points = expand(as_config(base), grid, list(seeds))
    run_store = as_store(store)
    outcomes = []
    for _, cfg in points:
        run = run_store.load(cfg, quarantine=False)
        if run is None:
            return None
        outcomes.append(Outcome(cfg, run))
    return _frame(points, outcomes, {"trained": 0, "cached": len({cfg.hash for _, cfg in points}), "failed": 0})


def _frame(points: list, outcomes: list[Outcome], counts: dict) -> pd.DataFrame:
    frames = [_rows(labels, outcome) for (labels, _), outcome in zip(points, outcomes)]
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    label_cols = list(dict.fromkeys(key for labels, _ in points for key in labels))  # every grid key, first seen first
    front = [c for c in label_cols + ["hash", "status", "error"] if c in result]
    result = result[front + [c for c in result.columns if c not in front]]
    result.attrs.update(counts)
    result.attrs["configs"] = {o.config.hash: o.config.semantic_dict() for o in outcomes}
    return result


def _rows(labels: dict, outcome: Outcome) -> pd.DataFrame:
    if outcome.error is not None:  # recorded, not raised: one bad run must not lose the sweep
        return pd.DataFrame([{**labels, "hash": outcome.config.hash, "status": "failed", "error": outcome.error,
                              "traceback": outcome.trace}])
    frame = outcome.run.history.copy()
    for key, value in labels.items():
        frame[key] = [value] * len(frame)  # a list: values may themselves be lists
    frame["hash"], frame["status"], frame["error"] = outcome.config.hash, outcome.run.status, None
    return frame


def probe_table(df: pd.DataFrame, probe: str, store: StoreLike = DEFAULT) -> pd.DataFrame:
    """A probe's records (``"activations"`` or ``"grad_norms"``) for every finished run of a sweep, with the
    sweep's label columns attached."""
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
