"""Which integer kernels this CPU has, and whether INT8 runs by default on it.

ONNX Runtime's CPU INT8 convolutions multiply uint8 activations by int8 weights.  How
exact and how fast that is depends on the instruction set, so the choice is made per CPU,
once, at start:

- **VNNI** (x86 ``avx512_vnni`` or ``avx_vnni``): ``VPDPBUSD`` adds u8 x s8 products
  straight into int32 — exact, and about 2-3x the float rate.  INT8 with 8-bit weights.
- **ARM dot product** (``asimddp``; Jetson Orin / Xavier, Apple M, Graviton 2+): ``UDOT``
  / ``SDOT`` accumulate in int32 — exact.  INT8 with 8-bit weights.
- **AVX2 without VNNI** (many AMD EPYC / Ryzen before Zen 4, Intel before Ice Lake):
  ``VPMADDUBSW`` adds *two* u8 x s8 products into a saturating int16 (255 x 127 x 2 =
  64770 > 32767), so a sum can be clipped; ONNX Runtime documents this (``reduce_range``).
  INT8 is correct only with weights requantized to 7 bits (|q| <= 63,
  :func:`engines.int8.weights_to_7bit`), and whether it still pays was measured
  (:data:`AVX2_INT8_DEFAULT`).
- anything else: FP32 (no integer kernel known to pay).

The choice can be overridden with ``MCA_INT8`` (``auto``/``on``/``off``) and
``MCA_INT8_WEIGHT_BITS`` (``7``/``8``), or by the caller (``realtime.run --int8``).
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

__all__ = ["CpuFeatures", "Int8Plan", "cpu_features", "int8_plan", "parse_cpuinfo", "AVX2_INT8_DEFAULT",
           "ENV_INT8", "ENV_WEIGHT_BITS"]

ENV_INT8 = "MCA_INT8"
ENV_WEIGHT_BITS = "MCA_INT8_WEIGHT_BITS"

# Measured with ``python scripts/int8_cpu_check.py`` on an AMD EPYC with AVX2 and no VNNI (2 cores,
# ONNX Runtime 1.32, 1 thread, batches of 1, 4 and 8 crops; README "INT8 on this CPU"): the fused
# INT8 pose model ran at x0.96-1.01 the speed of FP32 (7- or 8-bit weights alike) and moved
# keypoints further from FP32 than nothing at all, so INT8 is not the default there.
AVX2_INT8_DEFAULT = False


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's integer dot-product support, as read from the OS."""

    arch: str  # "x86_64", "aarch64", ... (platform.machine(), lower case)
    vnni: bool = False  # avx512_vnni or avx_vnni
    avx2: bool = False
    arm_dot: bool = False  # asimddp
    model: str = ""

    @property
    def name(self) -> str:
        """The integer kernel family in words, for messages."""
        return {"vnni": "VNNI", "arm-dot": "ARM dot product", "avx2": "AVX2 without VNNI",
                "none": "no known integer dot product"}[self.kernel]

    @property
    def kernel(self) -> str:
        """``vnni``, ``arm-dot``, ``avx2`` or ``none``: the integer kernel family ONNX Runtime will use."""
        if self.vnni:
            return "vnni"
        if self.arm_dot:
            return "arm-dot"
        if self.avx2:
            return "avx2"
        return "none"


@dataclass(frozen=True)
class Int8Plan:
    """Whether to run INT8 (when an INT8 file exists) and with which weights; ``reason`` goes in the summary."""

    int8: bool
    weight_bits: int  # 7 or 8: what engines.int8.prepare_for_cpu requantizes to
    kernel: str  # CpuFeatures.kernel
    reason: str
    cpu: str = ""  # CpuFeatures.name
    forced: bool = False  # chosen by --int8 / MCA_INT8 (on or off), not by the rule: per-model exceptions do not apply

    def describe(self) -> str:
        """One phrase for the run's summary line."""
        what = f"INT8 ({self.weight_bits}-bit weights)" if self.int8 else "FP32"
        return f"{what}: {self.reason}"


