"""Chapter 4: initialisation of LDLT 𝓛-Lipschitz layers — output-variance theory and the Higgs sweep."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import theory
from ..analysis import final_rows
from ..config import RunConfig
from ..registry import ConfigError
from ..sweep import expand
from . import check_seeds

PARAMETERS = ("profile", "seeds", "data", "width", "depths", "scales", "optimizers", "epochs", "batch_size",
              "normalisation", "moment_cases", "moment_orders", "mc_draws", "variance_layers",
              "variance_scales", "mc_variance_draws")
HE = "He (√2/√n)"
REFERENCE_VARIANCE = {"1/√n (He scaling, as the summary puts it)": (1.0, 0.41), "10/√n, α = 1": (10.0, 0.9)}


@dataclass
class Plan:
    profile: str
    seeds: list
    base: RunConfig
    grid: list
    params: dict


def init_label(scale) -> str:
    return HE if scale is None else f"s = {scale:g}"


def plan(params: dict) -> Plan:
    seeds = check_seeds(params["seeds"])
    for key in ("depths", "scales", "moment_orders", "variance_scales"):
        v = params[key]
        if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and x > 0 for x in v):
            raise ConfigError(f"{key}: got {v!r}, expected a non-empty list of positive numbers")
    if any(not isinstance(k, int) or k > 10 for k in params["moment_orders"]):
        raise ConfigError(f"moment_orders: got {params['moment_orders']!r}, expected integers in 1..10")
    for key in ("moment_cases", "variance_layers"):
        v = params[key]
        if not isinstance(v, list) or not all(isinstance(c, list) and len(c) == 2 and all(isinstance(x, int) and x > 0 for x in c) for c in v):
            raise ConfigError(f"{key}: got {v!r}, expected a list of [m, n] pairs of positive integers")
    for key in ("mc_draws", "mc_variance_draws"):
        if not isinstance(params[key], int) or params[key] < 10:
            raise ConfigError(f"{key}: got {params[key]!r}, expected an integer >= 10")
    if not isinstance(params["optimizers"], dict) or not params["optimizers"]:
        raise ConfigError(f"optimizers: got {params['optimizers']!r}, expected a mapping of label → optimizer spec")
    try:
        base = RunConfig.from_dict({
            "data": params["data"], "epochs": params["epochs"], "batch_size": params["batch_size"],
            "model": {"name": "ldlt_mlp", "width": params["width"], "depth": params["depths"][0],
                      "normalisation": params["normalisation"]},
            "probes": {"activation_variance": True, "cka": True, "roc_auc": True}})
    except ConfigError as err:
        raise ConfigError(str(err)) from None
    grid = []
    for opt_label, opt in params["optimizers"].items():
        for scale in [None] + list(params["scales"]):
            init = {"name": "kaiming_normal"} if scale is None else {"name": "scaled_normal", "scale": float(scale)}
            for depth in params["depths"]:
                point = {"label": f"{opt_label} · {init_label(scale)} · depth {depth}", "label_optimizer": opt_label,
                         "label_init": init_label(scale), "label_depth": depth,
                         "optimizer": opt, "init": init, "model.depth": depth}
                try:
                    base.replace(**{k: v for k, v in point.items() if not k.startswith("label")})
                except ConfigError as err:
                    raise ConfigError(f"optimizers.{opt_label}: {err}") from None
                grid.append(point)
    return Plan(params["profile"], seeds, base, grid, params)


def planned_runs(p: Plan) -> list[RunConfig]:
    return [cfg for _, cfg in expand(p.base, p.grid, p.seeds)]


def assumptions(p: Plan) -> pd.DataFrame:
    d = p.base.data
    rows = [("Data", f"{d.name}: {d.train_size} train / {d.test_size} test, features standardised on train"),
            ("Network", f"{p.params['width']}-wide stack of LDLT layers with ReLU; hidden γ = √2, output γ = 1; "
                        f"α learnable per layer from 1; {p.params['normalisation']} normalisation"),
            ("Sweep", f"optimizers {', '.join(p.params['optimizers'])} × init {HE} and σ = s/√n for s in "
                      f"{p.params['scales']} × depth {p.params['depths']}"),
            ("Optimizer settings", "; ".join(f"{k}: {v}" for k, v in p.params["optimizers"].items())),
            ("Training", f"{p.base.epochs} epochs, batch {p.base.batch_size}"),
            ("CKA", "linear CKA between the test inputs and the last hidden layer (up to 2,048 test rows)"),
            ("Activation stability", "variance of every LDLT layer's output on 256 test rows, at init and after "
                                     "training, divided by the input variance"),
            ("Seeds", ", ".join(map(str, p.seeds)))]
    return pd.DataFrame(rows, columns=["assumption", "value in this run"])


def moments_table(cases, orders, draws: int) -> pd.DataFrame:
    """Exact E tr(Sᵏ) (σ² = 1) beside a Monte Carlo estimate and its standard error."""
    rows = []
    for m, n in cases:
        for k in orders:
            exact = theory.wishart_trace_moment(k, m, n)
            mean, se = theory.monte_carlo_trace_moment(k, m, n, draws=draws, seed=1000 * m + n)
            rows.append({"m": m, "n": n, "k": k, "exact E tr(S^k)": exact, "Monte Carlo": mean,
                         "standard error": se, "z": (mean - exact) / se})
    return pd.DataFrame(rows)


def variance_curve(m: int, n: int, scales, draws: int, alpha: float = 1.0, gamma: float = 1.0) -> pd.DataFrame:
    """Var[y] against the init scale s (σ = s/√n) by series, Monte Carlo and Marchenko–Pastur."""
    rows = []
    for s in scales:
        sigma2 = s * s / n
        mc, se = theory.monte_carlo_output_variance(m, n, sigma2, alpha, gamma, draws=draws, seed=int(s * 1000))
        rows.append({"scale": s, "method": "Monte Carlo", "variance": mc, "se": se})
        rows.append({"scale": s, "method": "series (k ≤ 10)",
                     "variance": theory.series_output_variance(m, n, sigma2, alpha, gamma),
                     "converges": theory.series_converges(m, n, sigma2, alpha)})
        rows.append({"scale": s, "method": "Marchenko–Pastur", "variance":
                     theory.marchenko_pastur_output_variance(m / n, s * s, alpha, gamma)})
    return pd.DataFrame(rows)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Replace the sweep's config-valued columns (optimizer and init specs) by their readable labels."""
    frame = frame.drop(columns=[c for c in ("optimizer", "init", "model.depth") if c in frame])
    return frame.rename(columns={"label_optimizer": "optimizer", "label_init": "init", "label_depth": "depth"})


def run_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run with its final test AUC, CKA and labels."""
    return tidy(final_rows(df[df.status != "failed"]))


def stability(acts: pd.DataFrame) -> pd.DataFrame:
    """Each layer's output variance relative to the input's, at init (epoch 0) and after the last epoch."""
    last = acts.epoch.max()
    part = acts[acts.epoch.isin([0, last])].copy()
    inputs = part[part.layer == "input"].set_index(["label", "seed", "epoch"])["variance"]
    part = part[part.layer != "input"]
    part["ratio"] = part["variance"].to_numpy() / inputs.reindex(
        pd.MultiIndex.from_frame(part[["label", "seed", "epoch"]])).to_numpy()
    part["when"] = np.where(part.epoch == 0, "at init", "after training")
    return part


def output_variance_claims() -> list[tuple[str, float, float, float]]:
    """(configuration, scale, write-up value, square-layer Marchenko–Pastur value) for the summary's numbers."""
    return [(name, s, ref, theory.marchenko_pastur_output_variance(1.0, s * s)) for name, (s, ref) in
            REFERENCE_VARIANCE.items()]


__all__ = ["plan", "tidy", "assumptions", "moments_table", "variance_curve", "run_table", "stability",
           "output_variance_claims", "HE"]
