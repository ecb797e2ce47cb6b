"""Chapter 2: MobileNet on CIFAR-100 — learning rate, then its schedule, then weight decay, then the activation
of the middle blocks, each step keeping the best choice of the step before.

The learning rate is chosen from the first sweep's runs, so the later sweeps are known only once those runs
are finished: ``plan`` says so, and a planner without a store assumes the largest rate (a run's cost does not
depend on its rate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Optional

import numpy as np
import pandas as pd

from .. import plots
from ..claims import NOT_MEASURABLE, Claim, Measure, Verdict, better, best_of
from ..config import RunConfig
from ..exhibits import Section, Text
from ..models import build_model, count_parameters
from ..models.mobilenet import MOBILENET_CFG
from ..models.vgg import scaled
from ..registry import ConfigError
from ..results import ChapterResults
from ..schema import ALL_NON_NEGATIVE, ALL_POSITIVE, DISTINCT, NON_EMPTY, Rule, at_least
from ..sweep import probe_table
from .base import (ReferenceTable, Seeds, StudyParams, StudyPlan, Sweep, assumptions_frame, augmentation_text,
                   final_rows, finals, run_config, setting_measure)

NAME = "02_mobilenet_cifar100"
TITLE = "Chapter 2: MobileNet on CIFAR-100 — learning rate, schedule, weight decay and activation"
COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")
COLUMN_NAMES = {"train_loss": "train loss", "val_loss": "valid loss", "train_acc": "train acc (%)",
                "val_acc": "valid acc (%)"}
# The write-up's tables: final train loss, valid loss, train acc (%), valid acc (%); Table 5: test acc (%).
WRITEUP_TABLE2 = {0.01: (1.953, 2.207, 46.314, 42.250), 0.05: (1.762, 2.042, 50.481, 46.040),
                  0.2: (1.838, 2.059, 48.510, 44.800)}
WRITEUP_TABLE3 = {"constant": (0.007, 3.786, 99.800, 55.800), "cosine": (0.001, 3.301, 99.965, 57.510)}
WRITEUP_TABLE4 = {1e-4: (0.003, 1.778, 99.985, 60.320), 5e-4: (0.012, 1.394, 99.942, 67.950)}
WRITEUP_TABLE5 = {1e-4: 61.99, 5e-4: 68.12}
WRITEUP_LR = 0.05

CLAIMS = {
    "lr": Claim("ch2-lr-0-05-best", "A learning rate of 0.05 gives the best validation accuracy of the three", "1",
                unit="points", min_effect=0.5),
    "cosine-acc": Claim("ch2-cosine-beats-constant", "Cosine annealing beats a constant rate on validation accuracy",
                        "2", unit="points", min_effect=0.5),
    "cosine-loss": Claim("ch2-cosine-lower-val-loss", "Cosine annealing ends with a lower validation loss than a "
                         "constant rate", "2", min_effect=0.01),
    "wd-val": Claim("ch2-wd-val", "Weight decay 5e-4 beats 1e-4 on validation accuracy", "3", unit="points",
                    min_effect=0.5),
    "wd-test": Claim("ch2-wd-test", "Weight decay 5e-4 beats 1e-4 on test accuracy", "3", unit="points",
                     min_effect=0.5),
    "wd-gap": Claim("ch2-wd-gap", "Beyond the write-up: the larger weight decay narrows the train–validation "
                    "accuracy gap", "3", source="beyond", unit="points", min_effect=0.5),
    "relu": Claim("ch2-relu-beats-sigmoid", "ReLU beats sigmoid in blocks 4–10 on validation accuracy", "4",
                  unit="points", min_effect=0.5),
    "vanishing": Claim("ch2-sigmoid-vanishing-gradient", "Sigmoid in the middle blocks shrinks the gradient reaching "
                       "block 8's depthwise kernel (vanishing gradient), compared with ReLU", "4", unit="log10",
                       min_effect=0.1),
}

COLORS = plots.palette(["lr 0.01", "lr 0.05", "lr 0.2", "constant", "cosine", "wd 0.0001", "wd 0.0005", "sigmoid"])
COLORS["ReLU"] = COLORS["wd 0.0005"]  # the same runs: § 4's ReLU network is § 3's weight decay 5e-4
Rates = Annotated[tuple[float, ...], NON_EMPTY, DISTINCT, ALL_POSITIVE]
Decays = Annotated[tuple[float, ...], NON_EMPTY, DISTINCT, ALL_NON_NEGATIVE]
Blocks = Annotated[tuple[int, ...], NON_EMPTY, Rule(lambda v: list(v) == list(range(v[0], v[-1] + 1)) and
                                                    0 <= v[0] and v[-1] < len(MOBILENET_CFG),
                                                    "a contiguous increasing run of block indices in 0..12")]


@dataclass(frozen=True)
class Params(StudyParams):
    profile: str
    seeds: Seeds
    data: dict[str, Any]
    model: dict[str, Any]  # a mobilenet model spec (its width multiplier)
    lrs: Rates
    lr_epochs: Annotated[int, at_least(1, "an integer")]
    epochs: Annotated[int, at_least(1, "an integer")]
    batch_size: Annotated[int, at_least(1, "an integer")]
    momentum: Annotated[float, Rule(lambda v: 0 <= v < 1, "a number in [0, 1)")]
    weight_decays: Decays
    activation_weight_decay: Annotated[float, at_least(0)]  # the write-up's § 4 setting (5e-4)
    sigmoid_blocks: Blocks
    probe_parameter: str

    def check(self) -> None:
        if self.model.get("name") != "mobilenet":
            raise ConfigError(f"model.name: got {self.model.get('name')!r}, expected 'mobilenet'")
        long = self.long(max(self.lrs))  # every later configuration validated now
        for sweep in later_sweeps(self, max(self.lrs)).values():
            sweep.configs()
        if self.probe_parameter not in dict(_names_only(long).named_parameters()):
            raise ConfigError(f"probe_parameter: the model has no parameter {self.probe_parameter!r}")

    @cached_property
    def base(self) -> RunConfig:
        """The learning-rate sweep's config: constant rate, no weight decay, ReLU everywhere."""
        return run_config({"data": self.data, "model": self.model, "epochs": self.lr_epochs,
                           "batch_size": self.batch_size, "drop_last": True,
                           "optimizer": {"name": "sgd", "lr": self.lrs[0], "momentum": self.momentum}}, "model")

    @cached_property
    def data_shape(self) -> tuple[int, int, int]:
        """(channels, image side, classes), read from the data once."""
        from ..data import load_data

        data = load_data(self.base.data)
        return data.input_shape[0], data.input_shape[1], data.num_classes

    def long(self, lr: float) -> RunConfig:
        """The long runs' config at rate ``lr``, with the gradient-norm probe on every one of them (so the
        ReLU run of § 4 is the weight-decay run of § 3, trained once)."""
        return self.base.replace(**{"optimizer.lr": lr, "epochs": self.epochs,
                                    "probes.grad_norm": self.probe_parameter})


