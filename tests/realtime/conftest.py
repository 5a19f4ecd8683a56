"""Fixtures for the realtime tests: small hand-made ONNX models and generated videos.

The hand-made graphs (onnx.helper) output known tensors, so decode, NMS, letterbox
inversion and the crop geometry are checked against numbers worked out here; a
random-weight mca_tiny export (needs PyTorch, tests only) checks the real graph runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest


def shared_data_dir() -> Path:
    """The project's shared data folder: $MCA_SHARED/data if set, else ``shared/data`` beside the checkout.

    Only the project's machines have it; tests that need it skip with a stated reason elsewhere.
    """
    env = os.environ.get("MCA_SHARED")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared"
    return root / "data"


def constant_movenet_onnx(path: Path, out: np.ndarray, size: int | None = 64) -> Path:
    """A 'MoveNet' ONNX (int32 NHWC RGB input, ``size`` square or dynamic when None) whose output is ``out``."""
    from onnx import TensorProto, helper, numpy_helper

    out = np.asarray(out, np.float32)
    dims = [1, size, size, 3] if size else [1, "h", "w", 3]
    nodes = [helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f"], ["s"], keepdims=0),
             helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["raw", "z"], ["output_0"])]
    g = helper.make_graph(nodes, "fake_movenet", [helper.make_tensor_value_info("input", TensorProto.INT32, dims)],
                          [helper.make_tensor_value_info("output_0", TensorProto.FLOAT, list(out.shape))],
                          [numpy_helper.from_array(out, "raw"), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return _save(m, path, {"mca.kind": "peer_pose"})


def _save(model, path: Path, meta: dict[str, str]) -> Path:
    import onnx

    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_yolo_onnx(path: Path, boxes_cxcywh: list[tuple[float, float, float, float, float]], size: int = 64,
                       num_classes: int = 1, person_class: int | None = None, score_row: int = 4) -> Path:
    """A 'YOLO' ONNX whose output is fixed: (1, 4 + nc, A) with the given cx, cy, w, h and score in ``score_row``."""
    from onnx import TensorProto, helper, numpy_helper

    a = max(1, len(boxes_cxcywh))
    out = np.zeros((1, 4 + num_classes, a), np.float32)
    for i, (cx, cy, w, h, s) in enumerate(boxes_cxcywh):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, score_row, i] = s
    const = numpy_helper.from_array(out, "raw")
    # y = raw + 0 * sum(images): the output depends on the input, as a real detector's does.
    nodes = [helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
             helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["raw", "z"], ["output0"])]
    g = helper.make_graph(nodes, "fake_yolo",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))],
                          [const, numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"mca.kind": "detector", "mca.detector_family": "yolo", "mca.input_size": str(size)}
    if person_class is not None:
        meta["mca.person_class"] = str(person_class)
    return _save(m, path, meta)


def constant_ssd_onnx(path: Path, boxes_yxyx: list[tuple[float, float, float, float]], scores: list[float],
                      classes: list[float], size: int = 32, metadata: bool = True) -> Path:
    """A TF-API-style SSD ONNX (uint8 NHWC input, four named outputs) with fixed detections."""
    from onnx import TensorProto, helper, numpy_helper

    n = len(scores)
    consts = {"num_c": np.array([float(n)], np.float32), "scores_c": np.array([scores], np.float32),
              "boxes_c": np.array([boxes_yxyx], np.float32).reshape(1, n, 4),
              "classes_c": np.array([classes], np.float32)}
    nodes = [helper.make_node("Cast", ["image_tensor:0"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f"], ["s"], keepdims=0),
             helper.make_node("Mul", ["s", "zero"], ["z"])]
    outs = []
    # the order tf2onnx gives the bundled SSDLite: num, scores, boxes, classes
    for name, c in (("num_detections:0", "num_c"), ("detection_scores:0", "scores_c"),
                    ("detection_boxes:0", "boxes_c"), ("detection_classes:0", "classes_c")):
        nodes.append(helper.make_node("Add", [c, "z"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(consts[c].shape)))
    g = helper.make_graph(nodes, "fake_ssd",
                          [helper.make_tensor_value_info("image_tensor:0", TensorProto.UINT8, [1, size, size, 3])],
                          outs, [numpy_helper.from_array(v, k) for k, v in consts.items()]
                          + [numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    meta = {"mca.kind": "detector", "mca.detector_family": "ssd", "mca.input_size": str(size),
            "mca.person_class": "1"} if metadata else {}
    return _save(m, path, meta)


def blob_pose_onnx(path: Path, input_size: int = 64, attention: bool = True, joint_set: str = "mpii16") -> Path:
    """A pose 'model' whose every heatmap is the crop's brightness, 4x average-pooled.

    A bright blob drawn in a frame therefore decodes, for every joint, to the blob's
    position: the crop -> heatmap -> frame geometry is checked against a known answer.
    With ``attention`` the same map is also the holistic and part attention.
    """
    from onnx import TensorProto, helper, numpy_helper

    from mca.joints import get_joint_set

    js = get_joint_set(joint_set)
    k, s, h = js.num_joints, input_size, input_size // 4
    nodes = [helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMax", ["f"], ["g"], axes=[3], keepdims=1),  # opset 17: axes attribute
             helper.make_node("Transpose", ["g"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("AveragePool", ["t"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Mul", ["p", "inv255"], ["one"]),
             helper.make_node("Expand", ["one", "kshape"], ["heatmaps"])]
    outs = [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", k, h, h])]
    if attention:
        nodes += [helper.make_node("Identity", ["one"], ["holistic_attention"]),
                  helper.make_node("Expand", ["one", "kshape"], ["part_attention"])]
        outs += [helper.make_tensor_value_info("holistic_attention", TensorProto.FLOAT, ["batch", 1, h, h]),
                 helper.make_tensor_value_info("part_attention", TensorProto.FLOAT, ["batch", k, h, h])]
    g = helper.make_graph(nodes, "blob_pose",
                          [helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", s, s, 3])], outs,
                          [numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"),
                           numpy_helper.from_array(np.array([1, k, 1, 1], np.int64), "kshape")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"mca.kind": "pose", "mca.config": "blob_test", "mca.joint_set": js.name,
            "mca.joint_names": json.dumps(list(js.names)), "mca.flip_index": json.dumps(list(js.flip_index)),
            "mca.skeleton": json.dumps([list(e) for e in js.skeleton]), "mca.input_size": str(s),
            "mca.heatmap_size": str(h), "mca.input_layout": "NHWC", "mca.input_dtype": "uint8",
            "mca.input_channels": "BGR"}
    return _save(m, path, meta)


def blob_frame(size: tuple[int, int], centre: tuple[float, float], sigma: float = 5.0) -> np.ndarray:
    """A black BGR frame with one white Gaussian blob."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((255 * g).astype(np.uint8)[..., None], 3, axis=2)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264",
                pix_fmt: str | None = None) -> Path:
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = w, h
        s.pix_fmt = pix_fmt or {"libx264": "yuv420p", "ffv1": "yuv444p"}.get(codec, "yuvj420p")
        if codec == "libx264":
            s.options = {"preset": "ultrafast"}
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
