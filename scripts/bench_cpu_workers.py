#!/usr/bin/env python
"""The quick profile's training on a CPU in one process against worker processes (hpnb.workers), side by side.

Plans the profile's first round (every run whose inputs need no earlier result), then trains all of it into a
fresh temporary store once per mode: ``1`` (one process, torch's threads on every core) and ``N`` (N worker
processes with cores // N threads each). The modes' order rotates from round to round, so that drift of the
machine's speed falls on both. Wall time and CPU time (this process and its children) per mode.
Usage: python scripts/bench_cpu_workers.py [--workers N] [--rounds 1] [--chapters 03 04] [--profile quick]"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time

import torch

from hpnb.pipeline import pending, plan
from hpnb.runner import train_runs
from hpnb.store import RunStore
from hpnb.workers import cpu_workers, usable_cores


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=max(2, cpu_workers()))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--chapters", nargs="*", default=None, help="chapter numbers or names (default: all)")
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    os.environ.setdefault("HPNB_PROGRESS", "0")

    _, chapters = plan(args.profile, args.chapters)
    scratch = tempfile.mkdtemp(prefix="hpnb-bench-workers-")
    _, todo = pending(chapters, RunStore(scratch))
    configs = [cfg for cfgs in todo.values() for cfg in cfgs]
    print(f"{platform.processor() or platform.machine()}, {usable_cores()} usable cores, torch {torch.__version__}; "
          f"{len(configs)} runs of {', '.join(ch.name for ch in chapters)}")
    modes = [1, args.workers]
    wall: dict[int, list] = {m: [] for m in modes}
    cpu: dict[int, list] = {m: [] for m in modes}
    try:
        for r in range(args.rounds):
            for mode in modes[r % 2:] + modes[:r % 2]:
                store = tempfile.mkdtemp(dir=scratch)
                start_wall, start_cpu = time.perf_counter(), cpu_seconds()
                outcomes = train_runs(configs, store, progress=False, workers=mode)
                wall[mode].append(time.perf_counter() - start_wall)
                cpu[mode].append(cpu_seconds() - start_cpu)
                failed = [o for o in outcomes if o.error]
                print(f"  round {r + 1}, {mode} process(es): {wall[mode][-1]:.1f} s wall, {cpu[mode][-1]:.1f} s CPU"
                      + (f", {len(failed)} failed: {failed[0].error}" if failed else ""), flush=True)
                shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    one, many = statistics.median(wall[1]), statistics.median(wall[args.workers])
    print(f"median wall: 1 process {one:.1f} s, {args.workers} workers {many:.1f} s: {one / many:.2f}x; "
          f"CPU {statistics.median(cpu[1]):.0f} s against {statistics.median(cpu[args.workers]):.0f} s")


if __name__ == "__main__":
    main()
