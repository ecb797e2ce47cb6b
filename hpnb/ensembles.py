"""Which runs train together: runs that share ``ensemble_key`` are split into ensembles no larger than what
fits the device's memory (and a hard cap, so one ensemble never holds a whole profile hostage)."""
from __future__ import annotations

import os
from typing import Sequence

import torch

from .config import RunConfig
from .loop import ensemble_key

HARD_CAP = 64  # members per ensemble, whatever the memory says
MEMORY_SHARE = 0.5  # of the free device memory an ensemble may plan to use


def member_bytes(cfg: RunConfig, input_shape: tuple, num_classes: int) -> int:
    """Rough memory of one member: weights, gradients and two optimizer moments (4 × the parameters) plus the
    activations a training step keeps for the backward pass (every layer output, twice for safety)."""
    from .models import build_model, model_context

    with torch.device("meta"):
        model = build_model(cfg.model.name, **cfg.model.options, **model_context(input_shape, num_classes))
    weights = 4 * 4 * sum(p.numel() for p in model.parameters())
    outputs = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel()))
             for m in model.modules() if not list(m.children())]
    try:
        model(torch.empty(cfg.batch_size, *input_shape, device="meta"))
        activations = 2 * 4 * sum(outputs)
    except Exception:  # an op without a meta kernel: assume activations as large as the weights
        activations = weights
    finally:
        for h in hooks:
            h.remove()
    return weights + activations


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def member_cap(cfg: RunConfig, input_shape: tuple, num_classes: int, device: torch.device,
               limit: int | None = None, memory: float | None = None) -> int:
    """How many members of ``cfg``'s kind one ensemble may hold on ``device`` (or in ``memory`` bytes, when
    planning for another machine, e.g. a cluster's GPUs)."""
    available = memory if memory is not None else free_bytes(device)
    fits = int(MEMORY_SHARE * available // max(1, member_bytes(cfg, input_shape, num_classes)))
    limit = limit or int(os.environ.get("HPNB_MAX_MEMBERS", "0")) or HARD_CAP  # 1: every run on its own
    return max(1, min(fits, limit, HARD_CAP))


def group(cfgs: Sequence[RunConfig], caps: dict[str, int] | None = None) -> list[list[int]]:
    """Indices of ``cfgs`` split into ensembles: same ``ensemble_key``, at most ``caps[key]`` members each
    (1 when ``caps`` lacks the key). Order within an ensemble follows ``cfgs``."""
    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        by_key.setdefault(ensemble_key(cfg), []).append(i)
    out = []
    for key, members in by_key.items():
        size = max(1, (caps or {}).get(key, 1))
        # equal-sized chunks: 10 members under a cap of 8 train as 5 + 5, not 8 + 2
        chunks = -(-len(members) // size)
        per = -(-len(members) // chunks)
        out += [members[i:i + per] for i in range(0, len(members), per)]
    return out


def plan_ensembles(cfgs: Sequence[RunConfig], limit: int | None = None,
                   memory: float | None = None) -> list[list[RunConfig]]:
    """The ensembles the executor trains for ``cfgs`` (computed without loading any data); ``memory`` (bytes)
    sizes them for another machine's device."""
    from .timing import split_sizes
    from .loop import resolve_device

    caps = {}
    for cfg in cfgs:
        key = ensemble_key(cfg)
        if key not in caps:
            sizes = split_sizes(cfg.data)
            device = torch.device("cpu") if memory is not None else resolve_device(cfg.device)
            caps[key] = member_cap(cfg, sizes.shape, sizes.classes, device, limit, memory)
    return [[cfgs[i] for i in chunk] for chunk in group(cfgs, caps)]


__all__ = ["group", "plan_ensembles", "member_cap", "member_bytes", "HARD_CAP"]
