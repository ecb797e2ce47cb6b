#!/usr/bin/env python
"""torch's AVX2 against its AVX-512 CPU kernels, on the quick profile's ensembles.

Which set is faster depends on the machine: on one 2-core EPYC VM the AVX2 kernels ran the chapter-3 CIFAR
network's ensemble step 1.56x faster (its ELU), on another of the same name they were no faster; so hpnb leaves
torch's choice alone and this script tells a user whether ``ATEN_CPU_CAPABILITY=avx2`` pays on theirs. torch
fixes its kernel set once per process, so each set runs in its own child process, alternated (A B A B ...) so
that drift of the machine's speed falls on both; the table gives each ensemble's median training step and
evaluation cost per sample. Usage: python scripts/bench_cpu_kernels.py [--rounds 2]
[--steps 6]."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

SETS = ("avx512", "avx2")
# The instruction sets torch's AVX-512 and AVX2 kernels use.
NEEDED = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"})


def cpu_flags() -> frozenset[str]:
    """The first CPU's instruction-set flags in /proc/cpuinfo; empty where it cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as lines:
            return next((frozenset(line.partition(":")[2].split()) for line in lines if line.startswith("flags")),
                        frozenset())
    except OSError:
        return frozenset()


def child(steps: int) -> None:
    import torch
    from hpnb.ensembles import plan_ensembles
    from hpnb.pipeline import plan
    from hpnb.timing import measure

    _, chapters = plan("quick")
    seen = set()
    for chapter in chapters:
        for members in plan_ensembles(chapter.plan(None).configs()):
            key = f"{members[0].model.name} x{len(members)}"
            if key in seen:
                continue
            seen.add(key)
            cost = measure(members, steps)
            print(json.dumps({"ensemble": key, "step_ms": cost.step_seconds * 1e3,
                              "eval_us": cost.eval_per_sample * 1e6,
                              "kernels": torch.backends.cpu.get_cpu_capability()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.steps)
    if not NEEDED <= cpu_flags():  # torch would crash, not fall back, on kernels the CPU lacks
        sys.exit("this CPU lacks AVX-512 or AVX2 (per /proc/cpuinfo): there is nothing to compare")
    results: dict = {}
    for round_ in range(args.rounds):
        for kernels in SETS:
            print(f"round {round_ + 1}/{args.rounds}: {kernels} kernels", file=sys.stderr, flush=True)
            env = dict(os.environ, ATEN_CPU_CAPABILITY=kernels, HPNB_PROGRESS="0")
            out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(args.steps)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                row = json.loads(line)
                assert row["kernels"].lower() == kernels, row  # torch honoured the choice
                results.setdefault(row["ensemble"], {}).setdefault(kernels, []).append(row)
    import torch
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.rounds} alternated rounds of {args.steps} steps, medians")
    print("| ensemble | step AVX-512 | step AVX2 | speed-up | eval/sample AVX-512 | eval/sample AVX2 | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for ensemble, by_set in results.items():
        step = [statistics.median(r["step_ms"] for r in by_set[k]) for k in SETS]
        ev = [statistics.median(r["eval_us"] for r in by_set[k]) for k in SETS]
        print(f"| {ensemble} | {step[0]:.1f} ms | {step[1]:.1f} ms | {step[0] / step[1]:.2f}x "
              f"| {ev[0]:.0f} us | {ev[1]:.0f} us | {ev[0] / ev[1]:.2f}x |")


if __name__ == "__main__":
    main()
