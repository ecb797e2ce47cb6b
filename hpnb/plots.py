"""Figure building blocks for chapters: training curves as the mean over seeds with a ±1 sd band, bar charts
of final values, one legend under the panels, integer epoch ticks, a log axis where one curve would flatten
the others, and one colour per setting across a chapter's figures. Accuracies are drawn in percent. Nothing
here changes global matplotlib, seaborn or pandas settings: styles apply inside these functions only."""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from .stats import final_rows

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
PERCENT_COLUMNS = ("train_acc", "val_acc", "test_acc")
LABELS = {"train_loss": "train loss", "val_loss": "validation loss", "test_loss": "test loss",
          "train_acc": "train accuracy (%)", "val_acc": "validation accuracy (%)", "test_acc": "test accuracy (%)",
          "lr": "learning rate", "grad_norm": "gradient 2-norm", "test_auc": "test ROC-AUC", "cka": "linear CKA"}
LOG_SPREAD = 100  # a positive quantity spanning more than this factor is drawn on a log axis


@contextlib.contextmanager
def style():
    import seaborn as sns

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        yield


def palette(labels: Sequence) -> dict:
    """One colour per setting, to pass to every figure of a chapter so a setting keeps its colour."""
    import seaborn as sns

    return dict(zip(labels, sns.color_palette("tab10", n_colors=max(10, len(labels)))))


def figure(n: int = 1, width: float = 5.2, height: float = 3.6, rows: int = 1, sharey: bool = False):
    """A figure of ``n`` panels in ``rows`` rows, in the chapters' style; returns (fig, list of axes)."""
    with style():
        cols = -(-n // rows)
        fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=sharey)
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def percent(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy columns as percentages (how every chapter shows them)."""
    out = df.copy()
    for col in PERCENT_COLUMNS:
        if col in out:
            out[col] = 100 * out[col]
    return out


def wants_log(values) -> bool:
    """Whether positive values span so many decades that a linear axis would flatten most of them."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return bool(len(values) and (values > 0).all() and values.max() / values.min() > LOG_SPREAD)


def curves(df: pd.DataFrame, y: str, hue: str, ax, title: str = "", ylabel: Optional[str] = None,
           order: Optional[Sequence] = None, x: str = "epoch", band: bool = True, log: Optional[bool] = None,
           colors: Optional[dict] = None, labels: Optional[dict] = None) -> None:
    """Mean of ``y`` over seeds per ``hue`` setting, with a ±1 sd band when there are several seeds.
    ``log=None`` picks a log axis when the curves span more than ``LOG_SPREAD``; on a log axis the mean and band
    are geometric (mean and sd of the logarithm), so a band never reaches below the data. ``colors`` and
    ``labels`` map a setting to its colour and legend text."""
    order = list(order or dict.fromkeys(df[hue]))
    scale = 100 if y in PERCENT_COLUMNS else 1
    data = df[df[hue].isin(order) & df[y].notna()]
    parts = {key: data[data[hue] == key] for key in order}
    if log is None:
        log = wants_log([v for part in parts.values() for v in part.groupby(x)[y].mean()])
    with style():
        for i, (key, part) in enumerate(parts.items()):
            if part.empty:
                continue
            values = np.log10((scale * part[y]).clip(lower=1e-300)) if log else scale * part[y]
            stats = values.groupby(part[x]).agg(["mean", "std", "count"])
            mean, sd = stats["mean"], stats["std"].fillna(0)
            low, high = (10 ** (mean - sd), 10 ** (mean + sd)) if log else (mean - sd, mean + sd)
            middle = 10 ** mean if log else mean
            every = max(1, len(stats) // 12)
            line, = ax.plot(stats.index, middle, marker=MARKERS[i % len(MARKERS)], markevery=every, markersize=5,
                            label=str((labels or {}).get(key, key)), color=(colors or {}).get(key))
            if band and (stats["count"] > 1).any():
                ax.fill_between(stats.index, low, high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel or LABELS.get(y, y.replace("_", " ")))
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)


def legend_below(fig, ax, ncol: Optional[int] = None, labels: Optional[Sequence[str]] = None) -> None:
    """One legend for the whole figure, under the panels, so it never covers data (``labels`` renames)."""
    handles, names = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels or names, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=ncol or min(len(handles), 4), fontsize="small", frameon=False)
    fig.tight_layout()


def bars(df: pd.DataFrame, y: str, x: str, ax, title: str = "", ylabel: Optional[str] = None,
         order: Optional[Sequence] = None, fmt: str = "{:.2f}", colors: Optional[dict] = None) -> None:
    """Final ``y`` per setting: mean over seeds, error bar ±1 sd, the value printed above the bar."""
    finals = final_rows(df)
    finals = finals[finals.status == "finished"] if "status" in finals else finals
    order = list(order or dict.fromkeys(finals[x]))
    scale = 100 if y in PERCENT_COLUMNS else 1
    stats = finals.groupby(x)[y].agg(["mean", "std"]).reindex(order) * scale
    sd = stats["std"].fillna(0)
    with style():
        fallback = palette(order)
        ax.bar(range(len(order)), stats["mean"], yerr=sd, capsize=4,
               color=[(colors or fallback).get(o, fallback[o]) for o in order])
    for i, (value, spread) in enumerate(zip(stats["mean"], sd)):
        if np.isfinite(value):
            ax.annotate(fmt.format(value), (i, value + spread), ha="center", va="bottom", fontsize="small",
                        xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(order)), [str(o) for o in order], rotation=20, ha="right")
    ax.set_ylabel(ylabel or LABELS.get(y, y.replace("_", " ")))
    ax.margins(y=0.12)
    if title:
        ax.set_title(title)


def loss_and_accuracy(df: pd.DataFrame, order: Sequence, hue: str = "label", loss: str = "train_loss",
                      acc: str = "val_acc", colors: Optional[dict] = None):
    """The write-ups' standard pair: (a) training loss and (b) validation accuracy against epochs."""
    fig, (left, right) = figure(2)
    curves(df, loss, hue, left, f"(a) {LABELS[loss]}", order=order, colors=colors)
    curves(df, acc, hue, right, f"(b) {LABELS[acc]}", order=order, colors=colors)
    legend_below(fig, left)
    return fig


def curve_data(df: pd.DataFrame, columns: Sequence[str], hue: str = "label") -> pd.DataFrame:
    """What a curves figure plots, per setting, seed and epoch (accuracies in percent): its data file."""
    keep = [c for c in (hue, "seed", "epoch", *columns) if c in df]
    return percent(df[df.status != "failed"][keep] if "status" in df else df[keep])


__all__ = ["figure", "curves", "bars", "legend_below", "loss_and_accuracy", "percent", "curve_data", "style",
           "palette", "wants_log"]
