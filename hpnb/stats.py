"""Summary statistics over seeds: each run's final row, mean, sample standard deviation, and their formatting."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of every run of a sweep's rows (failed runs keep their single row)."""
    if "epoch" not in df:
        return df.copy()
    ordered = df.sort_values("epoch", na_position="first")
    return ordered.groupby("hash", sort=False).tail(1).reset_index(drop=True)


def finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count of the finite values."""
    arr = finite(values)
    if len(arr) == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, len(arr)


def fmt_mean_std(values: Sequence[float], digits: int = 2) -> str:
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


__all__ = ["final_rows", "finite", "mean_std", "fmt_mean_std"]
