"""Chapter 3: learning-rate decay sequences × update strategies on MNIST and CIFAR-10."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..metrics import cifar_accuracy, convergence_epoch, mnist_accuracy
from ..registry import ConfigError
from ..results import fmt_mean_std
from ..sweep import expand
from . import check_seeds

PARAMETERS = ("profile", "seeds", "mnist", "cifar10", "r0", "momentum", "benchmark_lr", "cutoff_fraction",
              "cifar_seq1_cutoff_fraction", "zero_padded_history", "seq4_variant", "quirk_free")
DATASETS = ("mnist", "cifar10")
STRATEGIES = ("epoch", "cutoff", "oscillation")
STRATEGY_NAMES = {"epoch": "By epoch", "cutoff": "By cutoff", "oscillation": "By oscillation"}
SEQUENCES = ("seq1", "seq2", "seq3", "seq4")
BENCHMARKS = ("SGD", "Adam")
SETTINGS = tuple(f"{s} · {q}" for s in STRATEGIES for q in SEQUENCES) + BENCHMARKS

# The write-up's Tables 1 and 2: (accuracy, convergence epoch) per setting.
REFERENCE = {
    "mnist": {"SGD": (.98264, 34), "Adam": (.98574, 30),
              "epoch · seq1": (.97608, 48), "epoch · seq2": (.98230, 38), "epoch · seq3": (.98263, 19),
              "epoch · seq4": (.98527, 40), "cutoff · seq1": (.98290, 32), "cutoff · seq2": (.98405, 28),
              "cutoff · seq3": (.98614, 29), "cutoff · seq4": (.98656, 22), "oscillation · seq1": (.98372, 25),
              "oscillation · seq2": (.98544, 27), "oscillation · seq3": (.98514, 24),
              "oscillation · seq4": (.98586, 30)},
    "cifar10": {"SGD": (.7487, 25), "Adam": (.7309, 17),
                "epoch · seq1": (.763, 8), "epoch · seq2": (.7696, 12), "epoch · seq3": (.7803, 11),
                "epoch · seq4": (.7679, 14), "cutoff · seq1": (.7714, 15), "cutoff · seq2": (.6438, 25),
                "cutoff · seq3": (.6004, 25), "cutoff · seq4": (.5848, 25), "oscillation · seq1": (.7677, 8),
                "oscillation · seq2": (.773, 11), "oscillation · seq3": (.7692, 15),
                "oscillation · seq4": (.7673, 12)},
}
QUIRK_OPTIONS = {"mnist": ("double_softmax",), "cifar10": ("dropout_first_epoch_only",)}


@dataclass
class Plan:
    profile: str
    seeds: list
    base: dict  # dataset → RunConfig (quirks as the parameters say)
    grids: dict  # dataset → list of sweep points
    quirk_free_base: dict
    quirk_free_grids: dict
    params: dict


def _grid(dataset: str, p: dict, quirks: bool) -> list:
    points = []
    for strategy in STRATEGIES:
        for seq in SEQUENCES:
            opts = {"name": strategy, "sequence": p["seq4_variant"] if seq == "seq4" else seq}
            if strategy == "cutoff":
                special = quirks and dataset == "cifar10" and seq == "seq1"  # the original's 0.1 cutoff run
                opts["cutoff_fraction"] = p["cifar_seq1_cutoff_fraction"] if special else p["cutoff_fraction"]
            if strategy == "oscillation":
                opts["zero_padded_history"] = bool(p["zero_padded_history"]) and quirks
            points.append({"label": f"{strategy} · {seq}", "strategy": opts,
                           "optimizer": {"name": "sgd", "lr": p["r0"], "momentum": p["momentum"]}})
    points.append({"label": "SGD", "strategy": {"name": "none"},
                   "optimizer": {"name": "sgd", "lr": p["benchmark_lr"], "momentum": p["momentum"]}})
    points.append({"label": "Adam", "strategy": {"name": "none"}, "optimizer": {"name": "adam", "lr": p["benchmark_lr"]}})
    return points


def plan(params: dict) -> Plan:
    seeds = check_seeds(params["seeds"])
    for key in ("r0", "benchmark_lr", "cutoff_fraction", "cifar_seq1_cutoff_fraction"):
        if not isinstance(params[key], (int, float)) or params[key] <= 0:
            raise ConfigError(f"{key}: got {params[key]!r}, expected a number > 0")
    if params["seq4_variant"] not in ("seq4", "seq4_printed"):
        raise ConfigError(f"seq4_variant: got {params['seq4_variant']!r}, expected 'seq4' or 'seq4_printed'")
    for key in ("zero_padded_history", "quirk_free"):
        if not isinstance(params[key], bool):
            raise ConfigError(f"{key}: got {params[key]!r}, expected true or false")
    base, grids, free_base, free_grids = {}, {}, {}, {}
    for dataset in DATASETS:
        section = params[dataset]
        if not isinstance(section, dict):
            raise ConfigError(f"{dataset}: expected a mapping, got {section!r}")
        try:
            cfg = RunConfig.from_dict(section)
        except ConfigError as err:
            raise ConfigError(f"{dataset}: {err}") from None
        if cfg.data.validation != "test":
            raise ConfigError(f"{dataset}.data.validation: the study validates on the official test split; set 'test'")
        if cfg.epochs < 5:
            raise ConfigError(f"{dataset}.epochs: got {cfg.epochs}, the metrics need at least 5 epochs")
        base[dataset] = cfg
        grids[dataset] = _grid(dataset, params, quirks=True)
        free_base[dataset] = cfg.replace(**{f"model.{q}": False for q in QUIRK_OPTIONS[dataset]
                                            if q in cfg.model.options})
        free_grids[dataset] = _grid(dataset, params, quirks=False)
        for point in grids[dataset] + free_grids[dataset]:  # every setting validated before any run
            try:
                cfg.replace(**{k: v for k, v in point.items() if k != "label"})
            except ConfigError as err:
                raise ConfigError(f"{dataset} setting {point['label']}: {err}") from None
    return Plan(params["profile"], seeds, base, grids, free_base, free_grids, params)


def planned_runs(p: Plan) -> list[RunConfig]:
    sweeps = [(p.base[d], p.grids[d]) for d in DATASETS]
    if p.params["quirk_free"]:
        sweeps += [(p.quirk_free_base[d], p.quirk_free_grids[d]) for d in DATASETS]
    return [cfg for base, grid in sweeps for _, cfg in expand(base, grid, p.seeds)]


def quirks_in_use(p: Plan) -> pd.DataFrame:
    rows = []
    for dataset, cfg in p.base.items():
        for q in QUIRK_OPTIONS[dataset]:
            rows.append((dataset, q, cfg.model.options.get(q)))
    rows.append(("both", "oscillation history padded with zeros", p.params["zero_padded_history"]))
    rows.append(("cifar10", "cutoff fraction of the seq1 · cutoff run", p.params["cifar_seq1_cutoff_fraction"]))
    rows.append(("both", "seq4 formula", p.params["seq4_variant"]))
    return pd.DataFrame(rows, columns=["dataset", "quirk", "value in this run"])


def run_metrics(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per run: the study's accuracy and convergence epoch, computed from its validation-accuracy history."""
    accuracy = mnist_accuracy if dataset == "mnist" else cifar_accuracy
    rows = []
    for (label, seed, run_hash), part in df[df.status != "failed"].groupby(["label", "seed", "hash"], sort=False):
        acc = part.sort_values("epoch")["val_acc"].to_numpy()
        rows.append({"label": label, "seed": seed, "accuracy": accuracy(acc),
                     "convergence": convergence_epoch(acc), "updates": int((np.diff(part.sort_values("epoch")["lr"]) != 0).sum())})
    return pd.DataFrame(rows)


