#!/usr/bin/env python
"""torch's CPU ELU and batch norm against hpnb's (hpnb.models.activations, hpnb.models.batchnorm), side by side
in one process.

For each op, two measurements, alternated between torch's and hpnb's round after round so that drift of the
machine's speed falls on both: the op alone, forward and backward, on one activation of the quick profile (the
chapter-3 CIFAR network's first ELU in its ensemble of 26; VGG-19-BN's first batch norm in its ensemble of 12,
under vmap as ``hpnb.stack`` runs it); and the quick profile's ensembles of the networks that use the op, per
training step and per evaluated sample. torch fixes its CPU kernel set once per process: run the script again
under ``ATEN_CPU_CAPABILITY=avx2`` to compare the other set (hpnb's ELU is torch's there; the first line says).
Usage: python scripts/bench_cpu_ops.py [--ops elu,batchnorm] [--rounds 3] [--steps 6]"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import vmap

from hpnb.batches import members_beside_channels
from hpnb.ensembles import plan_ensembles
from hpnb.models import activations, batchnorm, simple_cnns
from hpnb.pipeline import plan
from hpnb.timing import measure


def elu_alone(elu: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    return elu


def batch_norm_alone(batch_norm: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """A member-stacked batch norm with training statistics, as vmap runs it inside an ensemble."""
    k, c, g = 12, 8, torch.Generator().manual_seed(1)
    weight, bias = torch.rand(k, c, generator=g).requires_grad_(), torch.randn(k, c, generator=g).requires_grad_()
    running_mean, running_var = torch.zeros(k, c), torch.ones(k, c)
    return lambda x: vmap(lambda xk, w, b, m, v: batch_norm(xk, m, v, w, b, True, 0.1, 1e-5))(
        x, weight, bias, running_mean, running_var)


# op: (where hpnb's models look it up, torch's, hpnb's, the op alone, its input, the networks that use it)
OPS = {
    "elu": ((simple_cnns, "elu"), F.elu, activations.elu_from_exp, elu_alone,
            lambda g: torch.randn(20, 26 * 16, 16, 16, generator=g), ("cifar_cnn",)),
    "batchnorm": ((batchnorm, "batch_norm"), F.batch_norm, batchnorm.batch_norm, batch_norm_alone,
                  lambda g: members_beside_channels(torch.randn(12, 64, 8, 32, 32, generator=g)),
                  ("vgg19", "resnet34", "mobilenet")),
}
WHO = ("torch", "hpnb")


def op_ms(op: Callable, x: torch.Tensor, repeats: int = 10) -> tuple[float, float]:
    """Median milliseconds of the forward and of the backward of ``op`` on ``x``."""
    forward, backward = [], []
    for _ in range(repeats + 1):
        a = x.detach().requires_grad_()
        start = time.perf_counter()
        out = op(a)
        middle = time.perf_counter()
        out.backward(torch.ones_like(out))
        backward.append(time.perf_counter() - middle)
        forward.append(middle - start)
    return statistics.median(forward[1:]) * 1e3, statistics.median(backward[1:]) * 1e3


def ensembles_of(networks: tuple) -> dict[str, list]:
    _, chapters = plan("quick")
    found: dict[str, list] = {}
    for chapter in chapters:
        for members in plan_ensembles(chapter.plan(None).configs()):
            cfg = members[0]
            if cfg.model.name in networks and (cfg.model.name != "vgg19" or cfg.model.options["batch_norm"]):
                options = ", ".join(f"{k}={v}" for k, v in cfg.model.options.items() if k != "width")
                found.setdefault(f"{cfg.model.name} ({options}) x{len(members)}", members)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    wanted = args.ops.split(",")
    unknown = sorted(set(wanted) - set(OPS))
    if unknown:
        sys.exit(f"--ops: {', '.join(unknown)}: not an op this script times; choose from {', '.join(OPS)}")
    g = torch.Generator().manual_seed(0)
    used = "ELU from exp" if activations.FROM_EXP_ON_CPU else "torch's ELU"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"kernels {torch.backends.cpu.get_cpu_capability()} (hpnb's ELU here: {used}), {args.rounds} rounds of "
          f"{args.steps} steps, medians")
    print("| what | torch's | hpnb's | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name in wanted:
        (module, attr), theirs, ours, alone, make_input, networks = OPS[name]
        x, ensembles, original = make_input(g), ensembles_of(networks), getattr(module, attr)
        ops: dict = {who: [] for who in WHO}
        costs: dict = {key: {who: [] for who in WHO} for key in ensembles}
        for round_ in range(args.rounds):
            for who in (WHO if round_ % 2 == 0 else WHO[::-1]):
                fn = ours if who == "hpnb" else theirs
                ops[who].append(op_ms(alone(fn), x))
                setattr(module, attr, fn)
                try:
                    for key, members in ensembles.items():
                        costs[key][who].append(measure(members, args.steps))
                finally:
                    setattr(module, attr, original)
                print(f"{name}: round {round_ + 1}/{args.rounds} {who} done", file=sys.stderr, flush=True)
        for j, part in enumerate(("forward", "backward")):
            t, h = (statistics.median(r[j] for r in ops[who]) for who in WHO)
            print(f"| {name} alone, {part}, {tuple(x.shape)} | {t:.2f} ms | {h:.2f} ms | {t / h:.2f}x |")
        for key, by_who in costs.items():
            t, h = (statistics.median(c.step_seconds for c in by_who[who]) * 1e3 for who in WHO)
            print(f"| {key}, training step | {t:.1f} ms | {h:.1f} ms | {t / h:.2f}x |")
            t, h = (statistics.median(c.eval_per_sample for c in by_who[who]) * 1e6 for who in WHO)
            print(f"| {key}, eval per sample | {t:.0f} us | {h:.0f} us | {t / h:.2f}x |")


if __name__ == "__main__":
    main()
