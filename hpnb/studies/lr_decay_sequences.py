"""Chapter 3: learning-rate decay sequences × update strategies on MNIST and CIFAR-10, with the original
code's quirks as switches and the same grid without them.

Its metrics are the original code's: the accuracy of a run (MNIST: mean validation accuracy of the last five
epochs but the final one; CIFAR-10: the last epoch's) and its convergence epoch (the first 0-based epoch from
which four successive accuracy changes sum to less than 0.009; a run that never settles is *censored* at the
epoch count, and a claim resting on censored values is not measurable).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, Sequence

import numpy as np
import pandas as pd

from .. import plots
from ..claims import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE, SUPPORTED, Claim, Measure, Verdict, better,
                      best_of, equivalent, every, leader, measure, ranking)
from ..config import RunConfig
from ..exhibits import Section, Text
from ..registry import ConfigError
from ..results import ChapterResults
from ..schema import Rule, positive
from ..strategies import decay_sequence
from .base import ReferenceTable, Seeds, StudyParams, StudyPlan, Sweep, run_config

NAME = "03_lr_decay_sequences"
TITLE = "Chapter 3: Learning-rate decay sequences and update strategies"
DATASETS = ("mnist", "cifar10")
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
STRATEGIES = ("epoch", "cutoff", "oscillation")
STRATEGY_NAMES = {"epoch": "By epoch", "cutoff": "By cutoff", "oscillation": "By oscillation"}
SEQUENCES = ("seq1", "seq2", "seq3", "seq4")
BENCHMARKS = ("SGD", "Adam")
SETTINGS = tuple(f"{s} · {q}" for s in STRATEGIES for q in SEQUENCES) + BENCHMARKS
QUIRK_OPTIONS = {"mnist": ("double_softmax",), "cifar10": ("dropout_first_epoch_only",)}
# The write-up's figure numbers: one per strategy, then the best settings against the benchmarks.
FIGURES = {"mnist": ("2", "3", "4", "5"), "cifar10": ("6a", "6b", "7a", "7b")}
ACCURACY_EFFECT = {"mnist": 0.1, "cifar10": 0.5}  # points: the smallest accuracy difference worth a verdict
SIMILAR_WITHIN = {"mnist": 0.2, "cifar10": 1.0}  # points: "behave similarly" [chosen]
# A colour per sequence in the per-strategy figures; the benchmarks and the strategies' best settings get their own.
COLORS = dict(zip(list(SEQUENCES) + list(BENCHMARKS) + [f"best of {s}" for s in STRATEGIES],
                  plots.palette(range(9)).values()))
CHANCE = 0.1  # ten classes

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
# The write-up's per-strategy findings (§ 4.2 and § 4.3, items 1–3): (fastest, most accurate) sequence.
FINDINGS = {"mnist": {"epoch": ("seq3", "seq4"), "cutoff": ("seq4", "seq4"), "oscillation": ("seq3", "seq3")},
            "cifar10": {"epoch": ("seq1", "seq3"), "cutoff": (None, "seq1"), "oscillation": ("seq1", None)}}


# --------------------------------------------------------------------------- the original code's metrics
def convergence_epoch(val_acc: Sequence[float], window: int = 4, threshold: float = 0.009) -> int:
    """First 0-based index i where the ``window`` consecutive |Δ accuracy| between epochs i+1 … i+window+1
    sum to less than ``threshold``; the number of epochs if that never happens (censored)."""
    acc = np.asarray(val_acc, dtype=float)
    steps = np.abs(np.diff(acc))
    for i in range(len(steps) - window + 1):
        if steps[i:i + window].sum() < threshold:
            return i
    return len(acc)


def cifar_accuracy(val_acc: Sequence[float]) -> float:
    """CIFAR-10: the last epoch's validation accuracy."""
    return float(val_acc[-1])


def mnist_accuracy(val_acc: Sequence[float]) -> float:
    """MNIST: the mean validation accuracy of the last five epochs but the final one (46th–49th of 50)."""
    acc = np.asarray(val_acc, dtype=float)
    if len(acc) < 5:
        raise ValueError(f"the MNIST accuracy needs at least 5 epochs, got {len(acc)}")
    return float(acc[-5:-1].mean())


