"""CI check 1 (issue #13): this project's CRFAttention registration through NVIDIA's own ``tensorrt.plugin``.

NVIDIA's pure-Python ``plugin/`` package comes from the PyPI bindings wheels (10.9, 10.13, 11.4; CUDA 12 and 13);
only the compiled ``tensorrt`` module is replaced by a minimal stand-in (``trt_standin.py``).  NVIDIA's validators
(``register``, ``aot_impl``) run on our decorated functions, then the creator -> plugin -> launch-parameter path the
builder takes, with TensorDescs of a dynamic batch and of batch 1 and 16, FP16 and FP32.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines.plugins.conftest import BINDINGS

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("qdp_driver.py")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                reason="triton is not installed (the aot_impl compiles the kernel with it)")

# mca_tiny's attention (64 channels, 32x32 maps, L=5, 3 iterations); batch None = the profile's dynamic batch.
TINY = {"c": 64, "h": 32, "w": 32, "L": 5, "iterations": 3}
CASES = [{**TINY, "batch": b, "dtype": d, "arch": 87, "ptx": 85} for d in ("fp16", "fp32") for b in (None, 1, 16)]


def _drive(package: Path, version: str, cases: list[dict], mode: str = "") -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRITON_INTERPRET", None)
    r = subprocess.run([sys.executable, str(DRIVER), str(package), version, json.dumps(cases), mode],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("cuda,version", BINDINGS, ids=[f"{c}-{v}" for c, v in BINDINGS])
def test_plugin_passes_nvidia_validators_and_aot_path(nvidia_plugin_package, cuda, version) -> None:
    from engines.plugins.crf_attention import compile_kernel, tile_plan

    package = nvidia_plugin_package(cuda, version)
    head, *rows = _drive(package, version, CASES)
    assert "register_error" not in head, head.get("trace", head)
    assert head["registered"] is True and head["again"] is True  # idempotent: the second call is a no-op
    assert head["trtp_file"].startswith(str(package))  # NVIDIA's package ran, not something installed
    assert len(rows) == len(CASES)
    plan = tile_plan(TINY["c"], TINY["h"], TINY["w"], TINY["L"], TINY["iterations"])
    for row in rows:
        assert "error" not in row, row.get("trace", row)
        case = row["case"]
        b = "batch" if case["batch"] is None else case["batch"]
        k = compile_kernel(case["c"], case["h"], case["w"], case["L"], case["iterations"], case["dtype"], 87, 85)
        want_type = "HALF" if case["dtype"] == "fp16" else "FLOAT"
        assert row["out_types"] == [want_type, want_type]
        assert row["out_shapes"] == [[b, 64, 32, 32], [b, 1, 32, 32]]
        assert row["formats"] == ["LINEAR"] * 7
        assert (row["grid_x"], row["grid_y"], row["grid_z"]) == (b, plan.tiles, 1)  # batch x spatial tiles
        assert (row["block_x"], row["block_y"], row["block_z"]) == (k.block_x, 1, 1)
        assert row["reqntid"] == row["block_x"]  # the launch block is what the PTX demands
        assert row["shared_mem"] == k.shared_mem and row["extra_args"] == 0
        assert row["ptx_params"] == 7  # 5 inputs, no extra scalars, 2 outputs
        assert row["ptx_version"] == "8.5" and row["ptx_target"] == "sm_87"


def test_a_signature_the_validator_rejects_raises(nvidia_plugin_package) -> None:
    """Row 18: a real validation error must surface, not be taken for 'already registered'."""
    package = nvidia_plugin_package("cu12", "11.4.0.106")
    (head,) = _drive(package, "11.4.0.106", CASES[:1], "bad-annotation")
    assert "register_error" in head and "ValueError" in head["register_error"]
    assert "not a supported serializable type" in head["register_error"]


@pytest.mark.parametrize("version,ok", [("10.3.0", False), ("10.7.0", False), ("10.8.0.43", False),
                                        ("10.9.0.34", True), ("11.4.0.106", True)])
def test_plugin_support_gate(version, ok) -> None:
    from engines.plugins.qdp import plugin_support

    why = plugin_support(version)
    assert (why is None) == ok
    if not ok:
        assert "10.9" in why
