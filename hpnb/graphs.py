"""Whole-step CUDA graphs: one training step of an ensemble captured once and replayed for every batch of
the same kind.

Small networks spend most of a step launching kernels; a replayed graph launches them all at once. The batch,
dropout masks, learning rates and member mask are copied into static buffers before each replay; the
optimizer state, accumulators and step counter already live on the device. Each kind of step (batch shape,
which random inputs it takes) gets its own graph after ``warmup`` eager steps on a side stream, as capture
requires; if capture fails for any reason, training goes on eagerly.

A step is capturable only if it never waits for the device. ``host_reads`` lists the known ops in a step that
would, on a CPU or on meta tensors: a network can be checked before it reaches a GPU.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .step import TrainStep

_VALUE_SHAPED = "an output whose shape depends on the values"
# The known ops that make the host wait for the device, or that copy host data in (which a graph would freeze
# at its capture-time values): one of them in a step makes capture fail, and the step then trains eagerly.
HOST_READS = {
    "_local_scalar_dense": "reads a value back to the host (.item(), float(t), bool(t), an `if` on a tensor)",
    "equal": "reads a value back to the host (torch.equal)",
    "allclose": "reads a value back to the host (torch.allclose)",
    "nonzero": _VALUE_SHAPED,
    "masked_select": _VALUE_SHAPED,
    "_unique2": _VALUE_SHAPED,
    "unique_consecutive": _VALUE_SHAPED,
    "unique_dim": _VALUE_SHAPED,
    "_linalg_check_errors": "a linear-algebra error check read back to the host (the `_ex` variants skip it)",
    "_linalg_eigh": "checks convergence on the host (torch has no eigh without the check)",
    "_linalg_svd": "checks convergence on the host",
    "lift_fresh": "a tensor built from Python values inside the step (on a GPU a host-to-device copy)",
}
_CROSS_DEVICE = "a copy between host and device"


class _HostReadRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.found: dict[str, str] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in HOST_READS:
            self.found.setdefault(name, HOST_READS[name])
        elif name == "repeat_interleave" and func._overloadname == "Tensor" and not kwargs.get("output_size"):
            self.found.setdefault(name, _VALUE_SHAPED + " (pass output_size)")
        elif name == "index" and _has_mask(args):
            self.found.setdefault("index with a boolean mask", _VALUE_SHAPED)
        elif name in ("index_put", "index_put_") and _has_mask(args) and args[2].numel() > 1:
            # (a single value goes through masked_fill on CUDA, without a read)
            self.found.setdefault(f"{name} with a boolean mask", _VALUE_SHAPED)
        elif name in ("_to_copy", "copy_") and _crosses_devices(name, args, kwargs):
            self.found.setdefault(f"{name} to another device", _CROSS_DEVICE)
        return func(*args, **kwargs)


def _has_mask(args) -> bool:
    indices = [i for a in args if isinstance(a, (list, tuple)) for i in a]
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


def _crosses_devices(name: str, args, kwargs) -> bool:
    if name == "copy_":
        return args[0].device != args[1].device
    target = kwargs.get("device")
    return target is not None and torch.device(target) != args[0].device


def host_reads(fn, *args, **kwargs) -> dict[str, str]:
    """The known ops in ``fn(*args, **kwargs)`` that would stop it from being captured in a CUDA graph, each
    with why (empty: none found). It runs ``fn`` once, on whatever device its tensors are on; each device shows
    part of the picture. On a CPU, tensors built from Python values show (``lift_fresh``). On meta tensors
    (shapes without data) copies from the host show, and a read a CPU cannot notice (``.tolist()``, ``.cpu()``,
    ``.item()``) raises, as there is nothing to copy out. Waits inside a kernel (on CUDA e.g. ``bincount``)
    show on neither."""
    with _HostReadRecorder() as recorder:
        fn(*args, **kwargs)
    return recorder.found


@dataclass
class _Captured:
    eager_steps: int = 0
    graph: Optional[torch.cuda.CUDAGraph] = None
    static: dict = field(default_factory=dict)


class GraphedStep:
    def __init__(self, step: TrainStep, warmup: int = 3):
        self.step, self.warmup = step, warmup
        self.kinds: dict[tuple, _Captured] = {}
        self.failed = False
        self.stream = torch.cuda.Stream()

    @property
    def graphs(self) -> int:
        return sum(c.graph is not None for c in self.kinds.values())

    def __call__(self, x, y, noise, lr, active) -> None:
        if self.failed:
            self.step(x, y, noise, lr, active)
            return
        kind = self.kinds.setdefault((tuple(x.shape), tuple(sorted(noise or {}))), _Captured())
        if kind.graph is None and kind.eager_steps < self.warmup:
            self._on_side_stream(lambda: self.step(x, y, noise, lr, active))
            kind.eager_steps += 1
            return
        if kind.graph is None:
            try:
                self._capture(kind, x, y, noise, lr, active)
            except Exception as err:  # e.g. an op that reads back to the host: keep training, eagerly
                warnings.warn(f"CUDA graph capture failed ({type(err).__name__}: {err}); training eagerly")
                self.failed = True
                torch.cuda.synchronize()
                self.step(x, y, noise, lr, active)
                return
        self._replay(kind, x, y, noise, lr, active)

    def _on_side_stream(self, fn) -> None:
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            fn()
        torch.cuda.current_stream().wait_stream(self.stream)

    def _capture(self, kind: _Captured, x, y, noise, lr, active) -> None:
        s = {"x": x.clone(), "y": y.clone(), "lr": lr.clone(), "active": active.clone(),
             "noise": None if noise is None else {k: v.clone() for k, v in noise.items()}}
        self.step.optimizer.zero_grad()  # the graph allocates the gradients and rewrites them on every replay
        graph = torch.cuda.CUDAGraph()
        self.step.graph_safe = True
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                self.step.body(s["x"], s["y"], s["noise"], s["lr"], s["active"])
        finally:
            self.step.graph_safe = False
        kind.graph, kind.static = graph, s

    @staticmethod
    def _replay(kind: _Captured, x, y, noise, lr, active) -> None:
        s = kind.static
        s["x"].copy_(x)
        s["y"].copy_(y)
        s["lr"].copy_(lr)
        s["active"].copy_(active)
        for k, v in (noise or {}).items():
            s["noise"][k].copy_(v)
        kind.graph.replay()


__all__ = ["GraphedStep", "HOST_READS", "host_reads"]
