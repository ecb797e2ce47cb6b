"""hpnb asks torch for its AVX2 kernels on AVX-512 CPUs, unless the user chose."""
import os
import subprocess
import sys

from hpnb.cpu_kernels import AVX2, AVX512, VARIABLE, cpu_flags, prefer_avx2_kernels

BOTH = AVX512 | AVX2 | {"sse4_2"}


def test_avx2_kernels_are_chosen_only_on_a_cpu_with_avx512_and_nobody_chose():
    environ = {}
    assert prefer_avx2_kernels(environ, BOTH) == "avx2" and environ == {VARIABLE: "avx2"}
    for missing in sorted(AVX512 | AVX2):  # each flag torch needs, missing
        environ = {}
        assert prefer_avx2_kernels(environ, BOTH - {missing}) is None and environ == {}
    environ = {VARIABLE: "avx512"}
    assert prefer_avx2_kernels(environ, BOTH) is None and environ == {VARIABLE: "avx512"}


def test_cpu_flags_are_read_from_a_real_cpuinfo_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse4_2 avx2 fma avx512f\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse4_2", "avx2", "fma", "avx512f"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def _capability(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != VARIABLE} | env
    done = subprocess.run([sys.executable, "-c", code + "; print(torch.backends.cpu.get_cpu_capability())"],
                          env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_importing_hpnb_sets_what_torch_dispatches_to_and_keeps_a_users_choice():
    torch_alone = _capability("import torch")
    with_hpnb = _capability("import torch, hpnb")  # torch imported first: still before any kernel ran
    if AVX512 <= cpu_flags() and AVX2 <= cpu_flags():
        assert (torch_alone, with_hpnb) == ("AVX512", "AVX2")
    else:
        assert with_hpnb == torch_alone
    assert _capability("import hpnb, torch", **{VARIABLE: "default"}) == "DEFAULT"
