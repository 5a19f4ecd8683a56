"""The chain check (what engines.selftest runs on a GPU) passes on ONNX Runtime and catches a wrong crop."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the chain check builds graphs with the 'onnx' package")

import engines.preprocess as P  # noqa: E402
from engines.chain_check import check_graphs  # noqa: E402


def test_chain_check_passes_on_onnx_runtime(tmp_path) -> None:
    res = check_graphs("ort", frame_hw=(144, 256), persons=4, crop=64, cache_dir=tmp_path)
    assert [r.ok for r in res] == [True, True, True], [r.line() for r in res]
    assert all(r.line().startswith("PASS  chain ") for r in res)


def test_chain_check_fails_on_a_crop_that_skips_opencvs_rounding(tmp_path, monkeypatch) -> None:
    real = P.crop_maps

    def unrounded(m, wh):  # OpenCV's rounding offset (half of 1/32 px) left out: truncates instead
        rows, cols = real(m, wh)
        return rows - np.float32(P.AB_SCALE // P.INTER_TAB // 2), cols

    monkeypatch.setattr(P, "crop_maps", unrounded)
    res = check_graphs("ort", frame_hw=(144, 256), persons=4, crop=64, cache_dir=tmp_path)
    assert not res[0].ok and "grey levels" in res[0].detail


def test_chain_check_reports_a_backend_that_cannot_run(tmp_path) -> None:
    res = check_graphs("nonexistent", frame_hw=(64, 64), persons=1, crop=32, cache_dir=tmp_path)
    assert len(res) == 1 and not res[0].ok and "backend" in res[0].detail