def comparison_table(metrics: pd.DataFrame, dataset: str, with_reference: bool = True) -> pd.DataFrame:
    """Accuracy and convergence epoch of all 14 settings; ★ marks the best mean in each column."""
    stats = metrics.groupby("label").agg(acc=("accuracy", "mean"), conv=("convergence", "mean"))
    best_acc, best_conv = stats["acc"].idxmax(), stats["conv"].idxmin()
    rows = []
    for label in SETTINGS:
        part = metrics[metrics.label == label]
        row = {"setting": label,
               "accuracy": fmt_mean_std(part["accuracy"], 4) + (" ★" if label == best_acc else ""),
               "convergence epoch": fmt_mean_std(part["convergence"], 1) + (" ★" if label == best_conv else "")}
        if with_reference:
            ref_acc, ref_conv = REFERENCE[dataset][label]
            row["write-up accuracy"], row["write-up convergence"] = f"{ref_acc:.4f}", str(ref_conv)
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def best(metrics: pd.DataFrame, column: str, labels, lowest: bool = False) -> str:
    stats = metrics[metrics.label.isin(labels)].groupby("label")[column].mean()
    return stats.idxmin() if lowest else stats.idxmax()


def reference_best(dataset: str, column: int, lowest: bool = False) -> str:
    table = {k: v[column] for k, v in REFERENCE[dataset].items()}
    return (min if lowest else max)(table, key=table.get)


def values(metrics: pd.DataFrame, label: str, column: str) -> list:
    return metrics.loc[metrics.label == label, column].tolist()


def strategy_figure(df: pd.DataFrame, strategy: str, title: str, last: int = 4) -> None:
    """Validation accuracy of the four sequences under one strategy, with a close-up of the last epochs."""
    from .. import plots

    labels = [f"{strategy} · {q}" for q in SEQUENCES]
    fig, (left, right) = plots.panels(2, title=title)
    plots.curves(df, "val_acc", "label", left, "(a) Validation accuracy vs epoch", order=labels)
    tail = df[df.epoch > df.epoch.max() - last]
    plots.curves(tail, "val_acc", "label", right, f"(b) Close-up of the last {last} epochs", order=labels)
    fig.tight_layout()
    plots.plt.show()


def lr_figure(df: pd.DataFrame, title: str) -> None:
    """The learning rate each setting actually used per epoch (seed of the first run), one panel a strategy."""
    from .. import plots

    first_seed = df[df.seed == df.seed.min()]
    fig, axes = plots.panels(3, width=4.4, title=title)
    for ax, strategy in zip(axes, STRATEGIES):
        plots.curves(first_seed, "lr", "label", ax, STRATEGY_NAMES[strategy],
                     order=[f"{strategy} · {q}" for q in SEQUENCES], band=False)
        ax.set_yscale("log")
    fig.tight_layout()
    plots.plt.show()


__all__ = ["strategy_figure", "lr_figure", "plan", "quirks_in_use", "run_metrics", "comparison_table", "best", "reference_best", "values",
           "SETTINGS", "STRATEGIES", "SEQUENCES", "REFERENCE"]
