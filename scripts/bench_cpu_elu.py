#!/usr/bin/env python
"""torch's CPU ELU against ELU from exp (hpnb.models.activations), side by side in one process.

Two measurements, each alternated between the two ELUs round after round so that drift of the machine's speed
falls on both: the activation alone, forward and backward, on the tensor of the chapter-3 CIFAR network's first
ELU in its quick-profile ensemble (26 members, batch 20, 16 channels at 16×16); and that network's quick-profile
ensembles, per training step and per evaluated sample. torch fixes its CPU kernel set once per process: run the
script again under ``ATEN_CPU_CAPABILITY=avx2`` to compare the other set. hpnb uses ELU from exp where torch runs
its AVX-512 kernels (``hpnb.models.activations.FROM_EXP_ON_CPU``); the table's first line says which it uses here.
Usage: python scripts/bench_cpu_elu.py [--rounds 3] [--steps 6]"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from hpnb.ensembles import plan_ensembles
from hpnb.models import activations, simple_cnns
from hpnb.pipeline import plan
from hpnb.timing import measure

ELUS = {"torch": F.elu, "from exp": activations.elu_from_exp}


def op_ms(act, x: torch.Tensor, repeats: int = 10) -> tuple[float, float]:
    """Median milliseconds of the forward and of the backward of ``act`` on ``x``."""
    forward, backward = [], []
    g = torch.ones_like(x)
    for _ in range(repeats + 1):
        a = x.detach().requires_grad_()
        start = time.perf_counter()
        out = act(a)
        middle = time.perf_counter()
        out.backward(g)
        end = time.perf_counter()
        forward.append(middle - start)
        backward.append(end - middle)
    return statistics.median(forward[1:]) * 1e3, statistics.median(backward[1:]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    _, chapters = plan("quick", ["03"])
    ensembles = [m for m in plan_ensembles(chapters[0].plan(None).configs()) if m[0].model.name == "cifar_cnn"]
    x = torch.randn(20, 26 * 16, 16, 16, generator=torch.Generator().manual_seed(0))
    ops: dict = {name: [] for name in ELUS}
    steps: dict = {}
    for round_ in range(args.rounds):
        order = list(ELUS) if round_ % 2 == 0 else list(ELUS)[::-1]
        for name in order:
            ops[name].append(op_ms(ELUS[name], x))
            for i, members in enumerate(ensembles):
                simple_cnns.elu = ELUS[name]
                try:
                    cost = measure(members, args.steps)
                finally:
                    simple_cnns.elu = activations.elu
                steps.setdefault((i, len(members)), {}).setdefault(name, []).append(cost)
            print(f"round {round_ + 1}/{args.rounds} {name}: done", file=sys.stderr, flush=True)
    used = "ELU from exp" if activations.FROM_EXP_ON_CPU else "torch's ELU"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"kernels {torch.backends.cpu.get_cpu_capability()}, {args.rounds} rounds, medians; hpnb uses {used} here")
    print("| what | torch's ELU | ELU from exp | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for j, part in enumerate(("forward", "backward")):
        t, h = (statistics.median(r[j] for r in ops[name]) for name in ELUS)
        print(f"| ELU {part}, {tuple(x.shape)} | {t:.2f} ms | {h:.2f} ms | {t / h:.2f}x |")
    for (i, k), by_name in steps.items():
        t, h = (statistics.median(c.step_seconds for c in by_name[name]) * 1e3 for name in ELUS)
        print(f"| cifar_cnn x{k} (ensemble {i + 1}), training step | {t:.1f} ms | {h:.1f} ms | {t / h:.2f}x |")
        t, h = (statistics.median(c.eval_per_sample for c in by_name[name]) * 1e6 for name in ELUS)
        print(f"| cifar_cnn x{k} (ensemble {i + 1}), eval per sample | {t:.0f} us | {h:.0f} us | {t / h:.2f}x |")


if __name__ == "__main__":
    main()
