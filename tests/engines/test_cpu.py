"""engines.cpu: the CPU's integer kernels read from (fake) /proc/cpuinfo text, and the INT8 decision with its overrides."""

from __future__ import annotations

import pytest

from engines import cpu as C

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni

processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""
XEON_VNNI = "model name\t: Intel(R) Xeon(R) Platinum 8375C\nflags\t\t: sse4_2 avx avx2 avx512f avx512bw avx512_vnni\n"
ALDER_LAKE = "model name\t: 12th Gen Intel(R) Core(TM) i7-1265U\nflags\t\t: avx avx2 avx_vnni\n"
ORIN = "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp " \
       "cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\n"
NANO = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nCPU implementer\t: 0x41\n"
OLD_X86 = "model name\t: Intel(R) Core(TM)2 Duo\nflags\t\t: sse sse2 ssse3 sse4_1\n"


@pytest.mark.parametrize("text, arch, kernel", [
    (EPYC_AVX2, "x86_64", "avx2"), (XEON_VNNI, "x86_64", "vnni"), (ALDER_LAKE, "x86_64", "vnni"),
    (ORIN, "aarch64", "arm-dot"), (NANO, "aarch64", "none"), (OLD_X86, "x86_64", "none"), ("", "x86_64", "none")])
def test_cpuinfo_text_gives_the_kernel_family(text: str, arch: str, kernel: str) -> None:
    f = C.parse_cpuinfo(text, arch)
    assert f.kernel == kernel and f.arch == arch


def test_cpuinfo_file_is_read_and_a_missing_one_is_not_an_error(tmp_path) -> None:
    p = tmp_path / "cpuinfo"
    p.write_text(XEON_VNNI)
    f = C.cpu_features(p, arch="x86_64")
    assert f.vnni and f.avx2 and "8375C" in f.model
    missing = C.cpu_features(tmp_path / "nothing", arch="x86_64")
    assert missing.kernel == "none"  # unknown: FP32 unless overridden, never a guessed "exact"


@pytest.mark.parametrize("text, arch, int8, bits", [
    (XEON_VNNI, "x86_64", True, 8), (ALDER_LAKE, "x86_64", True, 8), (ORIN, "aarch64", True, 8),
    (EPYC_AVX2, "x86_64", C.AVX2_INT8_DEFAULT, 7), (NANO, "aarch64", False, 7), (OLD_X86, "x86_64", False, 7)])
def test_the_rule_per_cpu(text: str, arch: str, int8: bool, bits: int) -> None:
    plan = C.int8_plan(C.parse_cpuinfo(text, arch), env={})
    assert (plan.int8, plan.weight_bits) == (int8, bits)
    assert plan.cpu in plan.describe() and ("INT8" if int8 else "FP32") in plan.describe()


def test_the_flag_wins_over_the_environment_which_wins_over_the_rule() -> None:
    vnni, avx2 = C.parse_cpuinfo(XEON_VNNI, "x86_64"), C.parse_cpuinfo(EPYC_AVX2, "x86_64")
    assert not C.int8_plan(vnni, mode="off", env={}).int8
    assert C.int8_plan(avx2, mode="on", env={}).int8
    assert C.int8_plan(avx2, mode="on", env={}).weight_bits == 7, "forcing INT8 on AVX2 still avoids the saturation"
    assert not C.int8_plan(vnni, env={C.ENV_INT8: "off"}).int8
    assert not C.int8_plan(vnni, env={C.ENV_INT8: "0"}).int8
    assert C.int8_plan(avx2, env={C.ENV_INT8: "on"}).int8
    assert C.int8_plan(avx2, mode="off", env={C.ENV_INT8: "on"}).int8 is False
    assert C.int8_plan(vnni, mode="auto", env={C.ENV_INT8: "off"}).int8 is False, "auto defers to the environment"
    assert "--int8=off" in C.int8_plan(vnni, mode="off", env={}).reason
    assert "MCA_INT8=on" in C.int8_plan(avx2, env={C.ENV_INT8: "on"}).reason


def test_weight_bits_override() -> None:
    avx2 = C.parse_cpuinfo(EPYC_AVX2, "x86_64")
    assert C.int8_plan(avx2, mode="on", env={C.ENV_WEIGHT_BITS: "8"}).weight_bits == 8
    assert C.int8_plan(C.parse_cpuinfo(XEON_VNNI, "x86_64"), env={C.ENV_WEIGHT_BITS: "7"}).weight_bits == 7


@pytest.mark.parametrize("env, mode", [({C.ENV_INT8: "maybe"}, None), ({}, "fast"), ({C.ENV_WEIGHT_BITS: "4"}, "on")])
def test_bad_values_are_refused(env: dict, mode: str | None) -> None:
    with pytest.raises(ValueError, match="MCA_INT8|--int8"):
        C.int8_plan(C.parse_cpuinfo(EPYC_AVX2, "x86_64"), mode=mode, env=env)


def test_this_machine_reads_without_error() -> None:
    f = C.cpu_features()
    assert f.kernel in ("vnni", "arm-dot", "avx2", "none")
