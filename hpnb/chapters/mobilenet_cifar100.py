"""Chapter 2: MobileNet on CIFAR-100 — learning rate, schedule, weight decay and activation."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..analysis import final_rows, per_setting
from ..config import RunConfig
from ..registry import ConfigError
from ..sweep import expand
from ..results import fmt_mean_std, mean_std
from . import check_seeds

PARAMETERS = ("profile", "seeds", "data", "model", "lrs", "lr_epochs", "epochs", "batch_size", "momentum",
              "weight_decays", "sigmoid_blocks", "probe_parameter")

# The write-up's numbers: final train loss, valid loss, train acc (%), valid acc (%).
TABLE2 = {0.01: (1.953, 2.207, 46.314, 42.250), 0.05: (1.762, 2.042, 50.481, 46.040),
          0.2: (1.838, 2.059, 48.510, 44.800)}
TABLE3 = {"constant": (0.007, 3.786, 99.800, 55.800), "cosine": (0.001, 3.301, 99.965, 57.510)}
TABLE4 = {1e-4: (0.003, 1.778, 99.985, 60.320), 5e-4: (0.012, 1.394, 99.942, 67.950)}
TABLE5 = {1e-4: 61.99, 5e-4: 68.12}
COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")
COLUMN_NAMES = {"train_loss": "train loss", "val_loss": "valid loss", "train_acc": "train acc (%)",
                "val_acc": "valid acc (%)"}


@dataclass
class Plan:
    profile: str
    seeds: list
    base: RunConfig  # constant rate, no weight decay, ReLU everywhere, the LR-sweep epoch count
    params: dict

    def lr_grid(self) -> list:
        return [{"label": f"lr {lr:g}", "optimizer.lr": lr} for lr in self.params["lrs"]]

    def long(self, lr: float) -> RunConfig:
        """The 300-epoch base at the chosen rate, with the gradient-norm probe on (so runs are shared)."""
        return self.base.replace(**{"optimizer.lr": lr, "epochs": self.params["epochs"],
                                    "probes.grad_norm": self.params["probe_parameter"]})

    def schedule_grid(self) -> list:
        return [{"label": "constant", "schedule": {"name": "constant"}},
                {"label": "cosine", "schedule": {"name": "cosine"}}]

    def decay_grid(self) -> list:
        return [{"label": f"wd {wd:g}", "schedule": {"name": "cosine"}, "optimizer.weight_decay": wd}
                for wd in self.params["weight_decays"]]

    def activation_grid(self, weight_decay: float) -> list:
        blocks = list(self.params["sigmoid_blocks"])
        return [{"label": "ReLU", "schedule": {"name": "cosine"}, "optimizer.weight_decay": weight_decay},
                {"label": f"sigmoid in blocks {blocks[0]}–{blocks[-1]}", "schedule": {"name": "cosine"},
                 "optimizer.weight_decay": weight_decay, "model.sigmoid_blocks": blocks}]


def plan(params: dict) -> Plan:
    seeds = check_seeds(params["seeds"])
    for key in ("lrs", "weight_decays"):
        v = params[key]
        if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and x >= 0 for x in v):
            raise ConfigError(f"{key}: got {v!r}, expected a non-empty list of numbers >= 0")
    blocks = params["sigmoid_blocks"]
    if not (isinstance(blocks, list) and blocks and blocks == list(range(blocks[0], blocks[-1] + 1))):
        raise ConfigError(f"sigmoid_blocks: got {blocks!r}, expected a contiguous increasing list such as [4, ..., 10]")
    if not isinstance(params["model"], dict) or params["model"].get("name") != "mobilenet":
        raise ConfigError(f"model: got {params['model']!r}, expected a mapping with name: mobilenet")
    try:
        base = RunConfig.from_dict({
            "data": params["data"], "model": params["model"], "epochs": params["lr_epochs"],
            "batch_size": params["batch_size"], "drop_last": True,
            "optimizer": {"name": "sgd", "lr": params["lrs"][0], "momentum": params["momentum"]}})
    except ConfigError as err:
        raise ConfigError(str(err)) from None
    p = Plan(params["profile"], seeds, base, params)
    long = p.long(max(params["lrs"]))  # every later configuration validated now
    for point in p.schedule_grid() + p.decay_grid() + p.activation_grid(max(params["weight_decays"])):
        long.replace(**{k: v for k, v in point.items() if k != "label"})
    if params["probe_parameter"] not in dict(_probe_model(long).named_parameters()):
        raise ConfigError(f"probe_parameter: the model has no parameter {params['probe_parameter']!r}")
    return p


def planned_runs(p: Plan, lr: float | None = None, weight_decay: float | None = None) -> list[RunConfig]:
    """The LR sweep, then the long runs at ``lr`` and ``weight_decay`` (the notebook picks both from results;
    by default the largest of each, as ``plan`` validates; the cost of a run does not depend on them)."""
    long = p.long(max(p.params["lrs"]) if lr is None else lr)
    wd = max(p.params["weight_decays"]) if weight_decay is None else weight_decay
    grids = ((p.base, p.lr_grid()), (long, p.schedule_grid()), (long, p.decay_grid()), (long, p.activation_grid(wd)))
    return [cfg for base, grid in grids for _, cfg in expand(base, grid, p.seeds)]


def _probe_model(cfg: RunConfig):
    from ..models import build_model

    return build_model("mobilenet", **{**cfg.model.options, "width": 1 / 32})  # names only; keep it cheap


def assumptions(p: Plan) -> pd.DataFrame:
    d = p.base.data
    rows = [("Dataset", d.name), ("Split", f"stratified hold-out of {d.val_size:g} (seed {d.split_seed})"),
            ("Augmentation", "random crop (padding 4) + horizontal flip" if d.augment else "none"),
            ("Width multiplier", f"{p.base.model.options['width']:g}"),
            ("Batch", f"{p.base.batch_size}, last partial batch dropped"),
            ("Optimizer", f"SGD, momentum {p.params['momentum']}"),
            ("Epochs", f"{p.params['lr_epochs']} for the LR sweep, {p.params['epochs']} for the rest"),
            ("Cosine annealing", "to 0 over all epochs (T_max = epochs), stepped per epoch"),
            ("Selection rules", "best LR and best weight decay by mean final validation accuracy"),
            ("Probe", f"2-norm of the gradient of {p.params['probe_parameter']}, after backward, every step"),
            ("Seeds", ", ".join(map(str, p.seeds)))]
    return pd.DataFrame(rows, columns=["assumption", "value in this run"])


def pick(df: pd.DataFrame, by: str = "label", metric: str = "val_acc") -> str:
    """The setting with the highest mean final ``metric`` (the selection rule of the write-up)."""
    values = per_setting(df, by, metric)
    return max(values, key=lambda k: mean_std(values[k])[0])


def final_values(df: pd.DataFrame, label: str, col: str) -> list:
    """Final ``col`` of each seed of setting ``label``, accuracies in percent as the write-up gives them."""
    scale = 100 if col.endswith("acc") else 1
    return [scale * v for v in per_setting(df, "label", col)[label]]


def final_table(df: pd.DataFrame, reference: dict, keys: list) -> pd.DataFrame:
    """Final train/valid loss and accuracy per setting (mean ± std) beside the write-up's values."""
    rows = []
    for label, key in keys:
        row = {"setting": label}
        for i, col in enumerate(COLUMNS):
            row[COLUMN_NAMES[col]] = fmt_mean_std(final_values(df, label, col), 3)
            row[f"write-up {COLUMN_NAMES[col]}"] = f"{reference[key][i]:.3f}" if key in reference else "—"
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def record_references(results, table: str, df: pd.DataFrame, reference: dict, label_of) -> None:
    """Put a write-up table's four final numbers per setting beside the reproduced ones."""
    for key, ref in reference.items():
        for i, col in enumerate(COLUMNS):
            results.reference(f"{table} · {label_of(key)} · final {COLUMN_NAMES[col]}", ref[i],
                              final_values(df, label_of(key), col))


def four_panel(df: pd.DataFrame, order: list, title: str) -> None:
    """The write-up's figure layout: train/valid loss and train/valid accuracy against epochs."""
    from .. import plots

    fig, axes = plots.panels(4, width=4.2, title=title)
    for ax, col in zip(axes, COLUMNS):
        plots.curves(df, col, "label", ax, COLUMN_NAMES[col], order=order)
    fig.tight_layout()
    plots.plt.show()


__all__ = ["plan", "assumptions", "pick", "final_values", "final_table", "record_references", "four_panel", "final_rows", "TABLE2", "TABLE3",
           "TABLE4", "TABLE5"]