def parse_cpuinfo(text: str, arch: str) -> CpuFeatures:
    """Features from the text of Linux's ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features`` lines)."""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            flags.update(value.split())
        elif key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
    arch = arch.lower()
    return CpuFeatures(arch=arch, vnni=bool(flags & {"avx512_vnni", "avx_vnni"}), avx2="avx2" in flags,
                       arm_dot="asimddp" in flags, model=model)


def cpu_features(cpuinfo: str | os.PathLike | None = "/proc/cpuinfo", arch: str | None = None) -> CpuFeatures:
    """This machine's features: ``/proc/cpuinfo`` on Linux; macOS on Apple silicon has the dot product.

    Where nothing can be read (Windows, a container without /proc), x86 counts as plain
    AVX2-less x86 and so runs FP32 unless overridden: a wrong "yes" would give clipped sums.
    """
    arch = (arch or platform.machine() or "unknown").lower()
    if cpuinfo is not None:
        try:
            return parse_cpuinfo(Path(cpuinfo).read_text(errors="replace"), arch)
        except OSError:
            pass
    if platform.system() == "Darwin" and arch in ("arm64", "aarch64"):
        return CpuFeatures(arch=arch, arm_dot=True, model="Apple silicon")
    return CpuFeatures(arch=arch)


def _env_bits(env: Mapping[str, str]) -> int | None:
    v = env.get(ENV_WEIGHT_BITS, "").strip()
    if not v:
        return None
    if v not in ("7", "8"):
        raise ValueError(f"{ENV_WEIGHT_BITS} must be 7 or 8, got {v!r}")
    return int(v)


def _mode(value: str | None, source: str) -> str:
    v = (value or "auto").strip().lower()
    v = {"1": "on", "true": "on", "yes": "on", "int8": "on", "0": "off", "false": "off", "no": "off",
         "fp32": "off", "": "auto"}.get(v, v)
    if v not in ("auto", "on", "off"):
        raise ValueError(f"{source} must be auto, on or off, got {value!r}")
    return v


def int8_plan(features: CpuFeatures | None = None, mode: str | None = None,
              env: Mapping[str, str] | None = None) -> Int8Plan:
    """The decision for this CPU: INT8 or FP32, and 7- or 8-bit weights.

    The rule: INT8 by default where the integer kernels are exact and faster (VNNI, ARM
    dot product); on AVX2 without VNNI only with 7-bit weights (8-bit sums saturate) and
    only because it was measured faster at the same accuracy (:data:`AVX2_INT8_DEFAULT`);
    FP32 elsewhere.  ``mode`` (the caller's flag) wins over ``MCA_INT8``, which wins over
    the rule; ``MCA_INT8_WEIGHT_BITS`` forces the weight width (e.g. 8 on AVX2 to see the
    saturation).  Raises ``ValueError`` for a value that is none of these.
    """
    env = os.environ if env is None else env
    f = features or cpu_features()
    flag = _mode(mode, "--int8") if mode is not None else "auto"
    from_env = _mode(env.get(ENV_INT8), ENV_INT8)
    chosen, by = (flag, "--int8") if flag != "auto" else (from_env, ENV_INT8)
    saturates = f.kernel not in ("vnni", "arm-dot")  # no exact u8 x s8 int32 dot product known
    bits = _env_bits(env) or (7 if saturates else 8)
    cpu = f.name
    if chosen == "on":
        return Int8Plan(True, bits, f.kernel, f"{by}=on ({cpu})", cpu, forced=True)
    if chosen == "off":
        return Int8Plan(False, bits, f.kernel, f"{by}=off ({cpu})", cpu, forced=True)
    if f.kernel in ("vnni", "arm-dot"):
        return Int8Plan(True, bits, f.kernel, f"{cpu}: exact int32 dot products", cpu)
    if f.kernel == "avx2":
        if AVX2_INT8_DEFAULT:
            return Int8Plan(True, bits, f.kernel, f"{cpu}: 7-bit weights avoid the int16 saturation, measured faster",
                            cpu)
        return Int8Plan(False, bits, f.kernel, f"{cpu}: INT8 measured no faster than FP32 (--int8 on to try it)",
                        cpu)
    return Int8Plan(False, bits, f.kernel, cpu, cpu)
