"""Chapter 1: weight initialisation on a plain VGG-19, and a knockout of learning-rate schedulers on ResNet-34.

Everything the chapter needs lives here: its parameters, its three sweeps, the write-up's numbers, its claims,
and the analysis behind each section; the notebook tells the story and calls these functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
from matplotlib.ticker import MaxNLocator

from .. import plots
from ..claims import Claim, Measure, better, best_of, every, holds, leader, measure
from ..config import RunConfig
from ..exhibits import Section, Text
from ..registry import ConfigError
from ..results import ChapterResults
from ..sweep import probe_table
from .base import (ReferenceTable, Seeds, StudyParams, StudyPlan, Sweep, assumptions_frame, augmentation_text,
                   final_rows, finals, options_text, run_config, setting_measure, settings_only, training_text)

NAME = "01_init_and_schedules"
TITLE = "Chapter 1: Initialisation on VGG-19 and learning-rate schedules on ResNet-34"
INITS = {"Kaiming normal": "kaiming_normal", "Kaiming uniform": "kaiming_uniform",
         "Xavier normal": "xavier_normal", "Xavier uniform": "xavier_uniform"}
SCHEDULERS = ("ConstantLR", "ExponentialLR", "MultiStepLR", "CyclicLR", "CosineAnnealingWarmRestarts")
ROUNDS = {"2.1": ("ExponentialLR", "MultiStepLR"), "2.2": ("CyclicLR", "CosineAnnealingWarmRestarts")}
COLORS = plots.palette(list(INITS) + list(SCHEDULERS))  # one colour per setting in every figure

# The write-up's numbers: test accuracy (%), test loss[, points over the constant baseline].
WRITEUP_TABLE1 = {"Kaiming normal": (30.88, 7.4210), "Kaiming uniform": (28.98, 11.0686),
                  "Xavier normal": (1.96, 3.9130), "Xavier uniform": (1.96, 3.9130)}
WRITEUP_TABLE2 = {"CyclicLR": (69.45, 2.1654, 9.33), "CosineAnnealingWarmRestarts": (62.09, 3.1062, 1.97),
                  "MultiStepLR": (61.62, 2.7977, 1.50), "ExponentialLR": (60.98, 2.9458, 0.86),
                  "ConstantLR": (60.12, 3.0683, 0.0)}

CLAIMS = {
    "kaiming-trains": Claim("ch1-kaiming-trains", "Kaiming normal trains the plain VGG-19 while Xavier normal does "
                            "not (final test accuracy)", "1.1", unit="points", min_effect=5.0),
    "xavier-at-chance": Claim("ch1-xavier-at-chance", "Both Xavier variants leave the plain VGG-19 at chance: test "
                              "loss at ln(classes) on every seed", "1.1"),
    "normal-beats-uniform": Claim("ch1-normal-beats-uniform", "Kaiming normal beats Kaiming uniform on test "
                                  "accuracy", "1.2", unit="points", min_effect=0.5),
    "normal-lower-loss": Claim("ch1-normal-lower-loss", "Kaiming normal ends with a lower test loss than Kaiming "
                               "uniform", "1.2", min_effect=0.01),
    "xavier-shrinks": Claim("ch1-xavier-shrinks", "Beyond the write-up: at initialisation Xavier's signal shrinks "
                            "through the 16 convolutions, ending ≥ 100× smaller at the classifier than Kaiming's",
                            "1.4", source="beyond"),
    "bn-rescues": Claim("ch1-bn-rescues", "Beyond the write-up: with batch norm, Xavier normal trains far above "
                        "chance", "1.4", source="beyond", unit="points", min_effect=5.0),
    "round-2.1": Claim("ch1-round-2-1", "Round 2.1: MultiStepLR beats ExponentialLR on test accuracy", "2.1",
                       unit="points", min_effect=0.5),
    "round-2.2": Claim("ch1-round-2-2", "Round 2.2: CyclicLR beats CosineAnnealingWarmRestarts on test accuracy",
                       "2.2", unit="points", min_effect=0.5),
    "cyclic-best": Claim("ch1-cyclic-best", "CyclicLR is the best of the five schedulers on test accuracy", "2.3",
                         unit="points", min_effect=0.5),
    "all-beat-constant": Claim("ch1-all-beat-constant", "Every scheduler beats the constant baseline on test "
                               "accuracy", "2.4", unit="points", min_effect=0.5),
}


@dataclass(frozen=True)
class Params(StudyParams):
    profile: str
    seeds: Seeds
    data: dict[str, Any]  # one data config for both parts
    vgg: dict[str, Any]  # VGG-19's run settings (model, optimizer, epochs, batch size)
    resnet: dict[str, Any]
    resnet_data: dict[str, Any]  # changes to ``data`` for the ResNet part (e.g. a smaller image side)
    schedulers: dict[str, dict[str, Any]]  # the five schedulers by their torch names

    def check(self) -> None:
        settings_only(self.vgg, "vgg")
        settings_only(self.resnet, "resnet")
        unknown = [s for s in self.schedulers if s not in SCHEDULERS]
        missing = [s for s in SCHEDULERS if s not in self.schedulers]
        if unknown:
            raise ConfigError(f"schedulers: unknown scheduler {unknown[0]!r}; allowed: {', '.join(SCHEDULERS)}")
        if missing:
            raise ConfigError(f"schedulers: missing {', '.join(missing)}; the tournament needs all of "
                              f"{', '.join(SCHEDULERS)}")
        for key, model in (("vgg", "vgg19"), ("resnet", "resnet34")):
            cfg = getattr(self, f"{key}_config")
            if cfg.model.name != model:
                raise ConfigError(f"{key}.model.name: got {cfg.model.name!r}, expected {model!r}")
        for name in SCHEDULERS:  # every scheduler's arguments checked now, not mid-sweep
            try:
                self.resnet_config.replace(schedule=self.schedulers[name])
            except ConfigError as err:
                raise ConfigError(f"schedulers.{name}: {err}") from None

    @cached_property
    def vgg_config(self) -> RunConfig:
        return run_config({**self.vgg, "data": self.data, "probes": {"activation_variance": True}}, "vgg")

    @cached_property
    def resnet_config(self) -> RunConfig:
        return run_config({**self.resnet, "data": {**self.data, **self.resnet_data}}, "resnet")


def plan(p: Params, store=None) -> StudyPlan:
    """The chapter's three sweeps (nothing here depends on results)."""
    inits = tuple({"label": label, "init.name": name} for label, name in INITS.items())
    return StudyPlan({
        "inits": Sweep("inits", p.vgg_config, inits, p.seeds),
        "inits_bn": Sweep("inits_bn", p.vgg_config, tuple({**pt, "model.batch_norm": True} for pt in inits), p.seeds),
        "schedulers": Sweep("schedulers", p.resnet_config,
                            tuple({"label": n, "schedule": p.schedulers[n]} for n in SCHEDULERS), p.seeds)})