# --------------------------------------------------------------------------- parameters and sweeps
@dataclass(frozen=True)
class Params(StudyParams):
    profile: str
    seeds: Seeds
    mnist: dict[str, Any]  # the MNIST network's run (data, model, epochs, batch size)
    cifar10: dict[str, Any]
    r0: Annotated[float, positive()]
    momentum: Annotated[float, Rule(lambda v: 0 <= v < 1, "a number in [0, 1)")]
    benchmark_lr: Annotated[float, positive()]
    cutoff_fraction: Annotated[float, positive()]
    cifar_seq1_cutoff_fraction: Annotated[float, positive()]  # the original's one run with 0.1
    zero_padded_history: bool
    seq4_variant: Literal["seq4", "seq4_printed"]
    quirk_free: bool  # also run the grid with every quirk switched off

    def check(self) -> None:
        for dataset in DATASETS:
            cfg = self.base(dataset)
            if cfg.data.validation != "test":
                raise ConfigError(f"{dataset}.data.validation: the study validates on the official test split; "
                                  f"set 'test'")
            if cfg.epochs < 5:
                raise ConfigError(f"{dataset}.epochs: got {cfg.epochs}, the metrics need at least 5 epochs")
            for sweep in (self.sweep(dataset, True), self.sweep(dataset, False)):
                for point in sweep.grid:  # every setting validated before any run
                    try:
                        sweep.point_config(point)
                    except ConfigError as err:
                        raise ConfigError(f"{dataset} setting {point['label']}: {err}") from None

    def base(self, dataset: str, quirks: bool = True) -> RunConfig:
        cfg = self._bases[dataset]
        if quirks:
            return cfg
        return cfg.replace(**{f"model.{q}": False for q in QUIRK_OPTIONS[dataset] if q in cfg.model.options})

    @cached_property
    def _bases(self) -> dict[str, RunConfig]:
        return {d: run_config(getattr(self, d), d) for d in DATASETS}

    def sweep(self, dataset: str, quirks: bool = True) -> Sweep:
        """The 14 settings on ``dataset``: 4 sequences × 3 strategies at r0, and the two fixed-rate benchmarks."""
        points = []
        for strategy in STRATEGIES:
            for seq in SEQUENCES:
                opts = {"name": strategy, "sequence": self.seq4_variant if seq == "seq4" else seq}
                if strategy == "cutoff":
                    special = quirks and dataset == "cifar10" and seq == "seq1"  # the original's 0.1 cutoff run
                    opts["cutoff_fraction"] = self.cifar_seq1_cutoff_fraction if special else self.cutoff_fraction
                if strategy == "oscillation":
                    opts["zero_padded_history"] = self.zero_padded_history and quirks
                points.append({"label": f"{strategy} · {seq}", "strategy": opts,
                               "optimizer": {"name": "sgd", "lr": self.r0, "momentum": self.momentum}})
        points.append({"label": "SGD", "strategy": {"name": "none"},
                       "optimizer": {"name": "sgd", "lr": self.benchmark_lr, "momentum": self.momentum}})
        points.append({"label": "Adam", "strategy": {"name": "none"},
                       "optimizer": {"name": "adam", "lr": self.benchmark_lr}})
        name = dataset if quirks else f"{dataset}_quirk_free"
        return Sweep(name, self.base(dataset, quirks), tuple(points), self.seeds)


def plan(p: Params, store=None) -> StudyPlan:
    sweeps = {d: p.sweep(d) for d in DATASETS}
    if p.quirk_free:
        sweeps.update({f"{d}_quirk_free": p.sweep(d, quirks=False) for d in DATASETS})
    return StudyPlan(sweeps)


