#!/usr/bin/env python
"""The memory layout of the quick profile's conv-net ensembles on a CPU, three ways side by side in one process.

- ``before``: NCHW, with torch's vmap rule for max pooling (which copies the activations member-first), VGG's
  ReLU in place and, for MobileNet, channels-last batches stacked member-first; how hpnb ran before
  hpnb.models.pooling. (The global average pools, now means, are not switched.)
- ``pool``: NCHW with hpnb's pooling rule (the member axis folded into the channels, no copy) and VGG's ReLU
  out of place.
- ``now``: what hpnb does: channels-last where ``hpnb.models.CHANNELS_LAST_ON_CPU`` says, the members beside the
  channels in memory, and hpnb's pooling rule.

The settings are module attributes, switched between measurements; each ensemble is measured in every mode per
round, the modes' order rotating from round to round so that drift of the machine's speed falls on all. The
table gives medians of the training step and of the evaluation cost per sample.
Usage: python scripts/bench_cpu_layout.py [--rounds 3] [--steps 6] [--models vgg19,mnist_cnn,...]"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from hpnb import batches, loop
from hpnb.ensembles import plan_ensembles
from hpnb.models import CHANNELS_LAST_ON_CPU, pooling, simple_cnns, vgg
from hpnb.pipeline import plan
from hpnb.timing import measure

MODES = ("before", "pool", "now")
CONV_NETS = ("vgg19", "resnet34", "mobilenet", "mnist_cnn", "cifar_cnn")


def member_first(x: torch.Tensor) -> torch.Tensor:
    """The stacked batch as hpnb laid it out before: each member's batch channels-last, members first."""
    return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(x.shape)


OURS_LAYOUT = batches.members_beside_channels
OURS_POOL = pooling.max_pool2d


class InPlaceReLU:
    """torch.nn as VGG saw it before: its ReLU in place."""

    def __getattr__(self, name):
        return getattr(nn, name)

    @staticmethod
    def ReLU():
        return nn.ReLU(inplace=True)


def switch(mode: str) -> None:
    pool = F.max_pool2d if mode == "before" else OURS_POOL
    simple_cnns.max_pool2d = pool  # the chapter-3 networks call it by name, VGG's MaxPool2d through pooling's
    pooling.max_pool2d = pool
    loop.CHANNELS_LAST_ON_CPU = CHANNELS_LAST_ON_CPU if mode == "now" else frozenset({"mobilenet"})
    batches.members_beside_channels = OURS_LAYOUT if mode == "now" else member_first
    vgg.nn = InPlaceReLU() if mode == "before" else nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--models", default=",".join(CONV_NETS))
    args = parser.parse_args()
    wanted = args.models.split(",")
    unknown = sorted(set(wanted) - set(CONV_NETS))
    if unknown:
        sys.exit(f"--models: {', '.join(unknown)}: not a conv net of the quick profile; choose from "
                 f"{', '.join(CONV_NETS)}")
    _, chapters = plan("quick")
    ensembles: dict[str, list] = {}
    for chapter in chapters:
        for members in plan_ensembles(chapter.plan(None).configs()):
            options = ", ".join(f"{k}={v}" for k, v in members[0].model.options.items() if k != "width")
            key = f"{members[0].model.name}{f' ({options})' if options else ''} x{len(members)}"
            if members[0].model.name in wanted and key not in ensembles:
                ensembles[key] = members
    results: dict = {}
    for round_ in range(args.rounds):
        order = MODES[round_ % len(MODES):] + MODES[: round_ % len(MODES)]
        for key, members in ensembles.items():
            for mode in order:
                switch(mode)
                try:
                    cost = measure(members, args.steps)
                finally:
                    switch("now")
                results.setdefault(key, {}).setdefault(mode, []).append(cost)
                print(f"round {round_ + 1}/{args.rounds} {key} {mode}: step {cost.step_seconds * 1e3:.1f} ms",
                      file=sys.stderr, flush=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"kernels {torch.backends.cpu.get_cpu_capability()}, {args.rounds} rounds of {args.steps} steps, medians")
    print("| ensemble | step before | step pool | step now | now vs before | eval/sample before | eval/sample now "
          "| now vs before |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, by_mode in results.items():
        step = {m: statistics.median(c.step_seconds for c in by_mode[m]) * 1e3 for m in MODES}
        ev = {m: statistics.median(c.eval_per_sample for c in by_mode[m]) * 1e6 for m in MODES}
        print(f"| {key} | {step['before']:.1f} ms | {step['pool']:.1f} ms | {step['now']:.1f} ms | "
              f"{step['before'] / step['now']:.2f}x | {ev['before']:.0f} us | {ev['now']:.0f} us | "
              f"{ev['before'] / ev['now']:.2f}x |")


if __name__ == "__main__":
    main()