def classes(p: Params) -> int:
    """How many classes the data has (chance is 1 / classes)."""
    from ..data import load_data

    return load_data(p.vgg_config.data).num_classes


def assumptions(p: Params) -> pd.DataFrame:
    """Every value STUDIES.md marks [chosen], as this run set it."""
    d, v, r = p.vgg_config.data, p.vgg_config, p.resnet_config
    augmentation = augmentation_text(d)
    return assumptions_frame([
        ("Dataset", d.name + (f", first {d.num_classes} classes" if d.num_classes else "")),
        ("Validation split", f"stratified hold-out of {d.val_size:g} of the training split (seed {d.split_seed}); "
                             f"final numbers on the official test split"),
        ("Augmentation (training batches)", augmentation),
        ("VGG-19 batch norm", "on" if v.model.options["batch_norm"] else "off (the switch is studied in § 1.4)"),
        ("Init details", "Kaiming: fan_in, ReLU gain; Xavier: gain 1; every Conv2d/Linear weight; biases zero"),
        ("VGG-19 training", training_text(v)),
        ("VGG-19 width multiplier", f"{v.model.options['width']:g}"),
        ("ResNet-34 training", training_text(r)),
        ("ResNet-34 width multiplier / image side", f"{r.model.options['width']:g} / {r.data.image_size or 'native'}"),
        *[(f"{name} arguments", options_text({k: val for k, val in p.schedulers[name].items() if k != "name"}))
          for name in SCHEDULERS],
        ("Tournament winners", "highest mean final test accuracy over seeds; none named when not measurable"),
        ("Seeds", ", ".join(map(str, p.seeds)))])


# --------------------------------------------------------------------------- part 1: initialisation
def _accuracy(df, label, classes) -> Measure:
    return setting_measure(df, label, "test_acc", scale=100, chance=1 / classes)