def _names_only(cfg: RunConfig):
    return build_model("mobilenet", **{**cfg.model.options, "width": 1 / 32})  # parameter names only: keep it cheap


def decay_label(wd: float) -> str:
    return f"wd {wd:g}"


def sigmoid_label(p: Params) -> str:
    return f"sigmoid in blocks {p.sigmoid_blocks[0]}–{p.sigmoid_blocks[-1]}"


def lr_sweep(p: Params) -> Sweep:
    return Sweep("lr", p.base, tuple({"label": f"lr {lr:g}", "optimizer.lr": lr} for lr in p.lrs), p.seeds)


def later_sweeps(p: Params, lr: float) -> dict[str, Sweep]:
    """The sweeps after the learning rate is chosen."""
    long, cosine = p.long(lr), {"name": "cosine"}
    wd = p.activation_weight_decay
    return {
        "schedule": Sweep("schedule", long, ({"label": "constant", "schedule": {"name": "constant"}},
                                             {"label": "cosine", "schedule": cosine}), p.seeds),
        "weight_decay": Sweep("weight_decay", long, tuple({"label": decay_label(w), "schedule": cosine,
                                                           "optimizer.weight_decay": w} for w in p.weight_decays),
                              p.seeds),
        "activation": Sweep("activation", long, (
            {"label": "ReLU", "schedule": cosine, "optimizer.weight_decay": wd},
            {"label": sigmoid_label(p), "schedule": cosine, "optimizer.weight_decay": wd,
             "model.sigmoid_blocks": list(p.sigmoid_blocks)}), p.seeds)}


def choose_lr(lr_runs: pd.DataFrame) -> float:
    """The rate with the highest mean final validation accuracy (the write-up's rule; the first on a tie)."""
    values = finals(lr_runs, "label", "val_acc")
    means = {label: float(np.mean(v)) if v else -math.inf for label, v in values.items()}
    return float(max(means, key=means.get).split()[-1])