def quirks_in_use(p: Params) -> pd.DataFrame:
    on = lambda flag: "on" if flag else "off"  # noqa: E731
    rows = [("MNIST", "a softmax on the output before the loss's own (double softmax)",
             on(p.base("mnist").model.options.get("double_softmax"))),
            ("CIFAR-10", "dropout in the first epoch only (the network never went back to train mode)",
             on(p.base("cifar10").model.options.get("dropout_first_epoch_only"))),
            ("both", "the oscillation rule compares epoch 1 with a zero (so it always fires then)",
             on(p.zero_padded_history)),
            ("CIFAR-10", "cutoff of the seq1 · cutoff run, as a fraction of the first validation loss",
             f"{p.cifar_seq1_cutoff_fraction:g} (the others: {p.cutoff_fraction:g})"),
            ("both", "seq4", "as the runs used it (the first update keeps r₀)" if p.seq4_variant == "seq4"
             else "as printed in the write-up")]
    return pd.DataFrame(rows, columns=["dataset", "quirk of the original code", "in this run"]).set_index(
        ["dataset", "quirk of the original code"])


def configuration(p: Params) -> pd.DataFrame:
    """§ 4.1: the 14 settings of each dataset as this run trains them."""
    rows = []
    for dataset in DATASETS:
        sweep = p.sweep(dataset)
        for point in sweep.grid:
            cfg = sweep.point_config(point)
            s = cfg.strategy
            rows.append({"dataset": DATASET_NAMES[dataset], "setting": point["label"],
                         "optimizer": cfg.optimizer.name, "initial rate": cfg.optimizer.options["lr"],
                         "momentum": cfg.optimizer.options.get("momentum", "—"),
                         "rate changes": "never" if s.name == "none" else f"{STRATEGY_NAMES[s.name].lower()}, "
                                                                          f"{s.options['sequence']}",
                         "cutoff fraction": s.options.get("cutoff_fraction", "—"),
                         "zero-padded history": s.options.get("zero_padded_history", "—"),
                         "epochs": cfg.epochs, "batch": cfg.batch_size})
    return pd.DataFrame(rows).set_index(["dataset", "setting"])


def sequences_figure(p: Params, results: ChapterResults, updates: int = 50):
    fig, (ax,) = plots.figure(1, width=8)
    j = np.arange(1, updates + 1)
    names = list(SEQUENCES) + (["seq4_printed"] if p.seq4_variant == "seq4_printed" else [])
    data = pd.DataFrame({"update": j, **{n: decay_sequence(p.seq4_variant if n == "seq4" else n, p.r0, updates)
                                         for n in names}})
    with plots.style():
        for name in names:
            ax.plot(j, data[name], marker=".", label=name)
    ax.set_xlabel("update j")
    ax.set_ylabel("learning rate")
    plots.legend_below(fig, ax)
    return results.figure("1", f"The four decay sequences (r₀ = {p.r0:g})", fig, data)


