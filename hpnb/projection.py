"""``hpnb project``: how long a profile's chapters would take on this device, before training any of them.

Every run the chapters would train (their plans, without a store) is split into the ensembles the executor would train
(``hpnb.ensembles``: same network, data and batches; as many members as fit in memory). For each distinct
ensemble the real training loop runs a few steps on random data of the real shape; the measured seconds per
step and per evaluated sample, with the real split sizes, give its seconds per epoch. No dataset is needed,
so a paper profile can be costed on a machine that does not hold its data.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .config import RunConfig
from .ensembles import plan_ensembles
from .timing import EnsembleCost, measure, split_sizes
from .loop import ensemble_key, resolve_device


def project(profile: str = "paper", chapters=None, steps: int | None = None, device: str = "auto",
            root: Path | None = None) -> pd.DataFrame:
    """One row per chapter and kind of ensemble: runs, ensembles, epochs, measured seconds per ensemble epoch
    and projected hours. Every parameter file is checked before anything is timed."""
    from .pipeline import plan

    _, picked = plan(profile, chapters, root)
    device = str(resolve_device(device))
    steps = steps or (20 if device.startswith("cuda") else 3)
    rows, costs = [], {}
    for chapter in picked:
        cfgs = [cfg.replace(device=device) for cfg in chapter.plan(None).configs()]  # no store: every run
        varying = _varying_options(cfgs)
        kinds: dict[str, list[list[RunConfig]]] = {}
        for members in plan_ensembles(cfgs):
            kinds.setdefault(ensemble_key(members[0]), []).append(members)
        for key, ensembles in kinds.items():
            first, sizes = ensembles[0][0], split_sizes(ensembles[0][0].data)
            seconds = 0.0
            for members in ensembles:
                if (key, len(members)) not in costs:
                    costs[key, len(members)] = measure(members, steps)
                cost: EnsembleCost = costs[key, len(members)]
                per_epoch = cost.epoch_seconds(sizes, first.batch_size, first.drop_last)
                tests = 1 if not first.test_every_epoch else first.epochs
                seconds += first.epochs * per_epoch + tests * sizes.test * cost.eval_per_sample
            options = [f"{k}={v}" for k, v in first.model.options.items() if k in varying or k == "width"]
            if first.probes.grad_norm:
                options.append("grad-norm probe")
            runs = sum(len(m) for m in ensembles)
            rows.append({"chapter": chapter.name, "model": first.model.name, "options": ", ".join(options),
                         "optimizer": first.optimizer.name, "batch": first.batch_size,
                         "train / val / test": f"{sizes.train:,} / {sizes.val:,} / {sizes.test:,}",
                         "runs": runs, "ensembles": " + ".join(str(len(m)) for m in ensembles),
                         "epochs": first.epochs * len(ensembles), "hours": seconds / 3600})
            r = rows[-1]
            print(f"{chapter.name[:2]}  {r['model']} ({r['options'] or 'as configured'}), {r['optimizer']}, batch "
                  f"{r['batch']}: {runs} runs as ensembles of {r['ensembles']}, {first.epochs} epochs each: "
                  f"{r['hours']:.3g} h", flush=True)
    table = pd.DataFrame(rows)
    table.attrs["device"] = device
    return table


def _varying_options(configs: list[RunConfig]) -> set:
    """Model options whose value differs between configs of the same model (the ones worth printing)."""
    seen: dict = {}
    for cfg in configs:
        for key, value in cfg.model.options.items():
            seen.setdefault((cfg.model.name, key), set()).add(repr(value))
    return {key for (_, key), values in seen.items() if len(values) > 1}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    by_chapter = table.groupby("chapter", sort=False)[["runs", "hours"]].sum()
    by_chapter.loc["all chapters"] = by_chapter.sum()
    return by_chapter


def add_project_parser(sub) -> None:
    p = sub.add_parser("project", help="projected device-hours of a profile's runs, measured on this machine")
    p.add_argument("--profile", default="paper", help="quick, paper, smoke or a folder of parameter files")
    p.add_argument("--chapter", nargs="*", default=None, help="chapter names (or prefixes such as 01)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per ensemble (default 20 GPU, 3 CPU)")
    p.add_argument("--device", default="auto")

    def run(args) -> int:
        from .registry import ConfigError

        try:
            table = project(args.profile, args.chapter, args.steps, args.device)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        totals = summary(table)
        print(f"\nprojected {table.attrs['device']} hours, ensembles trained one after another:")
        print(totals.to_string(float_format=lambda v: f"{v:,.3g}"))
        return 0

    p.set_defaults(func=run)
