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