def at_chance(df: pd.DataFrame, label: str, classes: int, tolerance: float = 0.01) -> tuple[bool, float]:
    """Whether every seed's final test loss is within ``tolerance`` (relative) of ln(classes)."""
    losses = finals(df, "label", "test_loss")[label]
    if not losses:
        return False, math.nan
    worst = max(abs(v - math.log(classes)) / math.log(classes) for v in losses)
    return worst <= tolerance, worst


def _pair_figure(runs: pd.DataFrame, results: ChapterResults, number: str, pair: list[str], title: str):
    """The write-up's pair of panels (training loss, validation accuracy) for two settings."""
    fig = plots.loss_and_accuracy(runs, pair, colors=COLORS)
    return results.figure(number, title, fig, plots.curve_data(runs[runs.label.isin(pair)], ["train_loss", "val_acc"]))


def xavier_vs_kaiming(inits: pd.DataFrame, results: ChapterResults, classes: int) -> Section:
    figure = _pair_figure(inits, results, "1.1", ["Xavier normal", "Kaiming normal"],
                          "Xavier normal vs Kaiming normal on the plain VGG-19")
    kn, xn = _accuracy(inits, "Kaiming normal", classes), _accuracy(inits, "Xavier normal", classes)
    trains = results.judge(better(CLAIMS["kaiming-trains"], kn, xn))
    chance = {label: at_chance(inits, label, classes) for label in ("Xavier normal", "Xavier uniform")}
    stuck = all(ok for ok, _ in chance.values())
    results.judge(holds(CLAIMS["xavier-at-chance"], stuck,
                        "; ".join(f"{k}: worst seed {w:.2%} from ln {classes}" for k, (_, w) in chance.items()),
                        "supported when every seed's final test loss is within 1 % of ln(classes)"))
    reading = (f"Kaiming normal reaches {kn.mean:.1f} % test accuracy after the last epoch and Xavier normal "
               f"{xn.mean:.1f} %, against a chance level of {100 / classes:.1f} %; that Kaiming trains and Xavier "
               f"does not is **{trains.verdict}**. ")
    reading += (f"Both Xavier variants finish with a test loss within {max(w for _, w in chance.values()):.2%} of "
                f"ln {classes} = {math.log(classes):.4f}: the logits stay at zero and the network predicts the "
                f"uniform distribution — the failure the write-up reports at ln 50." if stuck else
                "The Xavier runs did not stay at chance here, so the write-up's total failure is not reproduced.")
    return Section(figure, Text(reading), results.verdicts_in("1.1"))


def kaiming_distributions(inits: pd.DataFrame, results: ChapterResults, classes: int) -> Section:
    figure = _pair_figure(inits, results, "1.2", ["Kaiming uniform", "Kaiming normal"],
                          "Kaiming uniform vs Kaiming normal on the plain VGG-19")
    kn, ku = _accuracy(inits, "Kaiming normal", classes), _accuracy(inits, "Kaiming uniform", classes)
    accuracy = results.judge(better(CLAIMS["normal-beats-uniform"], kn, ku))
    loss = results.judge(better(CLAIMS["normal-lower-loss"], setting_measure(inits, "Kaiming normal", "test_loss"),
                                setting_measure(inits, "Kaiming uniform", "test_loss"), higher=False))
    reading = (f"Both Kaiming variants draw weights with the same variance and differ only in the shape of the "
               f"distribution. Normal ends at {kn.mean:.1f} % and uniform at {ku.mean:.1f} %; the write-up's "
               f"ranking (normal ahead) is **{accuracy.verdict}** on accuracy and **{loss.verdict}** on test loss.")
    return Section(figure, Text(reading), results.verdicts_in("1.2"))


def final_performance(inits: pd.DataFrame, results: ChapterResults) -> Section:
    fig, (left, right) = plots.figure(2)
    order = list(WRITEUP_TABLE1)
    plots.bars(inits, "test_acc", "label", left, "(a) final test accuracy (%)", order=order, colors=COLORS)
    plots.bars(inits, "test_loss", "label", right, "(b) final test loss", order=order, fmt="{:.3f}", colors=COLORS)
    fig.tight_layout()
    data = final_rows(inits)[["label", "seed", "test_acc", "test_loss"]]
    figure = results.figure("1.3", "Final test performance of the four initialisations", fig, plots.percent(data))
    acc, loss = finals(inits, "label", "test_acc"), finals(inits, "label", "test_loss")
    table = ReferenceTable("method")
    for label, (ref_acc, ref_loss) in WRITEUP_TABLE1.items():
        pct = [100 * a for a in acc[label]]
        results.reference("Table 1", f"{label} · test accuracy", ref_acc, pct, "%")
        results.reference("Table 1", f"{label} · test loss", ref_loss, loss[label])
        table.add(label, [("test accuracy (%)", ref_acc, pct), ("test loss", ref_loss, loss[label], 4)])
    shown, numbers = table.frames()
    return Section(figure, results.table("1", "VGG-19 initialisation summary: the write-up's numbers beside this "
                                              "run's (mean ± sd over seeds)", shown, data=numbers))


