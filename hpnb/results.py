"""A chapter's results: reference numbers beside reproduced ones, verdicts on claims, its runs as tidy data,
and the data behind each figure and table.

Written to ``outputs/<profile>/results/``: ``<chapter>.json`` (references, verdicts, run counts),
``<chapter>.csv`` (one row per run and epoch, with the run's whole config as ``config.*`` columns) and
``<chapter>/figure-<n>.csv`` / ``table-<n>.csv``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from . import paths
from .claims import Measure, Verdict
from .exhibits import Figure, Html, Table, render_png, slug
from .scorecard import LEGEND, tally_html, verdict_table
from .stats import mean_std
from .store import atomic_write


class ChapterResults:
    def __init__(self, chapter: str, title: str, profile: str, data: str = "",
                 directory: Optional[Path] = None):
        self.chapter, self.title, self.profile, self.data = chapter, title, profile, data
        self.directory = Path(directory) if directory else paths.results_dir(profile)
        self.references: list[dict] = []
        self.verdicts: list[dict] = []
        self.sweeps: dict[str, pd.DataFrame] = {}
        self.runs = {"trained": 0, "cached": 0, "failed": 0}
        self.started = time.time()

    # ------------------------------------------------------------------ numbers
    def reference(self, table: str, item: str, reference: float, values, unit: str = "") -> dict:
        """Record a write-up number beside the reproduced mean (± sd over seeds) and their difference."""
        raw = values.values if isinstance(values, Measure) else values
        mean, std, n = mean_std(raw)
        row = {"table": table, "item": item, "reference": reference, "reproduced": None if n == 0 else mean,
               "std": None if n == 0 else std, "difference": None if n == 0 else mean - reference,
               "n_seeds": n, "unit": unit}
        self.references.append(row)
        return row

    def judge(self, *verdicts: Verdict) -> Verdict:
        """Record verdicts; returns the last (a cell can judge and use the verdict in one line)."""
        for verdict in verdicts:
            self.verdicts.append(verdict.as_dict())
        return verdicts[-1]

    def verdicts_in(self, *sections: str) -> Html:
        """The verdicts of ``sections`` (all when none is given) as a table whose rows carry the claims' anchors."""
        records = [v for v in self.verdicts if not sections or v["section"] in sections]
        return Html(verdict_table(records))

    def scorecard(self) -> Html:
        """The chapter's tally (write-up claims, beyond, self-checks) and every verdict."""
        return Html(tally_html(self.verdicts) + f"<p>{LEGEND}</p>" + verdict_table(self.verdicts))

    # ------------------------------------------------------------------ runs, figures and tables
    def add_sweep(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        """Keep a sweep's rows for the chapter's tidy data and count what it trained and reused."""
        self.sweeps[name] = df
        for key in self.runs:
            self.runs[key] += df.attrs.get(key, 0)
        return df

    def _data_path(self, kind: str, number: str) -> Path:
        folder = self.directory / self.chapter
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{kind}-{slug(number)}.csv"

    def figure(self, number: str, title: str, fig, data: Optional[pd.DataFrame] = None) -> Figure:
        """A numbered figure with its title as caption and alt text; ``data`` (what it plots) saved as CSV."""
        path = None
        if data is not None:
            path = self._data_path("figure", number)
            data.to_csv(path, index=False)
        return Figure(number, title, render_png(fig), path)  # the caption carries the title

    def table(self, number: str, title: str, frame: pd.DataFrame, note: str = "",
              data: Optional[pd.DataFrame] = None) -> Table:
        """A numbered table; its CSV holds ``data`` (plain numbers) when given, else what the page shows."""
        path = self._data_path("table", number)
        (data if data is not None else frame.reset_index()).to_csv(path, index=False)
        return Table(number, title, frame, path, note)

    # ------------------------------------------------------------------ saving
    def tidy(self) -> pd.DataFrame:
        """Every sweep's rows (one per run and epoch) with the sweep's name and the run's config."""
        frames = []
        for name, df in self.sweeps.items():
            frame = df.copy()
            for col in frame.columns:  # grid values may be mappings (a whole optimizer): keep them as JSON
                if frame[col].map(lambda v: isinstance(v, (dict, list, tuple))).any():
                    frame[col] = frame[col].map(lambda v: json.dumps(v, sort_keys=True, default=str)
                                                if isinstance(v, (dict, list, tuple)) else v)
            configs = pd.json_normalize([df.attrs.get("configs", {}).get(h, {}) for h in frame["hash"]])
            configs.columns = [f"config.{c}" for c in configs.columns]
            configs = configs.map(lambda v: json.dumps(v) if isinstance(v, (list, tuple)) else v)
            frames.append(pd.concat([frame.assign(sweep=name).reset_index(drop=True), configs], axis=1))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def save(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        tidy = self.tidy()
        csv = self.directory / f"{self.chapter}.csv"
        tidy.drop(columns=[c for c in ("traceback",) if c in tidy]).to_csv(csv, index=False)
        payload = {"chapter": self.chapter, "title": self.title, "profile": self.profile, "data": self.data,
                   "references": self.references, "claims": self.verdicts, "runs": dict(self.runs),
                   "tidy_data": csv.name, "seconds": time.time() - self.started}
        path = self.directory / f"{self.chapter}.json"
        atomic_write(path, json.dumps(payload, indent=1, default=_json_default, allow_nan=False).encode())
        return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value))


def reference_rows(results: ChapterResults, table: str) -> list[dict]:
    return [r for r in results.references if r["table"] == table]


__all__ = ["ChapterResults", "reference_rows"]
