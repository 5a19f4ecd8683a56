"""Fixtures for the realtime tests: small models and generated videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def constant_yolo_onnx(path: Path, boxes_cxcywh: list[tuple[float, float, float, float, float]], size: int = 64,
                       num_classes: int = 1) -> Path:
    """A 'YOLO' ONNX whose output is fixed: (1, 4 + nc, A) with the given cx, cy, w, h, score rows."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a = max(1, len(boxes_cxcywh))
    out = np.zeros((1, 4 + num_classes, a), np.float32)
    for i, (cx, cy, w, h, s) in enumerate(boxes_cxcywh):
        out[0, :5, i] = (cx, cy, w, h, s)
    const = numpy_helper.from_array(out, "raw")
    # y = raw + 0 * sum(images): the output depends on the input, as a real detector's does.
    nodes = [helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
             helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["raw", "z"], ["output0"])]
    g = helper.make_graph(nodes, "fake_yolo", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))],
                          [const, numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"mca.kind": "detector", "mca.detector_family": "yolo", "mca.input_size": str(size)}.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264") -> Path:
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = w, h
        s.pix_fmt = {"libx264": "yuv420p", "ffv1": "yuv444p"}.get(codec, "yuvj420p")
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def synthetic_frames(n: int, size: tuple[int, int] = (320, 240), people: int = 2, seed: int = 0) -> list:
    from mca.data.synthetic import VideoRenderer

    v = VideoRenderer("mpii16", size, 10.0, people, seed, min_height=100, max_height=200, noise=False)
    return [s.image for s in v.frames(n)]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random-weight mca_tiny pose ONNX (with and without attention outputs) and a fixed-box detector."""
    torch = pytest.importorskip("torch", reason="making the test pose model needs PyTorch (the 'train' extra)")
    import mca
    from engines.export import ExportOptions, export_pose

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = mca.create_model("mca_tiny").eval()
    return {
        "pose": export_pose(model, root / "pose.onnx"),
        "pose_att": export_pose(model, root / "pose_att.onnx", ExportOptions(attention_outputs=True)),
        "detector": constant_yolo_onnx(root / "det.onnx", [(32, 32, 20, 40, 0.9), (33, 32, 20, 40, 0.8),
                                                            (10, 10, 8, 8, 0.1)]),
    }


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "people.mp4", synthetic_frames(24))