def activation_scale(inits: pd.DataFrame, results: ChapterResults, classes: int) -> Section:
    """Beyond: each layer's output std at initialisation, measured on one validation batch."""
    acts = probe_table(inits, "activations")
    first = acts[acts.epoch == 0].groupby(["label", "layer_index", "layer"], sort=False)["std"].mean().reset_index()
    fig, (ax,) = plots.figure(1, width=8)
    with plots.style():
        for i, label in enumerate(INITS):
            part = first[first.label == label]
            ax.plot(part.layer_index, part["std"], marker=plots.MARKERS[i], label=label, color=COLORS[label])
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = input, 1–16 = convolutions, 17 = classifier)")
    ax.set_ylabel("output std (log scale)")
    plots.legend_below(fig, ax)
    figure = results.figure("1.4", "Layer output standard deviation at initialisation (plain VGG-19)", fig, first)
    last = first[first.layer_index == first.layer_index.max()].set_index("label")["std"]
    ratio = last["Kaiming normal"] / last["Xavier normal"]
    results.judge(holds(CLAIMS["xavier-shrinks"], bool(ratio >= 100),
                        f"output std at the classifier: Kaiming normal {last['Kaiming normal']:.3g}, Xavier normal "
                        f"{last['Xavier normal']:.3g} (ratio {ratio:.3g})", "supported when the ratio is at least 100"))
    reading = (f"At the classifier the output std is {last['Kaiming normal']:.3g} with Kaiming normal and "
               f"{last['Xavier normal']:.3g} with Xavier normal, {ratio:.3g} times smaller. Logits that small make "
               f"every class equally likely, which is why the loss starts, and stays, at ln {classes}.")
    return Section(figure, Text(reading))


def batch_norm_rescue(inits: pd.DataFrame, with_bn: pd.DataFrame, results: ChapterResults, classes: int) -> Section:
    both = pd.concat([final_rows(inits).assign(network="plain"), final_rows(with_bn).assign(network="batch norm")])
    both = plots.percent(both[both.status == "finished"])
    fig, (ax,) = plots.figure(1, width=8)
    with plots.style():
        import seaborn as sns

        sns.barplot(data=both, x="label", y="test_acc", hue="network", order=list(WRITEUP_TABLE1), errorbar="sd",
                    ax=ax, capsize=0.1, palette=["#8c8c8c", "#3b75af"])
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel("")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.tight_layout()
    figure = results.figure("1.5", "Test accuracy with and without batch normalisation", fig,
                            both[["network", "label", "seed", "test_acc"]])
    xn_bn = _accuracy(with_bn, "Xavier normal", classes)
    n = max(1, xn_bn.n)
    chance = measure("chance", [1 / classes] * n, chance=1 / classes, scale=100)
    rescued = results.judge(better(CLAIMS["bn-rescues"], xn_bn, chance))
    kn_bn = _accuracy(with_bn, "Kaiming normal", classes)
    reading = (f"With batch normalisation Xavier normal reaches {xn_bn.mean:.1f} % (Kaiming normal {kn_bn.mean:.1f} "
               f"%). That Xavier trains well above chance with batch norm is **{rescued.verdict}**: where it is, the "
               f"failure belongs to the plain network's signal propagation, not to Xavier's scale as such.")
    return Section(figure, Text(reading), results.verdicts_in("1.4"))


# --------------------------------------------------------------------------- part 2: schedulers
def _scheduler_measures(scheds: pd.DataFrame, classes: int) -> dict[str, Measure]:
    return {s: _accuracy(scheds, s, classes) for s in SCHEDULERS}


def winner_text(measures: dict[str, Measure], names) -> tuple[str | None, str]:
    """The round's winner by mean test accuracy, or None with the reason none can be named."""
    top, why = leader([measures[n] for n in names], unit="points")
    return (top.label, "") if top is not None else (None, why)


