"""Figures for chapters: training curves as mean over seeds with a ±1 std band, and bar charts."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .analysis import final_rows

sns.set_theme(style="whitegrid", context="notebook")
pd.set_option("display.max_colwidth", None)  # tables of assumptions and claims hold whole sentences
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def panels(n: int, width: float = 5.2, height: float = 3.6, title: Optional[str] = None):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig, list(axes[0])


def curves(df: pd.DataFrame, y: str, hue: str, ax, title: str = "", ylabel: Optional[str] = None,
           order: Optional[Sequence] = None, x: str = "epoch", band: bool = True) -> None:
    """Mean of ``y`` over seeds per ``hue`` setting, with a ±1 std band when there are several seeds."""
    order = list(order or dict.fromkeys(df[hue]))
    data = df[df[hue].isin(order) & df[y].notna()]
    for i, key in enumerate(order):
        part = data[data[hue] == key]
        if part.empty:
            continue
        stats = part.groupby(x)[y].agg(["mean", "std", "count"])
        every = max(1, len(stats) // 12)
        line, = ax.plot(stats.index, stats["mean"], marker=MARKERS[i % len(MARKERS)], markevery=every,
                        markersize=5, label=str(key))
        if band and (stats["count"] > 1).any():
            ax.fill_between(stats.index, stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel or y.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")


def bars(df: pd.DataFrame, y: str, x: str, ax, title: str = "", ylabel: Optional[str] = None,
         order: Optional[Sequence] = None, fmt: str = "{:.2f}", scale: float = 1.0) -> None:
    """Final ``y`` per setting: mean over seeds, error bar ±1 std, value printed on each bar."""
    finals = final_rows(df)
    order = list(order or dict.fromkeys(finals[x]))
    stats = finals.groupby(x)[y].agg(["mean", "std"]).reindex(order) * scale
    colors = sns.color_palette(n_colors=len(order))
    ax.bar(range(len(order)), stats["mean"], yerr=stats["std"].fillna(0), color=colors, capsize=4)
    for i, value in enumerate(stats["mean"]):
        if np.isfinite(value):
            ax.annotate(fmt.format(value), (i, value), ha="center", va="bottom", fontsize="small",
                        xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(order)), [str(o) for o in order], rotation=20, ha="right")
    ax.set_ylabel(ylabel or y.replace("_", " "))
    if title:
        ax.set_title(title)


def loss_and_accuracy(df: pd.DataFrame, order: Sequence, title: str, hue: str = "label",
                      loss: str = "train_loss", acc: str = "val_acc") -> None:
    """The write-ups' standard pair: (a) training loss and (b) validation accuracy against epochs."""
    fig, (left, right) = panels(2, title=title)
    curves(df, loss, hue, left, f"(a) {loss.replace('_', ' ').capitalize()} vs epoch", order=order)
    curves(df, acc, hue, right, f"(b) {acc.replace('_', ' ').replace('val', 'validation').capitalize()} vs epoch",
           order=order)
    fig.tight_layout()
    plt.show()
