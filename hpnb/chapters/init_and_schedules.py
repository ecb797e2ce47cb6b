"""Chapter 1: initialisation on VGG-19 and the learning-rate-scheduler tournament on ResNet-34."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..analysis import per_setting
from ..config import RunConfig
from ..registry import ConfigError
from ..results import fmt_mean_std, mean_std
from ..sweep import expand
from . import check_keys, check_seeds

PARAMETERS = ("profile", "seeds", "data", "vgg", "resnet", "resnet_data", "schedulers")

INITS = {"Kaiming normal": "kaiming_normal", "Kaiming uniform": "kaiming_uniform",
         "Xavier normal": "xavier_normal", "Xavier uniform": "xavier_uniform"}
SCHEDULERS = ("ConstantLR", "ExponentialLR", "MultiStepLR", "CyclicLR", "CosineAnnealingWarmRestarts")
ROUNDS = (("2.1", ("ExponentialLR", "MultiStepLR")), ("2.2", ("CyclicLR", "CosineAnnealingWarmRestarts")))

# The write-up's numbers (test accuracy %, test loss[, points over the constant baseline]).
TABLE1 = {"Kaiming normal": (30.88, 7.4210), "Kaiming uniform": (28.98, 11.0686),
          "Xavier uniform": (1.96, 3.9130), "Xavier normal": (1.96, 3.9130)}
TABLE2 = {"CyclicLR": (69.45, 2.1654, 9.33), "CosineAnnealingWarmRestarts": (62.09, 3.1062, 1.97),
          "MultiStepLR": (61.62, 2.7977, 1.50), "ExponentialLR": (60.98, 2.9458, 0.86),
          "ConstantLR": (60.12, 3.0683, 0.0)}


@dataclass
class Plan:
    profile: str
    seeds: list
    vgg: RunConfig
    resnet: RunConfig
    init_grid: list
    bn_grid: list
    scheduler_grid: list
    params: dict


def plan(params: dict) -> Plan:
    seeds = check_seeds(params["seeds"])
    for key in ("data", "vgg", "resnet", "resnet_data", "schedulers"):
        if not isinstance(params[key], dict):
            raise ConfigError(f"{key}: expected a mapping, got {params[key]!r}")
    check_keys("schedulers", params["schedulers"], set(SCHEDULERS))
    missing = [s for s in SCHEDULERS if s not in params["schedulers"]]
    if missing:
        raise ConfigError(f"schedulers: missing {', '.join(missing)}; the tournament needs all of {', '.join(SCHEDULERS)}")
    for key in ("vgg", "resnet"):
        if "data" in params[key]:
            raise ConfigError(f"{key}: set the data in 'data' (and 'resnet_data'), not here")
    try:
        vgg = RunConfig.from_dict({**params["vgg"], "data": params["data"],
                                   "probes": {"activation_variance": True}})
    except ConfigError as err:
        raise ConfigError(f"vgg: {err}") from None
    if vgg.model.name != "vgg19":
        raise ConfigError(f"vgg.model.name: got {vgg.model.name!r}, expected 'vgg19'")
    try:
        resnet = RunConfig.from_dict({**params["resnet"], "data": {**params["data"], **params["resnet_data"]}})
    except ConfigError as err:
        raise ConfigError(f"resnet: {err}") from None
    if resnet.model.name != "resnet34":
        raise ConfigError(f"resnet.model.name: got {resnet.model.name!r}, expected 'resnet34'")
    init_grid = [{"label": label, "init.name": name} for label, name in INITS.items()]
    bn_grid = [{**p, "model.batch_norm": True} for p in init_grid]
    scheduler_grid = [{"label": name, "schedule": params["schedulers"][name]} for name in SCHEDULERS]
    for point in scheduler_grid:  # validate each scheduler's arguments now, not mid-sweep
        try:
            resnet.replace(schedule=point["schedule"])
        except ConfigError as err:
            raise ConfigError(f"schedulers.{point['label']}: {err}") from None
    return Plan(params["profile"], seeds, vgg, resnet, init_grid, bn_grid, scheduler_grid, params)


def planned_runs(p: Plan) -> list[RunConfig]:
    return [cfg for base, grid in ((p.vgg, p.init_grid), (p.vgg, p.bn_grid), (p.resnet, p.scheduler_grid))
            for _, cfg in expand(base, grid, p.seeds)]


def assumptions(p: Plan) -> pd.DataFrame:
    """Every value STUDIES.md marks [chosen], as this run set it."""
    d, v, r = p.vgg.data, p.vgg, p.resnet
    s = p.params["schedulers"]
    rows = [
        ("Dataset", f"{d.name}" + (f", first {d.num_classes} classes" if d.num_classes else "")),
        ("Validation split", f"stratified hold-out of {d.val_size:g} of the training split (seed {d.split_seed}); "
                             f"final numbers on the official test split"),
        ("Augmentation", f"random crop with {d.crop_padding}-pixel padding + horizontal flip" if d.augment else "none"),
        ("VGG-19 batch norm", "off (the switch is studied separately below)"),
        ("Init details", "Kaiming: fan_in, ReLU gain; Xavier: gain 1; on every Conv2d/Linear weight; biases zero"),
        ("VGG-19 optimizer", f"{v.optimizer.name} {v.optimizer.options}, batch {v.batch_size}, {v.epochs} epochs"),
        ("VGG-19 width multiplier", f"{v.model.options['width']:g}"),
        ("ResNet-34 optimizer", f"{r.optimizer.name} {r.optimizer.options}, batch {r.batch_size}, {r.epochs} epochs"),
        ("ResNet-34 width multiplier / image side", f"{r.model.options['width']:g} / {r.data.image_size or 'native'}"),
        *[(f"{name} arguments", ", ".join(f"{k}={val}" for k, val in s[name].items())) for name in SCHEDULERS],
        ("Tournament winners", "highest mean final test accuracy over seeds"),
        ("Seeds", ", ".join(map(str, p.seeds))),
    ]
    return pd.DataFrame(rows, columns=["assumption", "value in this run"])


def tournament(test_acc: dict) -> dict:
    """Winners of rounds 2.1 and 2.2 and of the final (Constant vs both), by mean test accuracy."""
    best = lambda names: max(names, key=lambda n: mean_std(test_acc[n])[0])  # noqa: E731
    winners = {section: best(pair) for section, pair in ROUNDS}
    final = ("ConstantLR", winners["2.1"], winners["2.2"])
    winners["2.3"] = best(final)
    return winners


def table1(df: pd.DataFrame) -> pd.DataFrame:
    acc, loss = per_setting(df, "label", "test_acc"), per_setting(df, "label", "test_loss")
    rows = []
    for label in TABLE1:
        rows.append({"Method": label,
                     "Test accuracy (%)": fmt_mean_std([100 * a for a in acc[label]]),
                     "write-up acc (%)": f"{TABLE1[label][0]:.2f}",
                     "Test loss": fmt_mean_std(loss[label], 4),
                     "write-up loss": f"{TABLE1[label][1]:.4f}"})
    return pd.DataFrame(rows).set_index("Method")


def table2(df: pd.DataFrame) -> pd.DataFrame:
    acc, loss = per_setting(df, "label", "test_acc"), per_setting(df, "label", "test_loss")
    base = mean_std(acc["ConstantLR"])[0] * 100
    order = sorted(SCHEDULERS, key=lambda n: -mean_std(acc[n])[0])
    rows = []
    for label in order:
        mean = mean_std(acc[label])[0] * 100
        rows.append({"Scheduler": label + (" (baseline)" if label == "ConstantLR" else ""),
                     "Test accuracy (%)": fmt_mean_std([100 * a for a in acc[label]]),
                     "write-up acc (%)": f"{TABLE2[label][0]:.2f}",
                     "Test loss": fmt_mean_std(loss[label], 4), "write-up loss": f"{TABLE2[label][1]:.4f}",
                     "vs baseline (points)": f"{mean - base:+.2f}", "write-up vs baseline": f"{TABLE2[label][2]:+.2f}"})
    return pd.DataFrame(rows).set_index("Scheduler")


def at_chance(df: pd.DataFrame, label: str, num_classes: int, tolerance: float = 0.01) -> tuple[bool, float]:
    """Whether every seed's final test loss is within ``tolerance`` (relative) of ln(classes)."""
    losses = per_setting(df, "label", "test_loss")[label]
    worst = max(abs(v - math.log(num_classes)) / math.log(num_classes) for v in losses)
    return worst <= tolerance, worst


def init_activation_std(runs_activations: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of each layer's output std at initialisation (epoch 0 of the activation probe)."""
    first = runs_activations[runs_activations.epoch == 0]
    return first.groupby(["label", "layer_index", "layer"], sort=False)["std"].mean().reset_index()


__all__ = ["plan", "assumptions", "tournament", "table1", "table2", "at_chance", "init_activation_std",
           "INITS", "SCHEDULERS", "TABLE1", "TABLE2"]
