"""What every study module builds on: its parameters as a typed schema, its sweeps as data, measurements
taken from a sweep's rows, and tables that put the write-up's numbers beside the reproduced ones."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional, Sequence

import pandas as pd

from ..claims import Measure, measure
from ..config import RunConfig
from ..exhibits import Table, Text
from ..registry import ConfigError
from ..runner import DEFAULT
from ..schema import DISTINCT, NON_EMPTY, Rule, build
from ..stats import final_rows, fmt_mean_std, mean_std
from ..store import RunStore
from ..sweep import collect, config_changes, expand, sweep

Seeds = Annotated[tuple[int, ...], NON_EMPTY, DISTINCT, Rule(lambda v: all(s >= 0 for s in v), "integers >= 0")]


class StudyParams:
    """Mixin for a study's frozen parameter dataclass: built and checked from a mapping or a namespace."""

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, raw: dict, source: Optional[str] = None):
        """Validate ``raw``; errors name ``source`` (a file or notebook), the key and what is allowed."""
        try:
            return build(cls, raw)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}" if source else str(err)) from None

    @classmethod
    def from_namespace(cls, namespace: dict, source: str = "the notebook's parameters"):
        """The parameters a notebook's first cell (or papermill) set, validated: a notebook's second cell."""
        return cls.from_mapping({k: namespace[k] for k in cls.fields() if k in namespace}, source)


def run_config(raw: dict, where: str) -> RunConfig:
    """A RunConfig from a parameter section, its errors prefixed with the parameter's name."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of run settings, got {raw!r}")
    try:
        return RunConfig.from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def settings_only(raw: dict, where: str, forbidden: Sequence[str] = ("data",)) -> None:
    for key in forbidden:
        if key in raw:
            raise ConfigError(f"{where}.{key}: set it in the chapter's '{key}' parameter, not here")


@dataclass(frozen=True)
class Sweep:
    """One named sweep of a study: a base config, grid points (labels + config changes) and seeds."""

    name: str
    base: RunConfig
    grid: tuple
    seeds: tuple[int, ...]

    def configs(self) -> list[RunConfig]:
        return [cfg for _, cfg in expand(self.base, list(self.grid), self.seeds)]

    def run(self, store=DEFAULT, progress: bool = True) -> pd.DataFrame:
        """Train or reuse every run; the sweep's tidy rows (see ``hpnb.sweep``)."""
        return sweep(self.base, list(self.grid), self.seeds, store=store, progress=progress)

    def finished(self, store: RunStore) -> Optional[pd.DataFrame]:
        """The sweep's rows if every run is finished in ``store`` (nothing trained), else None."""
        return collect(self.base, list(self.grid), self.seeds, store)

    def labels(self) -> list[str]:
        return [p["label"] for p in self.grid]

    def point_config(self, point: dict) -> RunConfig:
        """One grid point's config (before seeds), built as the sweep builds it."""
        return self.base.replace(**config_changes(point))


@dataclass
class StudyPlan:
    """The sweeps a study will train, as far as they are known now, and the ones waiting for results."""

    sweeps: dict[str, Sweep] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)  # sweep name → what it waits for

    def configs(self) -> list[RunConfig]:
        seen, out = set(), []
        for s in self.sweeps.values():
            for cfg in s.configs():
                if cfg.hash not in seen:
                    seen.add(cfg.hash)
                    out.append(cfg)
        return out


# --------------------------------------------------------------------------- measurements from sweep rows
def finals(df: pd.DataFrame, by: str, metric: str) -> dict[str, list]:
    """``{setting: [final metric of each finished run]}`` in the order settings first appear."""
    rows = final_rows(df)
    rows = rows[rows.status == "finished"]
    return {key: rows.loc[rows[by] == key, metric].tolist() for key in dict.fromkeys(df[by])}


def setting_measure(df: pd.DataFrame, label: str, metric: str, by: str = "label", scale: float = 1.0,
                    chance: Optional[float] = None, best: float = 1.0, values: Optional[list] = None,
                    censored: int = 0) -> Measure:
    """The Measure of one setting: final ``metric`` of its finished runs (or ``values`` computed from them),
    with its diverged and failed runs counted and, given ``chance``, whether it ended near chance."""
    rows = final_rows(df[df[by] == label])
    done = rows[rows.status == "finished"]
    vals = done[metric].tolist() if values is None else values
    return measure(label, vals, runs=len(rows), diverged=int((rows.status == "diverged").sum()),
                   censored=censored, chance=chance, best=best, scale=scale)


