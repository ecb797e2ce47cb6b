"""Command line: ``hpnb train FILE.yaml``, ``hpnb runs``, ``hpnb report``, ``hpnb bench``, ``hpnb project``.

``hpnb train`` exits 0 with the run's history, 2 when the input is wrong (the config file, a value in it, or the
data it names: fix the input), 1 when the run store cannot be written (read-only, disk full: fix the machine
and run it again: runs already stored stay intact, and an interrupted one resumes). An error is one line on
stderr, with no traceback: ``error: <file>: <key>: <what is wrong and what is allowed>`` for bad input, which
writes nothing (no store folder, run folder or lock file), and ``error: cannot write to the run store <path>:
<reason> (<file>); ...`` for the store.
"""
from __future__ import annotations

import argparse
import sys

from .registry import ConfigError

EXIT_BAD_INPUT = 2
EXIT_STORE = 1


def _with_file(path: str, message: str) -> str:
    """``message`` prefixed by the config file unless it already names it."""
    from pathlib import Path

    named = any(message.startswith(f"{name}:") for name in (path, str(Path(path))))
    return message if named else f"{path}: {message}"


def _train(args) -> int:
    from .data import DataError
    from .runner import as_config, train
    from .store import StoreError

    try:
        cfg = as_config(args.config)
        run = train(cfg, store=args.store or "default")
    except ConfigError as err:
        print(f"error: {_with_file(args.config, str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DataError as err:
        message = str(err) if str(err).startswith("data.") else f"data: {err}"
        print(f"error: {_with_file(args.config, message)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as err:
        print(f"error: {err}; the runs it holds are intact", file=sys.stderr)
        return EXIT_STORE
    print(f"run {cfg.hash}: {run.status}{' (cached)' if run.cached else ''} — {run.path}")
    cols = [c for c in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
            if c in run.history]
    print(run.history[cols].to_string(index=False))
    return 0


def _runs(args) -> int:
    from .store import RunStore

    store = RunStore(args.store)
    table = store.list_runs(verify=args.verify)
    if table.empty:
        print(f"no runs under {store.root}")
    else:
        print(table.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpnb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one run from a YAML config (cached and resumable); exit 2: bad input, "
                                      "1: the store cannot be written")
    p.add_argument("config", help="a run config in YAML")
    p.add_argument("--store", default=None, help="run store folder (default: $HPNB_STORE or outputs/runs)")
    p.set_defaults(func=_train)
    p = sub.add_parser("runs", help="list the runs in the store")
    p.add_argument("--store", default=None)
    p.add_argument("--verify", action="store_true", help="check every file's checksum (checkpoints too)")
    p.set_defaults(func=_runs)
    from .bench import add_bench_parser
    from .cluster import add_cluster_parsers
    from .projection import add_project_parser
    from .report import add_report_parser

    add_report_parser(sub)
    add_bench_parser(sub)
    add_project_parser(sub)
    add_cluster_parsers(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