# --------------------------------------------------------------------------- measurements
def run_metrics(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per run: the study's accuracy and convergence epoch (and whether it converged) from its history."""
    accuracy = mnist_accuracy if dataset == "mnist" else cifar_accuracy
    rows = []
    for (label, seed, run_hash), part in df.groupby(["label", "seed", "hash"], sort=False):
        status = part["status"].iloc[0]
        if status != "finished":
            rows.append({"label": label, "seed": seed, "status": status, "accuracy": np.nan, "convergence": np.nan,
                         "converged": False, "updates": 0})
            continue
        part = part.sort_values("epoch")
        acc = part["val_acc"].to_numpy()
        epoch = convergence_epoch(acc)
        rows.append({"label": label, "seed": seed, "status": status, "accuracy": accuracy(acc),
                     "convergence": epoch, "converged": epoch < len(acc),
                     "updates": int((np.diff(part["lr"]) != 0).sum())})
    return pd.DataFrame(rows)


def accuracy_measure(metrics: pd.DataFrame, label: str) -> Measure:
    rows = metrics[metrics.label == label]
    return measure(label, rows.loc[rows.status == "finished", "accuracy"].tolist(), runs=len(rows),
                   diverged=int((rows.status == "diverged").sum()), chance=CHANCE, scale=100)


def convergence_measure(metrics: pd.DataFrame, label: str) -> Measure:
    """A setting's convergence epochs; near chance when its accuracy is (a flat curve "settles" at once)."""
    rows = metrics[metrics.label == label]
    done = rows[rows.status == "finished"]
    flat = accuracy_measure(metrics, label).near_chance
    return Measure(label, tuple(done["convergence"]), runs=len(rows), diverged=int((rows.status == "diverged").sum()),
                   censored=int((~done.converged.astype(bool)).sum()), near_chance=flat)


def _claim(dataset: str, key: str, statement: str, section: str, what: str, source="write-up") -> Claim:
    unit, effect = ("points", ACCURACY_EFFECT[dataset]) if what == "accuracy" else ("epochs", 1.0)
    return Claim(f"ch3-{dataset}-{key}", f"{DATASET_NAMES[dataset]}: {statement}", section, source, unit, effect)


def _best(dataset, metrics, key, statement, section, claimed, labels, what):
    m = [accuracy_measure(metrics, x) if what == "accuracy" else convergence_measure(metrics, x) for x in labels]
    return best_of(_claim(dataset, key, statement, section, what), claimed, m, higher=what == "accuracy")


# --------------------------------------------------------------------------- figures and tables
def strategy_figure(df: pd.DataFrame, strategy: str, results: ChapterResults, dataset: str, number: str,
                    last: int = 5):
    """Validation accuracy of the four sequences under one strategy, and a close-up of the last epochs (those
    the accuracy metric reads: the last five but one on MNIST, the last on CIFAR-10)."""
    labels = [f"{strategy} · {q}" for q in SEQUENCES]
    colors = {f"{strategy} · {q}": COLORS[q] for q in SEQUENCES}
    fig, (left, right) = plots.figure(2)
    plots.curves(df, "val_acc", "label", left, "(a) validation accuracy", order=labels, colors=colors)
    tail = df[df.epoch > df.epoch.max() - last]
    plots.curves(tail, "val_acc", "label", right, f"(b) close-up of the last {last} epochs", order=labels,
                 colors=colors)
    plots.legend_below(fig, left, labels=list(SEQUENCES))
    return results.figure(number, f"{DATASET_NAMES[dataset]}: the four sequences under “{STRATEGY_NAMES[strategy]}”",
                          fig, plots.curve_data(df[df.label.isin(labels)], ["val_acc"]))


def strategy_figures(df: pd.DataFrame, results: ChapterResults, dataset: str) -> Section:
    """The write-up's one figure per strategy for ``dataset`` (MNIST: 2–4; CIFAR-10: 6a, 6b, 7a)."""
    return Section(*(strategy_figure(df, s, results, dataset, n) for s, n in zip(STRATEGIES, FIGURES[dataset])))


def best_settings_figure(df: pd.DataFrame, metrics: pd.DataFrame, results: ChapterResults, dataset: str,
                         number: str):
    per_strategy, tied = [], []
    for s in STRATEGIES:  # by mean accuracy; a tie is broken by sequence order, and the caption says so
        ranked = ranking([accuracy_measure(metrics, f"{s} · {q}") for q in SEQUENCES])
        per_strategy.append(ranked[0].label)
        if ranked[0].mean == ranked[1].mean:
            tied.append(STRATEGY_NAMES[s])
    order = per_strategy + list(BENCHMARKS)
    colors = {**{label: COLORS[f"best of {s}"] for label, s in zip(per_strategy, STRATEGIES)},
              **{b: COLORS[b] for b in BENCHMARKS}}
    fig, (left, right) = plots.figure(2)
    plots.curves(df, "val_acc", "label", left, "(a) validation accuracy", order=order, colors=colors)
    plots.curves(df, "val_loss", "label", right, "(b) validation loss", order=order, colors=colors)
    plots.legend_below(fig, left, ncol=5)
    note = f" (ties under {', '.join(tied)} go to the first sequence)" if tied else ""
    return results.figure(number, f"{DATASET_NAMES[dataset]}: the most accurate sequence of each strategy against "
                                  f"the benchmarks{note}", fig,
                          plots.curve_data(df[df.label.isin(order)], ["val_acc", "val_loss"]))


def lr_figure(df: pd.DataFrame, results: ChapterResults, dataset: str, number: str):
    first_seed = df[df.seed == df.seed.min()]
    fig, axes = plots.figure(3, width=3.8, sharey=True)  # one scale: the strategies' rates compare directly
    for ax, strategy in zip(axes, STRATEGIES):
        plots.curves(first_seed, "lr", "label", ax, STRATEGY_NAMES[strategy],
                     order=[f"{strategy} · {q}" for q in SEQUENCES], band=False, log=True,
                     colors={f"{strategy} · {q}": COLORS[q] for q in SEQUENCES})
    plots.legend_below(fig, axes[0], labels=list(SEQUENCES))  # the same colour per sequence in every panel
    labels = [f"{s} · {q}" for s in STRATEGIES for q in SEQUENCES]
    return results.figure(number, f"Beyond the write-up: {DATASET_NAMES[dataset]}: the learning rate each setting "
                                  f"used per epoch (seed {df.seed.min()})", fig,
                          first_seed[first_seed.label.isin(labels)][["label", "epoch", "lr"]])


def comparison_table(metrics: pd.DataFrame, dataset: str, results: ChapterResults, number: str,
                     with_reference: bool = True):
    """Accuracy and convergence epoch of the 14 settings; ★ marks the best mean of a column when the runs can
    name one. A setting with runs that never converged gets no convergence mean (it would only be the epoch
    budget), and a setting flat at chance is marked: its "convergence" is a flat line, not learning."""
    acc = {s: accuracy_measure(metrics, s) for s in SETTINGS}
    conv = {s: convergence_measure(metrics, s) for s in SETTINGS}
    top_acc, _ = leader(list(acc.values()))
    top_conv, _ = leader(list(conv.values()), higher=False)
    table = ReferenceTable("setting")
    for label in SETTINGS:
        ref_acc, ref_conv = REFERENCE[dataset][label] if with_reference else (None, None)
        epochs = [] if conv[label].censored else list(conv[label].values)
        if with_reference:
            results.reference(f"Table {number}", f"{DATASET_NAMES[dataset]} · {label} · accuracy", 100 * ref_acc,
                              acc[label].values, "%")
            if epochs:  # a censored mean is the budget, not a measurement
                results.reference(f"Table {number}", f"{DATASET_NAMES[dataset]} · {label} · convergence epoch",
                                  ref_conv, epochs, "epochs")
        note = "flat at chance" if acc[label].near_chance else ""
        table.add(label, [("accuracy (%)", None if ref_acc is None else 100 * ref_acc, acc[label].values, 2),
                          ("convergence epoch", ref_conv, epochs, 1)],
                  **{"never converged": f"{conv[label].censored} of {conv[label].n}", "note": note})
    shown, numbers = table.frames()
    for column, top in (("accuracy (%) · reproduced", top_acc), ("convergence epoch · reproduced", top_conv)):
        if top is not None:
            shown.loc[top.label, column] += " ★"
    if not with_reference:
        shown = shown[[c for c in shown.columns if "write-up" not in c and "difference" not in c]]
    title = (f"{DATASET_NAMES[dataset]} comparison" + ("" if with_reference else " without the quirks")
             + "; ★ marks the best mean of a column when the runs can name one")
    note = ("Accuracy: " + ("mean validation accuracy over the last five epochs but the final one" if dataset == "mnist"
                            else "the last epoch's validation accuracy")
            + ". Convergence: the first 0-based epoch from which four successive accuracy changes sum to under "
              "0.009; runs that never get there have no convergence epoch, so a setting with any such run shows none.")
    return results.table(number, title, shown, note, data=numbers)


# --------------------------------------------------------------------------- the write-up's findings
def findings(dataset: str, metrics: pd.DataFrame, results: ChapterResults) -> Section:
    """The write-up's numbered findings for one dataset, each as a verdict."""
    section = "4.2" if dataset == "mnist" else "4.3"
    out = []
    for strategy, (fastest, accurate) in FINDINGS[dataset].items():
        labels = [f"{strategy} · {q}" for q in SEQUENCES]
        if fastest:
            out.append(_best(dataset, metrics, f"{strategy}-fastest", f"under “{STRATEGY_NAMES[strategy]}”, "
                             f"{fastest} converges fastest", section, f"{strategy} · {fastest}", labels, "convergence"))
        if accurate:
            out.append(_best(dataset, metrics, f"{strategy}-accurate", f"under “{STRATEGY_NAMES[strategy]}”, "
                             f"{accurate} reaches the highest accuracy", section, f"{strategy} · {accurate}", labels,
                             "accuracy"))
    fastest_all = "epoch · seq3" if dataset == "mnist" else "epoch · seq1"
    accurate_all = "cutoff · seq4" if dataset == "mnist" else "epoch · seq3"
    out.append(_best(dataset, metrics, "fastest-of-all", f"{fastest_all} converges fastest of the 14 settings",
                     section, fastest_all, SETTINGS, "convergence"))
    out.append(_best(dataset, metrics, "accurate-of-all", f"{accurate_all} reaches the highest accuracy of the 14 "
                     "settings", section, accurate_all, SETTINGS, "accuracy"))
    acc = {s: accuracy_measure(metrics, s) for s in SETTINGS}
    conv = {s: convergence_measure(metrics, s) for s in SETTINGS}
    bench = max((acc[b] for b in BENCHMARKS), key=lambda m: m.mean if m.n else -1)
    claim = _claim(dataset, "beats-benchmarks", f"{accurate_all} beats both benchmarks on accuracy", section, "accuracy")
    out.append(better(claim, acc[accurate_all], bench))
    if dataset == "mnist":
        best = [best_of(_claim(dataset, f"seq4-best-{s}", f"seq4 is the most accurate under {STRATEGY_NAMES[s]}",
                               section, "accuracy"), f"{s} · seq4", [acc[f"{s} · {q}"] for q in SEQUENCES])
                for s in STRATEGIES]
        worst = [best_of(_claim(dataset, f"seq1-worst-{s}", f"seq1 is the least accurate under {STRATEGY_NAMES[s]}",
                                section, "accuracy"), f"{s} · seq1", [acc[f"{s} · {q}"] for q in SEQUENCES],
                         higher=False) for s in STRATEGIES]
        out.append(every(_claim(dataset, "seq4-best-seq1-worst", "under every strategy seq4 is the most accurate and "
                                "seq1 the least", section, "accuracy"), best + worst))
    else:
        out.append(every(_claim(dataset, "seq1-fastest-everywhere", "seq1 converges fastest under every strategy",
                                section, "convergence"),
                         [best_of(_claim(dataset, f"seq1-fastest-{s}", f"seq1 fastest under {STRATEGY_NAMES[s]}",
                                         section, "convergence"), f"{s} · seq1",
                                  [conv[f"{s} · {q}"] for q in SEQUENCES], higher=False) for s in STRATEGIES]))
        order = ("seq1", "seq2", "seq4", "seq3")
        out.append(every(_claim(dataset, "oscillation-order", "under “By oscillation” convergence ranks seq1 < seq2 < "
                                "seq4 < seq3", section, "convergence"),
                         [better(_claim(dataset, f"osc-{a}-{b}", f"{a} before {b}", section, "convergence"),
                                 conv[f"oscillation · {a}"], conv[f"oscillation · {b}"], higher=False)
                          for a, b in zip(order, order[1:])]))
        beating = [better(_claim(dataset, f"beats-bench-{s}", f"{s} beats the better benchmark", section, "accuracy"),
                          acc[s], bench) for s in SETTINGS if s.startswith(("epoch", "oscillation"))]
        out.append(every(_claim(dataset, "epoch-oscillation-beat-benchmarks", "every “By epoch” and “By "
                                "oscillation” setting beats both benchmarks on accuracy", section, "accuracy"), beating))
    similar = [equivalent(_claim(dataset, f"seq3-seq4-{s}", f"seq3 ≈ seq4 under {STRATEGY_NAMES[s]}", section,
                                 "accuracy"), acc[f"{s} · seq3"], acc[f"{s} · seq4"], SIMILAR_WITHIN[dataset])
               for s in ("cutoff", "oscillation")]
    within = f"{SIMILAR_WITHIN[dataset]:g} point" + ("" if SIMILAR_WITHIN[dataset] == 1 else "s")
    out.append(every(_claim(dataset, "seq3-like-seq4", f"under “By cutoff” and “By oscillation” seq3 and seq4 behave "
                            f"alike (accuracy within {within})", section, "accuracy"),
                     similar))
    results.judge(*out)
    return Section(results.verdicts_in(section))


def updates_text(metrics: dict[str, pd.DataFrame]) -> Text:
    metrics = pd.concat(metrics.values(), ignore_index=True)
    updates = metrics.groupby("label")["updates"].mean()
    return Text("Mean number of rate changes per run — " + ", ".join(
        f"{STRATEGY_NAMES[s].lower()}: {updates[[f'{s} · {q}' for q in SEQUENCES]].mean():.1f}" for s in STRATEGIES)
        + ". Convergence fired in " + f"{int(metrics.converged.sum())} of {len(metrics)} runs.")


def overall(p: Params, metrics: dict[str, pd.DataFrame], results: ChapterResults) -> Section:
    """§ 4.4: the guidelines, computed; and whether settings differ more on CIFAR-10 than on MNIST."""
    rows = []
    guidelines = {"mnist": ("epoch · seq3", "cutoff · seq4"), "cifar10": ("oscillation · seq1", "epoch · seq3")}
    for d, m in metrics.items():
        fast, why_fast = leader([convergence_measure(m, s) for s in SETTINGS], higher=False)
        best, why_best = leader([accuracy_measure(m, s) for s in SETTINGS], unit="points")
        why_fast, why_best = (_short(w) for w in (why_fast, why_best))
        rows.append({"dataset": DATASET_NAMES[d], "for convergence time: the write-up's choice": guidelines[d][0],
                     "for convergence time: these runs'": fast.label if fast else f"none ({why_fast})",
                     "for accuracy: the write-up's choice": guidelines[d][1],
                     "for accuracy: these runs'": best.label if best else f"none ({why_best})"})
    spreads = {}
    for d, m in metrics.items():
        per_seed = m[m.status == "finished"].groupby("seed")["accuracy"].agg(lambda s: 100 * (s.max() - s.min()))
        flat = all(accuracy_measure(m, s).near_chance for s in SETTINGS)  # spreads of chance-level runs say nothing
        spreads[d] = Measure(DATASET_NAMES[d], tuple(per_seed), len(per_seed), near_chance=flat)
    claim = Claim("ch3-cifar-spread", "Settings differ more on CIFAR-10 than on MNIST (spread of accuracy across the "
                  "14 settings, per seed)", "4.4", unit="points", min_effect=0.5)
    stand_ins = {d: p.base(d).data.name for d in DATASETS if p.base(d).data.name != d}
    if stand_ins:  # the claim is about the two datasets' difficulty; stand-ins do not carry it
        reason = ("these runs use stand-in data (" + ", ".join(f"{DATASET_NAMES[d]}: {n}" for d, n in
                                                               stand_ins.items())
                  + "), not the two datasets whose difficulty the claim compares")
        results.judge(Verdict(claim, NOT_MEASURABLE, reason, "needs the real datasets", reason))
    else:
        results.judge(better(claim, spreads["cifar10"], spreads["mnist"]))
    table = results.table("4.4", "Guidelines: the write-up's choice and what these runs name (none when the runs "
                                 "cannot tell)", pd.DataFrame(rows).set_index("dataset"))
    return Section(table, results.verdicts_in("4.4"))


def quirk_free_section(p: Params, plan: StudyPlan, metrics: dict[str, pd.DataFrame],
                       results: ChapterResults) -> Section:
    """§ 4.5: the grid again with the quirks fixed (when the ``quirk_free`` parameter asks for it)."""
    if not p.quirk_free:
        return Section(Text("Switched off in this profile (`quirk_free: false`)."))
    fixed = {d: run_metrics(results.add_sweep(f"{d}_quirk_free", plan.sweeps[f"{d}_quirk_free"].run()), d)
             for d in DATASETS}
    tables = [comparison_table(fixed[d], d, results, n, with_reference=False) for d, n in zip(DATASETS, ("4.5a", "4.5b"))]
    lines = []
    for d in DATASETS:
        fired = fixed[d].groupby("label")["updates"].max()
        silent = [STRATEGY_NAMES[s] for s in STRATEGIES if fired[[f"{s} · {q}" for q in SEQUENCES]].max() == 0]
        if silent:
            lines.append(f"On {DATASET_NAMES[d]}, {' and '.join(silent)} never changed the rate in any run, so their "
                         f"four sequences all trained at r₀ throughout and end alike.")
    note = Text(" ".join(lines)) if lines else None
    return Section(*tables, note, *quirk_free(metrics, fixed, results))


def quirk_free(metrics: dict[str, pd.DataFrame], fixed: dict[str, pd.DataFrame], results: ChapterResults) -> Section:
    """Beyond: does the best setting survive fixing the original's quirks?"""
    verdicts, lines = [], []
    for d in DATASETS:
        for what, higher in (("accuracy", True), ("convergence", False)):
            pick = accuracy_measure if what == "accuracy" else convergence_measure
            before, why_b = leader([pick(metrics[d], s) for s in SETTINGS], higher)
            after, why_a = leader([pick(fixed[d], s) for s in SETTINGS], higher)
            claim = Claim(f"ch3-{d}-quirk-free-{what}", f"Beyond the write-up: on {DATASET_NAMES[d]} the best "
                          f"{what} setting is the same with the quirks fixed", "4.5", "beyond",
                          "points" if what == "accuracy" else "epochs",
                          ACCURACY_EFFECT[d] if what == "accuracy" else 1.0)
            verdicts.append(_same_leader(claim, before, why_b, after, why_a,
                                         lambda a, b: better(claim, pick(fixed[d], a), pick(fixed[d], b), higher)))
        shift = (fixed[d].groupby("label")["accuracy"].mean() - metrics[d].groupby("label")["accuracy"].mean()).mean()
        lines.append(f"On {DATASET_NAMES[d]}, fixing the quirks moves a setting's mean accuracy by "
                     f"{100 * shift:+.2f} points on average.")
    results.judge(*verdicts)
    return Section(Text(" ".join(lines)), results.verdicts_in("4.5"))


def _short(reason: str) -> str:
    """The first clause of a not-measurable reason (a table cell has no room for the list)."""
    return reason.split(" (")[0].split(";")[0]


def _same_leader(claim: Claim, before, why_before: str, after, why_after: str, versus) -> Verdict:
    """Whether one setting leads both grids: not measurable unless both leaders can be named; if they differ,
    contradicted only when the new leader beats the old one beyond the margin in the quirk-free grid."""
    rule = "supported when one setting leads both grids; contradicted when another leads the quirk-free grid clearly"
    if before is None or after is None:
        reason = (f"with the quirks: {why_before or before.label + ' leads'}; "
                  f"without: {why_after or after.label + ' leads'}")
        return Verdict(claim, NOT_MEASURABLE, reason, rule, reason)
    if before.label == after.label:
        return Verdict(claim, SUPPORTED, f"{before.label} leads both grids", rule)
    duel = versus(after.label, before.label)
    verdict = CONTRADICTED if duel.verdict == SUPPORTED else INCONCLUSIVE
    return Verdict(claim, verdict, f"with the quirks {before.label} leads, without them {after.label}: "
                                   f"{duel.evidence}", rule)


def conclusion(metrics: dict[str, pd.DataFrame], results: ChapterResults) -> Text:
    lines = []
    for d, m in metrics.items():
        acc = {s: accuracy_measure(m, s) for s in SETTINGS}
        best, why = leader(list(acc.values()))
        bench = max(acc[b].mean for b in BENCHMARKS if acc[b].n) if any(acc[b].n for b in BENCHMARKS) else np.nan
        beating = [s for s in SETTINGS if s not in BENCHMARKS and acc[s].n and acc[s].mean > bench]
        converged = int(m.converged.sum())
        lines.append(f"On {DATASET_NAMES[d]} " + (f"the most accurate setting is {best.label} ({best.mean:.2f} %)"
                                                  if best else f"no setting can be named most accurate ({why})")
                     + f"; {len(beating)} of the 12 decaying settings beat the better benchmark's mean, and "
                       f"{converged} of {len(m)} runs converged by the original's rule.")
    return Text(" ".join(lines))


__all__ = ["Params", "plan", "convergence_epoch", "mnist_accuracy", "cifar_accuracy", "run_metrics", "NAME",
           "TITLE", "SETTINGS", "STRATEGIES", "SEQUENCES", "REFERENCE"]