def lead_text(measures: dict[str, Measure], winner: str, names) -> str:
    """How clear a winner's lead is: against the runner-up, by the chapter's rule."""
    runner_up = max((measures[n] for n in names if n != winner), key=lambda m: m.mean)
    duel = better(Claim("lead", "", "", unit="points", min_effect=0.5), measures[winner], runner_up)
    clear = "beyond the seed spread" if duel.verdict == "supported" else "but not beyond the seed spread"
    return (f"{measures[winner].mean:.2f} % mean test accuracy, ahead of {runner_up.label} "
            f"({runner_up.mean:.2f} %) {clear}")


def schedule_curves(p: Params) -> pd.DataFrame:
    """The rate each scheduler sets at every step of the ResNet runs, computed from the schedules themselves
    (CyclicLR moves every batch, so a per-epoch record would alias it)."""
    import torch

    from ..loop import Member
    from ..timing import split_sizes

    cfg = p.resnet_config
    steps = -(-split_sizes(cfg.data).train // cfg.batch_size)
    rows = []
    for name in SCHEDULERS:
        member = Member(cfg.replace(schedule=p.schedulers[name]), steps, torch.device("cpu"))  # as training steps it
        for epoch in range(cfg.epochs):
            rows += [{"label": name, "epoch": (epoch * steps + i) / steps, "lr": lr}
                     for i, lr in enumerate(member.epoch_rates(steps))]
            member.end_epoch(None)
    return pd.DataFrame(rows)


def learning_rates(p: Params, results: ChapterResults):
    curves = schedule_curves(p)
    fig, (ax,) = plots.figure(1, width=8)
    with plots.style():
        for name in SCHEDULERS:
            part = curves[curves.label == name]
            ax.plot(part.epoch, part.lr, label=name, color=COLORS[name], lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    plots.legend_below(fig, ax, ncol=3)
    return results.figure("2.0", "The learning rate each scheduler sets, batch by batch", fig, curves)


def tournament_round(scheds: pd.DataFrame, results: ChapterResults, classes: int, section: str) -> Section:
    names = ROUNDS[section]
    figure = _pair_figure(scheds, results, section, list(names), f"{names[0]} vs {names[1]}")
    m = _scheduler_measures(scheds, classes)
    winner, why = winner_text(m, names)
    claimed = {"2.1": ("MultiStepLR", "ExponentialLR"), "2.2": ("CyclicLR", "CosineAnnealingWarmRestarts")}[section]
    verdict = results.judge(better(CLAIMS[f"round-{section}"], m[claimed[0]], m[claimed[1]]))
    reading = (f"Winner of round {section}: **{winner}** ({lead_text(m, winner, names)})." if winner else
               f"Round {section} names no winner here: {why}.")
    reading += f" The write-up's winner, {claimed[0]}, ahead beyond the seed spread: **{verdict.verdict}**."
    return Section(figure, Text(reading), results.verdicts_in(section))


def finalists(m: dict[str, Measure]) -> tuple[list[str], str]:
    """ConstantLR and the two round winners; all five when a round names no winner (and which, and why)."""
    winners = {s: winner_text(m, ROUNDS[s]) for s in ("2.1", "2.2")}
    if all(w for w, _ in winners.values()):
        return ["ConstantLR"] + [w for w, _ in winners.values()], ""
    return list(SCHEDULERS), "; ".join(f"round {s} named no winner ({why})" for s, (w, why) in winners.items() if not w)


def tournament_final(scheds: pd.DataFrame, results: ChapterResults, classes: int) -> Section:
    m = _scheduler_measures(scheds, classes)
    names, why_all = finalists(m)
    fig = plots.loss_and_accuracy(scheds, names, colors=COLORS)
    title = " vs ".join(names) if not why_all else "All five schedulers (a round named no winner)"
    figure = results.figure("2.3", title, fig,
                            plots.curve_data(scheds[scheds.label.isin(names)], ["train_loss", "val_acc"]))
    champion, why = winner_text(m, names)
    verdict = results.judge(best_of(CLAIMS["cyclic-best"], "CyclicLR", list(m.values())))
    reading = (f"The final goes to **{champion}** ({lead_text(m, champion, names)})." if champion else
               f"The final names no winner here: {why}.")
    if why_all:
        reading = f"{why_all[0].upper()}{why_all[1:]}, so all five schedulers meet in the final. " + reading
    reading += f" CyclicLR as the best of all five, as in the write-up: **{verdict.verdict}**."
    return Section(figure, Text(reading), results.verdicts_in("2.3"))


def scheduler_summary(scheds: pd.DataFrame, results: ChapterResults, classes: int) -> Section:
    fig, (left, right) = plots.figure(2)
    plots.bars(scheds, "test_acc", "label", left, "(a) final test accuracy (%)", order=list(SCHEDULERS), colors=COLORS)
    plots.bars(scheds, "test_loss", "label", right, "(b) final test loss", order=list(SCHEDULERS), fmt="{:.3f}",
               colors=COLORS)
    fig.tight_layout()
    figure = results.figure("2.4", "Final test performance of the five schedulers", fig,
                            plots.percent(final_rows(scheds)[["label", "seed", "test_acc", "test_loss"]]))
    m = _scheduler_measures(scheds, classes)
    parts = [better(Claim(f"ch1-beats-constant-{s}", f"{s} beats ConstantLR", "2.4", unit="points",
                          min_effect=0.5), m[s], m["ConstantLR"]) for s in SCHEDULERS[1:]]
    results.judge(every(CLAIMS["all-beat-constant"], parts))
    acc, loss = finals(scheds, "label", "test_acc"), finals(scheds, "label", "test_loss")
    base = m["ConstantLR"].mean
    table = ReferenceTable("scheduler")
    for label in sorted(SCHEDULERS, key=lambda s: -m[s].mean if m[s].n else math.inf):
        ref_acc, ref_loss, ref_gain = WRITEUP_TABLE2[label]
        pct = [100 * a for a in acc[label]]
        results.reference("Table 2", f"{label} · test accuracy", ref_acc, pct, "%")
        results.reference("Table 2", f"{label} · test loss", ref_loss, loss[label])
        # each seed against the baseline's mean; the baseline is 0 by definition
        gain = [0.0] * len(pct) if label == "ConstantLR" else [v - base for v in pct]
        results.reference("Table 2", f"{label} · vs baseline", ref_gain, gain, "points")
        table.add(label + (" (baseline)" if label == "ConstantLR" else ""),
                  [("test accuracy (%)", ref_acc, pct), ("test loss", ref_loss, loss[label], 4),
                   ("vs baseline (points)", ref_gain, gain)])
    shown, numbers = table.frames()
    return Section(figure, results.table("2", "ResNet-34 scheduler summary, sorted by reproduced test accuracy; "
                                              "“vs baseline” is the difference from ConstantLR's mean in accuracy "
                                              "points", shown, data=numbers), results.verdicts_in("2.4"))


def conclusion(inits: pd.DataFrame, scheds: pd.DataFrame, results: ChapterResults, classes: int) -> Text:
    init_measures = [_accuracy(inits, label, classes) for label in INITS]
    ranked = ", ".join(f"{m.label} {m.mean:.1f} %" for m in sorted(init_measures,
                                                                   key=lambda m: -m.mean if m.n else math.inf))
    verdicts = {v["key"]: v["verdict"] for v in results.verdicts}
    m = _scheduler_measures(scheds, classes)
    champion, why = winner_text(m, finalists(m)[0])
    writeup_rank = ", ".join(sorted(WRITEUP_TABLE2, key=lambda k: -WRITEUP_TABLE2[k][0]))
    if champion == "ConstantLR":
        schedules = f"The constant rate itself wins the final ({lead_text(m, champion, finalists(m)[0])})."
    elif champion:
        schedules = (f"The tournament's champion is **{champion}**, {m[champion].mean - m['ConstantLR'].mean:+.2f} "
                     f"points over the constant rate.")
    else:
        schedules = f"The tournament names no champion: {why}."
    return Text(
        f"**Initialisation.** On the plain VGG-19 the mean test accuracies are {ranked}. Xavier at chance, "
        f"as in the write-up, is **{verdicts['ch1-xavier-at-chance']}**; the measured signal scale at "
        f"initialisation explains the failure, and batch norm removing it is **{verdicts['ch1-bn-rescues']}**. "
        f"Kaiming normal ahead of Kaiming uniform is **{verdicts['ch1-normal-beats-uniform']}** across "
        f"{len(set(inits.seed))} seed(s).\n\n**Schedules.** {schedules} The write-up's ranking was {writeup_rank}; "
        f"CyclicLR best of five is **{verdicts['ch1-cyclic-best']}** here.")


__all__ = ["Params", "plan", "assumptions", "NAME", "TITLE", "CLAIMS", "INITS", "SCHEDULERS"]