def plan(p: Params, store=None) -> StudyPlan:
    """The LR sweep, and the later sweeps once its runs are finished in ``store`` (without a store: at the
    largest rate, for costing)."""
    first = lr_sweep(p)
    result = StudyPlan({"lr": first})
    if store is None:
        result.sweeps.update(later_sweeps(p, max(p.lrs)))
        return result
    finished = first.finished(store)
    if finished is None:
        for name in ("schedule", "weight_decay", "activation"):
            result.waiting[name] = "the lr sweep"  # its best rate is chosen from its runs
        return result
    result.sweeps.update(later_sweeps(p, choose_lr(finished)))
    return result


def shape(p: Params) -> tuple[int, int, int]:
    """(channels, image side, classes) of the data."""
    return p.data_shape


def assumptions(p: Params) -> pd.DataFrame:
    d = p.base.data
    split = (f"stratified hold-out of {d.val_size:g} of the training split (seed {d.split_seed})"
             if d.validation == "holdout" else d.validation)
    augmentation = augmentation_text(d)
    return assumptions_frame([
        ("Dataset", d.name), ("Split", split), ("Augmentation (training batches)", augmentation),
        ("Width multiplier", f"{p.base.model.options['width']:g}"),
        ("Batch", f"{p.batch_size}, last partial batch dropped"),
        ("Optimizer", f"SGD, momentum {p.momentum}"),
        ("Epochs", f"{p.lr_epochs} for the learning-rate sweep, {p.epochs} for the rest"),
        ("Cosine annealing", "to 0 over all epochs (T_max = epochs), stepped per epoch"),
        ("Selection rule", "learning rate with the highest mean final validation accuracy, used from § 2 on"),
        ("Weight decay in § 4", f"{p.activation_weight_decay:g}, as the write-up specifies (not chosen from § 3)"),
        ("Probe", f"2-norm of the gradient of {p.probe_parameter}, after backward, every step, in every long run"),
        ("Seeds", ", ".join(map(str, p.seeds)))])


