"""``python -m realtime.bench.chain``: argument errors, the interleaved timer, the TensorRT rows' reason."""

from __future__ import annotations

import pytest

from realtime.bench import chain as bench


def test_bad_arguments_are_one_line_errors(capsys, tmp_path) -> None:
    assert bench.main(["--reps", "0"]) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert bench.main(["--pose", str(tmp_path / "missing.onnx")]) == 2
    assert "model not found" in capsys.readouterr().err


def test_time_interleaved_runs_each_function_reps_plus_warmup() -> None:
    calls = {"a": 0, "b": 0}

    def bump(k):
        return lambda: calls.__setitem__(k, calls[k] + 1)

    out = bench.time_interleaved({"a": bump("a"), "b": bump("b")}, reps=4)
    assert calls == {"a": 5, "b": 5} and set(out) == {"a", "b"} and all(v >= 0 for v in out.values())


def test_trt_rows_say_why_they_are_skipped() -> None:
    why = bench.trt_chain_status()
    assert why is None or why.startswith(("TensorRT is not installed", "no CUDA device", "TrtBackend has no run_device"))


@pytest.mark.bench
def test_bench_runs_one_small_row(tmp_path) -> None:
    pytest.importorskip("onnx")
    assert bench.main(["--sizes", "720p", "--people", "1", "--reps", "1", "--threads", "1",
                       "--cache", str(tmp_path), "--out", str(tmp_path / "b.md")]) == 0
    assert "| 720p | 1 |" in (tmp_path / "b.md").read_text()


def test_trt_section_is_one_skip_line_with_the_reason_here(monkeypatch) -> None:
    monkeypatch.setattr(bench, "trt_chain_status", lambda: "TensorRT is not installed")
    text = bench.chain_markdown(bench.Path("d.onnx"), bench.Path("p.onnx"), ["720p", "1080p"], [1, 4, 16], 3)
    assert text == ("TensorRT chain rows (end-to-end and per-stage GPU ms, 720p/1080p x 1/4/16 people): skipped: "
                    "TensorRT is not installed")


def test_trt_rows_on_the_fake_gpu(monkeypatch, tmp_path) -> None:
    """The TensorRT rows' code path (chain on device arrays, CUDA-event stage times, the pose engine alone,
    the goal lines) runs end to end on the fake CUDA runtime + fake TensorRT; the numbers are the fake's."""
    pytest.importorskip("onnx")
    from realtime.models import bundled_path
    from tests.engines.fake_gpu import install

    install(monkeypatch)
    assert bench.trt_chain_status() is None
    det, pose = bundled_path("yolo_synth"), bundled_path("mca_tiny_synth")
    res = bench.trt_chain_rows(det, pose, ["720p"], [4], reps=1, batches=(1, 2), cache=tmp_path)
    (row,) = res["e2e"]
    assert row["size"] == "720p" and row["people"] == 4 and row["found"] >= 1 and row["fps"] > 0
    st = row["stage_ms"]
    assert all(st[k] > 0 for k in ("upload", "detector", "nms + maps up", "crop", "pose", "peaks down"))
    assert st["total"] == pytest.approx(sum(v for k, v in st.items() if k != "total"))
    assert [m["batch"] for m in res["model"]] == [1, 2] and all(m["crops_per_s"] > 0 for m in res["model"])
    text = bench.trt_chain_table(res)
    assert "| 720p | 4 (" in text and "| 1 |" in text
    assert "not the goal's model (this run: mca_tiny fp16" in text  # the goal is about mca_paper
    assert "frames/s model-side (pose engine runs/s at batch 1" in text
    res["pose"] = "mca_paper"
    res["e2e"][0]["fps"] = 29.0
    assert "measured 29.0 frames/s (720p) -> missed" in bench.trt_chain_table(res)
