"""realtime.bench: the arithmetic of its report, its sources, and a small end-to-end run (timings never asserted)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from realtime.bench.stages import BenchRow, _ListSource, main, plot_fps
from realtime.run import DEFAULT_DEMO_DETECTOR, DEFAULT_POSE
from realtime.types import Frame

needs_models = pytest.mark.skipif(not (DEFAULT_POSE.exists() and DEFAULT_DEMO_DETECTOR.exists()),
                                  reason="the bundled demo models are not in this checkout")


@pytest.mark.parametrize("stage_ms,fps,slowest,eff", [
    ({"decode": 5.0, "detect": 25.0, "pose": 10.0}, 40.0, "detect", 1.0),
    ({"decode": 5.0, "detect": 25.0, "pose": 50.0}, 10.0, "pose", 0.5),
    ({"encode": 100.0}, 9.0, "encode", 0.9),
])
def test_efficiency_is_end_to_end_over_the_slowest_stage(stage_ms, fps, slowest, eff) -> None:
    r = BenchRow("720p", 1, "mca_tiny", "ort", 16, 0.37, stage_ms, fps)
    assert r.slowest[0] == slowest
    assert r.efficiency == pytest.approx(eff)


@pytest.mark.parametrize("n,total", [(3, 7), (5, 5), (4, 2)])
def test_list_source_cycles_frames_in_order(n, total) -> None:
    frames = [Frame(i, np.full((8, 8, 3), i, np.uint8)) for i in range(n)]
    seen: list[int] = []
    got = list(_ListSource(frames, total, on_frame=seen.append).frames())
    assert [f.index for f in got] == list(range(total)) == seen
    assert [int(f.image[0, 0, 0]) for f in got] == [i % n for i in range(total)]


def test_plot_has_one_line_per_series(tmp_path) -> None:
    rows = [BenchRow("720p", p, "m", b, 16, 0.1, {"pose": 1.0}, fps) for b, k in (("ort", 1.0), ("torch", 0.5))
            for p, fps in ((1, 30 * k), (4, 15 * k), (16, 4 * k))]
    plot_fps(rows, tmp_path / "p.png")
    img = cv2.imread(str(tmp_path / "p.png"))
    assert img is not None and img.shape == (560, 900, 3)
    assert (img[:, :, 0] != img[:, :, 2]).sum() > 500  # coloured series lines, not just the black axes


@needs_models
def test_small_run_writes_report_plot_json_and_soak(tmp_path) -> None:
    out = tmp_path / "b.md"
    rc = main(["--sizes", "720p", "--people", "1", "2", "--frames", "3", "--backends", "ort", "--out", str(out),
               "--cache", str(tmp_path / "cache"), "--soak", "8"])
    assert rc == 0
    text = out.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| 720p")]
    assert len(rows) == 2 and "mca_tiny" in rows[0]
    assert "Machine:" in text and "matmul peak" in text and "RSS growth" in text
    assert "## GPU chain (TensorRT, issue 14)" in text and "TensorRT chain rows" in text  # rows, or skipped: why
    data = json.loads(out.with_suffix(".json").read_text())
    assert len(data["rows"]) == 2
    for r in data["rows"]:
        assert set(r["stage_ms"]) == {"decode", "detect", "crop", "pose", "heatmap decode", "track", "draw", "encode"}
        assert r["e2e_fps"] > 0 and r["efficiency"] > 0
    assert cv2.imread(str(out.with_suffix(".png"))) is not None


@pytest.mark.parametrize("argv,msg", [
    (["--pose", "/nonexistent/p.onnx"], "not found"),
    (["--pose", "no_such_config"], "neither an ONNX file nor a registered config"),
    (["--detector", "/nonexistent/d.onnx"], "not found"),
    (["--frames", "1"], "at least 2"),
])
def test_bad_input_is_one_line_exit_2(argv, msg, tmp_path, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "b.md"), "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and msg in err[0]


def test_ort_row_is_fp32_and_ort_int8_the_models_own_twin(tmp_path, monkeypatch) -> None:
    """On a VNNI CPU the INT8 rule swaps in NAME.int8.onnx: the bench's "ort" row must still be FP32, its
    "ort-int8" row the twin realtime.run would run (not a recalibrated copy)."""
    pytest.importorskip("onnx", reason="making the INT8 twin edits an ONNX graph")
    import engines.cpu as C
    from realtime.bench.stages import pose_backends
    from realtime.models import precision_note
    from tests.realtime.conftest import blob_pose_onnx
    from tests.realtime.test_int8_choice import _int8_twin

    monkeypatch.delenv("MCA_INT8", raising=False)
    monkeypatch.setattr(C, "cpu_features", lambda *a, **k: C.CpuFeatures(arch="x86_64", vnni=True, avx2=True))
    fp32 = blob_pose_onnx(tmp_path / "pose.onnx")
    twin = _int8_twin(fp32)
    b = pose_backends(["ort", "ort-int8"], fp32, None, tmp_path / "cache", threads=1)
    assert str(b["ort"].path) == str(fp32) and precision_note(b["ort"]).startswith("FP32")
    assert str(b["ort-int8"].path) == str(twin) and precision_note(b["ort-int8"]).startswith("INT8")
