"""Model resolution (paths, bundled names, defaults), loading, and the async hook."""

from __future__ import annotations

import numpy as np
import pytest

import realtime.models as M
from realtime.models import BUNDLED, ModelError, load_model, resolve_model, submit


@pytest.fixture()
def fake_models_dir(tmp_path, monkeypatch):
    """A models folder holding only the bundled pose file."""
    monkeypatch.setattr(M, "MODELS_DIR", tmp_path)
    (tmp_path / BUNDLED["mca_tiny_synth"].filename).write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("spec,role,demo,expect", [
    (None, "pose", True, "pose_mca_tiny_synth.onnx"),
    ("mca_tiny_synth", "pose", False, "pose_mca_tiny_synth.onnx"),
    ("pose_mca_tiny_synth", "pose", False, "pose_mca_tiny_synth.onnx"),  # the file's stem works too
    ("pose_mca_tiny_synth.onnx", "pose", False, "pose_mca_tiny_synth.onnx"),
    ("mca_tiny_real", "pose", False, "pose_mca_tiny_real.onnx"),
    ("pose_mca_tiny_real", "pose", False, "pose_mca_tiny_real.onnx"),
])
def test_resolve_bundled(fake_models_dir, spec, role, demo, expect) -> None:
    (fake_models_dir / BUNDLED["mca_tiny_real"].filename).write_bytes(b"x")
    assert resolve_model(spec, role, demo) == fake_models_dir / expect


@pytest.mark.parametrize("spec,role,demo,match", [
    (None, "detector", True, r"bundled detector model yolo_synth is missing: .*person_yolo_synth.onnx "
                             r"\(make it with scripts/train_demo_detector.py"),
    (None, "detector", False, r"ssdlite is missing: .*person_ssdlite.onnx \(make it with tools/convert_ssdlite.py"),
    ("ssdlite", "pose", False, "ssdlite is a bundled detector model, not a pose model"),
    ("mca_tiny_real", "pose", False, r"mca_tiny_real is missing: .*pose_mca_tiny_real.onnx \(make it with "
                                     r"scripts/train_real_pose.sh"),
    ("nope/model.onnx", "pose", False, "pose model not found: nope/model.onnx"),
    ("mca_paper", "pose", False, "network config without bundled weights; export one with 'python -m engines"),
    ("frobnicate", "detector", False, r"neither a file nor a bundled name \(yolo_synth, yolo_real, ssdlite\)"),
])
def test_resolve_errors_say_what_to_do(fake_models_dir, spec, role, demo, match) -> None:
    with pytest.raises(ModelError, match=match):
        resolve_model(spec, role, demo)


def test_existing_path_wins_over_names(tmp_path, monkeypatch) -> None:
    f = tmp_path / "ssdlite"
    f.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("ssdlite", "pose") == f.relative_to(tmp_path)


@pytest.mark.parametrize("bad", [b"", b"not an onnx file at all"])
def test_unloadable_file_is_a_model_error(tmp_path, bad) -> None:
    f = tmp_path / "bad.onnx"
    f.write_bytes(bad)
    with pytest.raises(ModelError):
        load_model(f, backend="ort")


class _AsyncBackend:
    """Records enqueue/collect order, like a GPU backend with its own stream."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def run_async(self, x: np.ndarray):
        self.events.append(f"enqueue {len(x)}")
        outer = self

        class _Pending:
            def result(self) -> list[np.ndarray]:
                outer.events.append(f"collect {len(x)}")
                return [x * 2]

        return _Pending()

    def run(self, x: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - must not be used
        raise AssertionError("run() called although run_async exists")


class _SyncBackend:
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return [x + 1]


def test_submit_uses_run_async_when_a_backend_has_it() -> None:
    b = _AsyncBackend()
    pending = [submit(b, np.ones(n)) for n in (2, 3)]
    assert b.events == ["enqueue 2", "enqueue 3"]  # both queued before anything is collected
    assert [p.result()[0].sum() for p in pending] == [4, 6]
    assert b.events[2:] == ["collect 2", "collect 3"]
    assert submit(_SyncBackend(), np.zeros(2)).result()[0].tolist() == [1, 1]
