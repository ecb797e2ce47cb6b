"""Command line: ``hpnb train FILE.yaml``, ``hpnb runs``, ``hpnb report``, ``hpnb bench``, ``hpnb project``."""
from __future__ import annotations

import argparse
import sys

from .registry import ConfigError


def _train(args) -> int:
    from .data import DataError
    from .runner import as_config, train

    try:
        cfg = as_config(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        run = train(cfg, store=args.store or "default")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run {cfg.hash}: {run.status}{' (cached)' if run.cached else ''} — {run.path}")
    cols = [c for c in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
            if c in run.history]
    print(run.history[cols].to_string(index=False))
    return 0


def _runs(args) -> int:
    from .store import RunStore

    table = RunStore(args.store).list_runs()
    if table.empty:
        print(f"no runs under {RunStore(args.store).root}")
    else:
        print(table.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpnb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one run from a YAML config (cached and resumable)")
    p.add_argument("config", help="a run config in YAML")
    p.add_argument("--store", default=None, help="run store folder (default: $HPNB_STORE or outputs/runs)")
    p.set_defaults(func=_train)
    p = sub.add_parser("runs", help="list the runs in the store")
    p.add_argument("--store", default=None)
    p.set_defaults(func=_runs)
    from .bench import add_bench_parser
    from .projection import add_project_parser
    from .report import add_report_parser

    add_report_parser(sub)
    add_bench_parser(sub)
    add_project_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