# --------------------------------------------------------------------------- architecture (Figure 1, Table 1)
def architecture(p: Params, side: int, channels: int, classes: int) -> pd.DataFrame:
    """Per block: parameters and multiply-adds of the depthwise-separable convolution and of a standard 3×3
    convolution with the same input and output channels, at this run's width and image side."""
    width = p.base.model.options["width"]
    rows, c_in = [], scaled(32, width)
    for i, (c_out, stride) in enumerate(MOBILENET_CFG):
        c_out = scaled(c_out, width)
        side = -(-side // stride)
        rows.append({"block": i, "in": c_in, "out": c_out, "output side": side,
                     "separable params": 9 * c_in + c_in * c_out, "standard params": 9 * c_in * c_out,
                     "separable mult-adds": (9 * c_in + c_in * c_out) * side * side,
                     "standard mult-adds": 9 * c_in * c_out * side * side})
        c_in = c_out
    return pd.DataFrame(rows)


def architecture_section(p: Params, results: ChapterResults, side: int, channels: int, classes: int) -> Section:
    blocks = architecture(p, side, channels, classes)
    fig, (left, right) = plots.figure(2)
    x = blocks["block"].to_numpy()
    with plots.style():
        for ax, what in ((left, "params"), (right, "mult-adds")):
            ax.bar(x - 0.2, blocks[f"standard {what}"], width=0.4, label="standard 3×3 convolution")
            ax.bar(x + 0.2, blocks[f"separable {what}"], width=0.4, label="depthwise 3×3 + pointwise 1×1")
            ax.set_yscale("log")
            ax.set_xlabel("block")
            ax.set_ylabel(what)
            ax.set_xticks(x)
    left.set_title("(a) parameters per block")
    right.set_title("(b) multiply-adds per block and image")
    plots.legend_below(fig, left)
    figure = results.figure("1", "What depthwise-separable blocks save in this network", fig, blocks)
    model = build_model("mobilenet", num_classes=classes, in_channels=channels, **p.base.model.options)
    totals = blocks[["separable params", "standard params", "separable mult-adds", "standard mult-adds"]].sum()
    table = pd.DataFrame([
        {"convolution": "standard K×K", "parameters": "K²·C_in·C_out", "multiply-adds": "K²·C_in·C_out·M²",
         "13 blocks here: parameters": f"{totals['standard params']:,}",
         "13 blocks here: multiply-adds": f"{totals['standard mult-adds']:,}"},
        {"convolution": "depthwise K×K + pointwise 1×1", "parameters": "K²·C_in + C_in·C_out",
         "multiply-adds": "(K²·C_in + C_in·C_out)·M²",
         "13 blocks here: parameters": f"{totals['separable params']:,}",
         "13 blocks here: multiply-adds": f"{totals['separable mult-adds']:,}"}]).set_index("convolution")
    note = (f"K = 3, M = the block's output side. Whole network here (stem, blocks with batch norm, classifier): "
            f"{count_parameters(model):,} parameters. The blocks need "
            f"{totals['standard params'] / totals['separable params']:.1f}× fewer parameters and "
            f"{totals['standard mult-adds'] / totals['separable mult-adds']:.1f}× fewer multiply-adds than standard "
            f"convolutions would.")
    return Section(figure, results.table("1", "Cost of a standard vs a depthwise-separable convolution", table, note))


# --------------------------------------------------------------------------- the four sections
def four_panel(df: pd.DataFrame, order: list, colors: dict = COLORS):
    """The write-up's figure layout, two by two: train and validation loss, train and validation accuracy."""
    fig, axes = plots.figure(4, width=5.0, height=3.4, rows=2)
    for ax, col, title in zip(axes, COLUMNS, ("(a) train loss", "(b) validation loss", "(c) train accuracy",
                                              "(d) validation accuracy")):
        plots.curves(df, col, "label", ax, title, order=order, colors=colors)
    plots.legend_below(fig, axes[2])
    return fig


def final_table(df: pd.DataFrame, results: ChapterResults, number: str, title: str, reference: dict, keys: list):
    """Final train/valid loss and accuracy per setting beside the write-up's, with difference and n; each
    reference number is also recorded for the scorecard."""
    table = ReferenceTable("setting")
    for label, key in keys:
        quantities = []
        for i, col in enumerate(COLUMNS):
            scale = 100 if col.endswith("acc") else 1
            values = [scale * v for v in finals(df, "label", col)[label]]
            ref = reference[key][i] if key in reference else None
            if ref is not None:
                results.reference(f"Table {number}", f"{label} · final {COLUMN_NAMES[col]}", ref, values,
                                  "%" if scale == 100 else "")
            quantities.append((COLUMN_NAMES[col], ref, values, 3))
        table.add(label, quantities)
    shown, numbers = table.frames()
    return results.table(number, title, shown, data=numbers)


def _val(p: Params, df, label, metric: str = "val_acc"):
    """A setting's final accuracy in percent, flagged when it ended near chance."""
    return setting_measure(df, label, metric, scale=100, chance=1 / shape(p)[2])


def learning_rate(p: Params, lr_runs: pd.DataFrame, results: ChapterResults) -> tuple[Section, float]:
    labels = lr_sweep(p).labels()
    figure = results.figure("2", "Loss and accuracy for three learning rates", four_panel(lr_runs, labels),
                            plots.curve_data(lr_runs, COLUMNS))
    best = choose_lr(lr_runs)
    m = [_val(p, lr_runs, label) for label in labels]
    verdict = results.judge(best_of(CLAIMS["lr"], f"lr {WRITEUP_LR:g}", m)) if WRITEUP_LR in p.lrs else None
    table = final_table(lr_runs, results, "2", "Final losses and accuracies for three learning rates (the "
                        "write-up's, this run's, their difference and n)", WRITEUP_TABLE2,
                        [(f"lr {lr:g}", lr) for lr in p.lrs])
    chosen = next(x for x in m if x.label == f"lr {best:g}")
    reading = (f"The highest mean validation accuracy comes from **lr = {best:g}** ({chosen.mean:.2f} %); the "
               f"sections below use it. The write-up chose {WRITEUP_LR:g}"
               + (f"; 0.05 being best beyond the seed spread is **{verdict.verdict}** here." if verdict else "."))
    return Section(figure, Text(reading), table, results.verdicts_in("1")), best


def schedule(p: Params, runs: pd.DataFrame, results: ChapterResults, lr: float) -> Section:
    figure = results.figure("3", f"Constant rate vs cosine annealing (initial rate {lr:g})",
                            four_panel(runs, ["constant", "cosine"]), plots.curve_data(runs, COLUMNS))
    acc = results.judge(better(CLAIMS["cosine-acc"], _val(p, runs, "cosine"), _val(p, runs, "constant")))
    loss = results.judge(better(CLAIMS["cosine-loss"], setting_measure(runs, "cosine", "val_loss"),
                                setting_measure(runs, "constant", "val_loss"), higher=False))
    table = final_table(runs, results, "3", "Final losses and accuracies, constant rate vs cosine annealing",
                        WRITEUP_TABLE3, [("constant", "constant"), ("cosine", "cosine")])
    reading = (f"Cosine annealing ends at {_val(p, runs, 'cosine').mean:.2f} % validation accuracy and the constant "
               f"rate at {_val(p, runs, 'constant').mean:.2f} %: annealing ahead is **{acc.verdict}**, and its lower "
               f"validation loss is **{loss.verdict}**.")
    return Section(figure, Text(reading), table, results.verdicts_in("2"))


def weight_decay(p: Params, runs: pd.DataFrame, results: ChapterResults) -> Section:
    labels = [decay_label(w) for w in p.weight_decays]
    figure = results.figure("4", "Two weight-decay coefficients with cosine annealing", four_panel(runs, labels),
                            plots.curve_data(runs, COLUMNS))
    small, large = labels[0], labels[-1]
    claims = []
    if set(p.weight_decays) >= {1e-4, 5e-4}:
        claims += [results.judge(better(CLAIMS["wd-val"], _val(p, runs, "wd 0.0005"), _val(p, runs, "wd 0.0001"))),
                   results.judge(better(CLAIMS["wd-test"], _val(p, runs, "wd 0.0005", "test_acc"),
                                        _val(p, runs, "wd 0.0001", "test_acc")))]
    table4 = final_table(runs, results, "4", "Final losses and accuracies for the weight-decay coefficients",
                         WRITEUP_TABLE4, [(decay_label(w), w) for w in p.weight_decays])
    test = finals(runs, "label", "test_acc")
    rows = ReferenceTable("weight decay")
    for w in p.weight_decays:
        values = [100 * v for v in test[decay_label(w)]]
        if w in WRITEUP_TABLE5:
            results.reference("Table 5", f"{decay_label(w)} · test accuracy", WRITEUP_TABLE5[w], values, "%")
        rows.add(f"{w:g}", [("test accuracy (%)", WRITEUP_TABLE5.get(w), values)])
    shown, numbers = rows.frames()
    table5 = results.table("5", "Test accuracy of the weight-decay runs", shown, data=numbers)
    reading = " ".join(f"{c.claim.statement}: **{c.verdict}**." for c in claims)
    return Section(figure, Text(reading or "The write-up's coefficients are not both in this profile."),
                   table4, table5)


def generalisation_gap(p: Params, runs: pd.DataFrame, results: ChapterResults) -> Section:
    labels = [decay_label(w) for w in p.weight_decays]
    rows = final_rows(runs)
    rows = rows[rows.status == "finished"].assign(gap=lambda f: 100 * (f.train_acc - f.val_acc))
    fig, (ax,) = plots.figure(1, width=7)
    plots.bars(rows, "gap", "label", ax, ylabel="train acc − valid acc (points)", order=labels, colors=COLORS)
    figure = results.figure("4b", "Beyond the write-up: the train–validation accuracy gap per weight decay", fig,
                            rows[["label", "seed", "gap"]])
    stuck = all(_val(p, runs, label).near_chance for label in labels)  # gaps between chance-level runs say nothing
    gaps = {label: Measure(label, tuple(rows.loc[rows.label == label, "gap"]), runs=len(rows[rows.label == label]),
                           near_chance=stuck) for label in labels}
    verdict = better(CLAIMS["wd-gap"], gaps[labels[-1]], gaps[labels[0]], higher=False)
    if all(g.n and g.mean < 0 for g in gaps.values()):
        # train accuracy is measured on augmented batches in train mode: below validation, there is no gap
        reason = ("training accuracy ends below validation accuracy for both coefficients (it is measured on "
                  "augmented batches in train mode), so there is no generalisation gap to narrow")
        verdict = Verdict(CLAIMS["wd-gap"], NOT_MEASURABLE, reason, verdict.rule, reason)
    results.judge(verdict)
    reading = (f"The gap is {gaps[labels[0]].mean:.1f} points with {labels[0]} and {gaps[labels[-1]].mean:.1f} with "
               f"{labels[-1]}; the larger coefficient narrowing it is **{verdict.verdict}**. Training accuracy is "
               f"measured on the augmented batches, in train mode, as the run goes; a negative gap means it stayed "
               f"below the validation accuracy.")
    return Section(figure, Text(reading), results.verdicts_in("3"))


def activation(p: Params, runs: pd.DataFrame, results: ChapterResults) -> Section:
    labels = ["ReLU", sigmoid_label(p)]
    colors = {**COLORS, labels[1]: COLORS["sigmoid"]}
    figure = results.figure("5", f"ReLU vs sigmoid in blocks {p.sigmoid_blocks[0]}–{p.sigmoid_blocks[-1]} (weight "
                                 f"decay {p.activation_weight_decay:g})", four_panel(runs, labels, colors),
                            plots.curve_data(runs, COLUMNS))
    verdict = results.judge(better(CLAIMS["relu"], _val(p, runs, "ReLU"), _val(p, runs, labels[1])))
    relu, sigmoid = _val(p, runs, "ReLU"), _val(p, runs, labels[1])
    reading = (f"ReLU reaches {relu.mean:.2f} % and the sigmoid network {sigmoid.mean:.2f} %; ReLU ahead is "
               f"**{verdict.verdict}**.")
    return Section(figure, Text(reading))


def gradient_norm(p: Params, runs: pd.DataFrame, results: ChapterResults) -> Section:
    labels = ["ReLU", sigmoid_label(p)]
    colors = {**COLORS, labels[1]: COLORS["sigmoid"]}
    norms = probe_table(runs, "grad_norms")
    first = norms[norms.seed == norms.seed.min()]
    fig, (left, right) = plots.figure(2)
    with plots.style():
        for label in labels:
            part = first[first.label == label]
            left.plot(part["step"], part["grad_norm"], lw=0.6, label=label, alpha=0.8, color=colors[label])
    left.set_xlabel("step")
    left.set_ylabel("gradient 2-norm")
    left.set_yscale("log")
    left.set_title(f"(a) every step (seed {norms.seed.min()})")
    per_epoch = norms.groupby(["label", "seed", "epoch"], as_index=False)["grad_norm"].mean()
    plots.curves(per_epoch, "grad_norm", "label", right, "(b) per-epoch mean (mean ± sd over seeds)", order=labels,
                 log=True, colors=colors)
    plots.legend_below(fig, left)
    figure = results.figure("6", f"2-norm of the gradient of {p.probe_parameter}", fig,
                            norms[["label", "seed", "step", "epoch", "grad_norm"]])
    per_run = norms.groupby(["label", "seed"])["grad_norm"].mean()
    stuck = all(_val(p, runs, label).near_chance for label in labels)
    logs = {label: Measure(label, tuple(np.log10(per_run.loc[label])), runs=len(per_run.loc[label]),
                           near_chance=stuck) for label in labels}
    verdict = results.judge(better(CLAIMS["vanishing"], logs["ReLU"], logs[labels[1]]))
    cv = first.groupby("label")["grad_norm"].agg(lambda s: s.std() / s.mean())
    reading = (f"Averaged over training, the probed gradient norm is {10 ** logs[labels[1]].mean:.3g} with sigmoid "
               f"and {10 ** logs['ReLU'].mean:.3g} with ReLU (the ReLU curve is the comparison the write-up did "
               f"not draw); a smaller gradient under sigmoid is **{verdict.verdict}**. Its step-to-step variation "
               f"(sd/mean) is {cv[labels[1]]:.2f} with sigmoid against {cv['ReLU']:.2f} with ReLU.")
    return Section(figure, Text(reading), results.verdicts_in("4"))


def conclusion(results: ChapterResults, lr: float) -> Text:
    v = {r["key"]: r["verdict"] for r in results.verdicts}
    return Text(
        f"The learning-rate sweep chose **{lr:g}** (the write-up: {WRITEUP_LR:g}). With it, cosine annealing ahead "
        f"of a constant rate is **{v['ch2-cosine-beats-constant']}**, the larger weight decay ahead on held-out data "
        f"is **{v.get('ch2-wd-val', 'not tested')}** (validation) and **{v.get('ch2-wd-test', 'not tested')}** "
        f"(test), and ReLU ahead of sigmoid in the middle blocks is **{v['ch2-relu-beats-sigmoid']}**, with the "
        f"sigmoid network's smaller gradient **{v['ch2-sigmoid-vanishing-gradient']}**.")


__all__ = ["Params", "plan", "assumptions", "lr_sweep", "later_sweeps", "choose_lr", "NAME", "TITLE", "CLAIMS"]
