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
    """Runs that raised, with their error message."""
    if "status" not in df:
        return df.iloc[0:0]
    return df.loc[df.status == "failed"].drop_duplicates("hash")


def show_failures(*frames: pd.DataFrame) -> None:
    """Display the failed runs of sweeps, if any, so a chapter never hides one."""
    from IPython.display import Markdown, display

    failed = pd.concat([failures(f) for f in frames]) if frames else pd.DataFrame()
    if len(failed):
        display(Markdown(f"**{len(failed)} run(s) failed** and are left out of the figures below:"))
        display(failed[[c for c in ("label", "seed", "hash", "error") if c in failed]])
