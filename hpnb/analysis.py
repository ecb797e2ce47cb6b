"""Helpers over a sweep's tidy DataFrame: one row per run, per-seed values per setting."""
from __future__ import annotations

import pandas as pd


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of every run (failed runs keep their single row)."""
    if "epoch" not in df:
        return df.copy()
    ordered = df.sort_values("epoch", na_position="first")
    return ordered.groupby("hash", sort=False).tail(1).reset_index(drop=True)


def per_setting(df: pd.DataFrame, by: str, metric: str) -> dict:
    """``{setting: [final metric of each seed]}`` in the order settings first appear."""
    finals = final_rows(df)
    order = list(dict.fromkeys(df[by]))
    return {key: finals.loc[finals[by] == key, metric].tolist() for key in order}


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that raised, with their error message (shown by chapters so nothing fails silently)."""
    if "status" not in df:
        return df.iloc[0:0]
    return df.loc[df.status == "failed"].drop_duplicates("hash")
