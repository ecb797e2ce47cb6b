"""Which of torch's vectorised CPU kernels run: the AVX2 ones on a CPU that also has AVX-512.

torch 2.14's AVX-512 kernels compute ``expm1`` one element at a time, so ELU and its gradient (the chapter-3
CIFAR network) run 4-5x slower there than with its AVX2 kernels; the convolutions (oneDNN) pick their own
instructions either way. torch reads its choice, ``ATEN_CPU_CAPABILITY``, once, at its first CPU kernel call,
so it is set when hpnb is imported. A value already set is left alone: ``ATEN_CPU_CAPABILITY=avx512`` keeps
torch's default. Only Linux is checked (``/proc/cpuinfo``); elsewhere nothing changes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping, Optional

VARIABLE = "ATEN_CPU_CAPABILITY"
# What torch needs for each kernel set; asking for AVX2 on a CPU without it would crash, not fall back.
AVX512 = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})
AVX2 = frozenset({"avx2", "fma"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU listed in ``cpuinfo``; empty where it cannot be read."""
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def prefer_avx2_kernels(environ: MutableMapping[str, str] = os.environ,
                        flags: Optional[frozenset[str]] = None) -> Optional[str]:
    """Ask torch for its AVX2 kernels where the CPU has AVX-512 and nobody chose; returns what was set."""
    if VARIABLE in environ:
        return None
    flags = cpu_flags() if flags is None else flags
    if AVX512 <= flags and AVX2 <= flags:
        environ[VARIABLE] = "avx2"
        return "avx2"
    return None