def failure_note(*frames: pd.DataFrame) -> Optional[Table]:
    """The runs of these sweeps that raised, with their errors, so a chapter never hides one (None if none)."""
    rows = [f.loc[f.status == "failed"].drop_duplicates("hash") for f in frames if "status" in f]
    failed = pd.concat(rows) if rows else pd.DataFrame()
    if failed.empty:
        return None
    shown = failed[[c for c in ("label", "seed", "hash", "error") if c in failed]].set_index("hash")
    return Table("F", f"{len(failed)} run(s) failed and are left out of what follows", shown)


def data_statement(profile: str, parts: dict[str, RunConfig], seeds: Sequence[int], results=None) -> Text:
    """The chapter's first screen: which data each part ran on, and how many seeds each setting has (also
    recorded in ``results``)."""
    from ..loop import describe_data

    lines = "; ".join(f"{name}: {describe_data(cfg)}" for name, cfg in parts.items())
    if results is not None:
        results.data = lines
    repeats = f"{len(seeds)} seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1 else f"one seed ({seeds[0]})"
    return Text(f"**Data used ({profile} profile).** {lines}. Every setting is repeated over {repeats}; curves show "
                f"the mean with a ±1 sd band, tables the mean ± sd.")


# --------------------------------------------------------------------------- write-up tables
class ReferenceTable:
    """A table of the write-up's numbers beside this run's: per quantity the write-up's value, the reproduced
    mean ± sd and their difference, and per row n (the runs behind it). ``frames()`` gives what the page shows
    and the same as plain numbers for the table's CSV."""

    def __init__(self, index: str):
        self.index, self.shown, self.numbers = index, [], []

    def add(self, label: str, quantities: Sequence[tuple], **extra) -> None:
        """``quantities``: (name, write-up value or None, values[, digits]) for this row."""
        shown, numbers, n = {self.index: label}, {self.index: label}, 0
        for name, reference, values, *rest in quantities:
            digits = rest[0] if rest else 2
            vals = [v for v in values if v is not None]
            mean = sum(vals) / len(vals) if vals else None
            shown[f"{name} · write-up"] = ("—" if reference is None else f"{reference:g}"
                                          if float(reference).is_integer() else f"{reference:.{digits}f}")
            shown[f"{name} · reproduced"] = fmt_mean_std(vals, digits)
            shown[f"{name} · difference"] = ("—" if reference is None or mean is None else
                                             f"{mean - reference:+.{digits}f}")
            mean_sd = mean_std(vals)
            numbers.update({f"{name} write-up": None if reference is None else round(reference, 9), f"{name} mean": mean,
                            f"{name} sd": mean_sd[1] if vals else None,
                            f"{name} difference": None if reference is None or mean is None else mean - reference})
            n = max(n, len(vals))
        shown.update(extra)
        numbers.update(extra)
        shown["n"] = numbers["n"] = n
        self.shown.append(shown)
        self.numbers.append(numbers)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return pd.DataFrame(self.shown).set_index(self.index), pd.DataFrame(self.numbers)


def options_text(options: dict) -> str:
    """A component's options as prose: ``lr 0.01, momentum 0.9, weight decay 0.0005``."""
    def value(v):
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={value(v)}" for k, v in options.items()) or "defaults"


def training_text(cfg: RunConfig) -> str:
    return (f"{cfg.optimizer.name.upper() if cfg.optimizer.name == 'sgd' else cfg.optimizer.name.capitalize()} "
            f"({options_text(cfg.optimizer.options)}), batch {cfg.batch_size}, {cfg.epochs} epochs")


def augmentation_text(data) -> str:
    """The training batches' augmentation as prose (a DataConfig's crop and flip)."""
    if not data.augment:
        return "none"
    return f"random crop with {data.crop_padding}-pixel zero padding" + (" + horizontal flip" if data.flip else "")


def assumptions_frame(rows: Sequence[tuple[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["assumption", "value in this run"]).set_index("assumption")


__all__ = ["StudyParams", "Seeds", "Sweep", "StudyPlan", "run_config", "settings_only", "final_rows", "finals",
           "setting_measure", "failure_note", "data_statement", "ReferenceTable", "assumptions_frame", "options_text",
           "training_text", "augmentation_text"]
