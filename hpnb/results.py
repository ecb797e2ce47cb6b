"""A chapter's machine-readable results: reference numbers beside reproduced ones, and verdicts on claims.

Verdicts use the spread across seeds: a claim "A beats B" is *supported* when the mean difference exceeds
both ``min_effect`` and twice its standard error, *contradicted* when it is beyond that in the other
direction, and *inconclusive* otherwise. With one seed there is no spread, so the verdict rests on
``min_effect`` alone and says so.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import paths

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


def finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    arr = finite(values)
    if len(arr) == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, len(arr)


def fmt_mean_std(values: Sequence[float], digits: int = 2) -> str:
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def compare(a: Sequence[float], b: Sequence[float], min_effect: float = 0.0) -> tuple[str, str]:
    """Verdict on "a is larger than b" from per-seed values, with a one-line account of the evidence."""
    ma, sa, na = mean_std(a)
    mb, sb, nb = mean_std(b)
    if na == 0 or nb == 0:
        return INCONCLUSIVE, "no finished runs to compare"
    diff = ma - mb
    if na > 1 and nb > 1:
        se = math.sqrt(sa**2 / na + sb**2 / nb)
        margin = max(min_effect, 2 * se)
        evidence = f"difference {diff:+.3g} (2·SE {2 * se:.2g}, n = {na}/{nb} runs)"
    else:
        margin = min_effect
        evidence = f"difference {diff:+.3g} (one run each: no spread, threshold {min_effect:g})"
    if diff > margin:
        return SUPPORTED, evidence
    if diff < -margin:
        return CONTRADICTED, evidence
    return INCONCLUSIVE, evidence


@dataclass
class ChapterResults:
    """Collects a chapter's reference comparisons and claim verdicts, and writes them as JSON."""

    chapter: str
    title: str
    profile: str
    data: str = ""
    references: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: dict = field(default_factory=lambda: {"trained": 0, "cached": 0, "failed": 0})
    started: float = field(default_factory=time.time)

    def count_runs(self, *sweeps: pd.DataFrame) -> None:
        """Add what each sweep trained, reused and lost (its ``attrs``) to the chapter's tally."""
        for df in sweeps:
            for key in self.runs:
                self.runs[key] += df.attrs.get(key, 0)

    def reference(self, item: str, reference: float, values: Sequence[float], unit: str = "") -> dict:
        """Record a write-up number beside the reproduced mean (± std over seeds)."""
        mean, std, n = mean_std(values)
        row = {"item": item, "reference": reference, "reproduced": None if n == 0 else mean,
               "std": None if n == 0 else std, "difference": None if n == 0 else mean - reference,
               "n_seeds": n, "unit": unit}
        self.references.append(row)
        return row

    def claim(self, claim: str, a: Sequence[float], b: Sequence[float], min_effect: float = 0.0,
              section: str = "") -> str:
        """Judge "a > b" for a claim of the write-up; returns the verdict."""
        verdict, evidence = compare(a, b, min_effect)
        self.claims.append({"section": section, "claim": claim, "verdict": verdict, "evidence": evidence})
        return verdict

    def claim_verdict(self, claim: str, verdict: str, evidence: str, section: str = "") -> str:
        """Record a verdict computed by the chapter itself (e.g. a ranking or a threshold test)."""
        assert verdict in (SUPPORTED, CONTRADICTED, INCONCLUSIVE), verdict
        self.claims.append({"section": section, "claim": claim, "verdict": verdict, "evidence": evidence})
        return verdict

    def reference_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.references)

    def claims_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.claims)

    def save(self, directory: str | Path | None = None) -> Path:
        directory = Path(directory) if directory else paths.results_dir(self.profile)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"chapter": self.chapter, "title": self.title, "profile": self.profile, "data": self.data,
                   "references": self.references, "claims": self.claims, "notes": self.notes,
                   "runs": dict(self.runs), "seconds": time.time() - self.started}
        path = directory / f"{self.chapter}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=_json_default, allow_nan=False))
        tmp.replace(path)
        return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value))
