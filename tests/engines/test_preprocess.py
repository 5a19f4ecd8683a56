"""The pre-processing graphs against OpenCV: the crop equals cv2.warpAffine, the letterbox equals
realtime.detectors' cv2.resize-based pre-processing, boxes map back with today's arithmetic.

The graphs are built to be bit-exact (OpenCV's fixed-point maps and taps); the acceptance asks
for one grey level, and the tests assert equality because the chain's keypoints depend on it.
Real frames come from ../shared (skipped where it is absent); synthetic frames always run.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the graph builders need the 'onnx' package")
ort = pytest.importorskip("onnxruntime")

from engines.base import ModelError  # noqa: E402
from engines.preprocess import (InputFormat, crop_graph, crop_maps, frame_prologue, resize_params,  # noqa: E402
                                with_prologue)
from mca import heatmaps as H  # noqa: E402
from realtime.detectors import _ssd_pre, _yolo_pre, letterbox  # noqa: E402
from realtime.models import bundled_path  # noqa: E402
from tests.realtime.conftest import shared_data_dir  # noqa: E402

DATA = shared_data_dir()
PHOTOS = sorted((DATA / "real-people").glob("*.jpg"))
VTEST = DATA / "real-video" / "vtest.avi"


def _session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _synthetic_frame(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """Noise plus hard edges (the worst case for interpolation rounding)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 3: h // 2] = 255
    img[:, w // 4: w // 4 + 3] = 0
    return img


def _matrices(frame_hw: tuple[int, int], n: int = 12, seed: int = 0, size: int = 64) -> np.ndarray:
    """Frame -> crop matrices: upright, rotated, mirrored, partly and wholly outside, tiny and huge."""
    h, w = frame_hw
    rng = np.random.default_rng(seed)
    mats = []
    for i in range(n):
        c = rng.uniform([-0.2 * w, -0.2 * h], [1.2 * w, 1.2 * h]) if i % 4 == 3 else rng.uniform([0, 0], [w, h])
        side = rng.uniform(8, 1.5 * max(w, h))
        rot = 0.0 if i % 3 == 0 else rng.uniform(-180, 180)
        mats.append(H.crop_matrix(c, (side, side * rng.uniform(0.7, 1.3)), (size, size), rot, flip=i % 2 == 1))
    mats.append(H.crop_matrix((w / 2, h / 2), (w, h), (size, size)))  # integer-aligned scales
    mats.append(H.crop_matrix((-5 * w, -5 * h), (10, 10), (size, size)))  # nowhere near the frame
    return np.stack(mats)


def _warp(img: np.ndarray, mats: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.warpAffine(img, m, wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=0) for m in mats])


def _crop(img: np.ndarray, mats: np.ndarray, wh: tuple[int, int], **kw) -> np.ndarray:
    rows, cols = crop_maps(mats, wh)
    s = _session(crop_graph(img.shape[:2], wh, **kw))
    return s.run(None, {"frame": img, "map_rows": rows, "map_cols": cols})[0]


def _assert_crop_matches(img: np.ndarray, mats: np.ndarray, wh: tuple[int, int], **kw) -> None:
    got, want = _crop(img, mats, wh, **kw), _warp(img, mats, wh)
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want)
    assert diff.max() <= 1, f"graph crop off by {diff.max()} grey levels from cv2.warpAffine"
    assert (diff == 0).all(), f"{int((diff > 0).sum())} values differ from cv2.warpAffine by one level"


@pytest.mark.parametrize("gather_uint8", [False, True])
def test_crop_graph_equals_warpaffine_on_synthetic_frames(gather_uint8: bool) -> None:
    img = _synthetic_frame()
    _assert_crop_matches(img, _matrices(img.shape[:2]), (64, 64), gather_uint8=gather_uint8)


def test_crop_graph_non_square_output_and_float_output() -> None:
    img = _synthetic_frame(97, 131, seed=3)
    mats = _matrices(img.shape[:2], n=5, size=48)
    mats[:, 1] *= 40 / 48  # crops 48 wide, 40 high
    got = _crop(img, mats, (48, 40), output_dtype="float32")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _warp(img, mats, (48, 40)).astype(np.float32))


def test_crop_graph_one_person_and_pipeline_geometry() -> None:
    img = _synthetic_frame(seed=5)
    t = H.CropTransform.from_box([30.2, 10.7, 90.9, 200.3], (128, 128), (32, 32))
    got = _crop(img, t.frame_to_input[None], (128, 128))
    np.testing.assert_array_equal(got[0], H.warp_crop(img, t))


def test_crop_maps_reject_maps_beyond_float32() -> None:
    with pytest.raises(ModelError, match="16384"):
        crop_maps(H.crop_matrix((1e6, 0), (10, 10), (64, 64))[None], (64, 64))


@pytest.mark.skipif(not PHOTOS, reason="../shared/data/real-people is absent (only the project's machines have it)")
def test_crop_graph_equals_warpaffine_on_real_photos() -> None:
    for i, p in enumerate(PHOTOS[:3]):
        img = cv2.imread(str(p))
        _assert_crop_matches(img, _matrices(img.shape[:2], n=10, seed=i, size=128), (128, 128), gather_uint8=True)


@pytest.mark.skipif(not VTEST.exists(), reason="../shared/data/real-video/vtest.avi is absent")
def test_crop_graph_equals_warpaffine_on_vtest_frames() -> None:
    cap = cv2.VideoCapture(str(VTEST))
    for i in range(3):
        for _ in range(50):
            ok, img = cap.read()
        assert ok
        _assert_crop_matches(img, _matrices(img.shape[:2], n=10, seed=10 + i, size=128), (128, 128))


# ----------------------------------------------------------------------------- letterbox
YOLO = InputFormat(320)
SSD = InputFormat(300, layout="NHWC", dtype="uint8", letterbox=False)
SIZES = [(720, 1280), (1080, 1920), (576, 768), (721, 1279), (300, 301), (50, 30), (100, 640), (320, 320)]


def _prologue(fmt: InputFormat, img: np.ndarray, **kw) -> np.ndarray:
    m, _ = frame_prologue(fmt, img.shape[:2], output="out", **kw)
    return _session(m).run(None, {"frame": img})[0]


def _assert_prologue_matches(fmt: InputFormat, img: np.ndarray, **kw) -> None:
    got = _prologue(fmt, img, **kw)
    want, _ = (_yolo_pre if fmt.dtype == "float32" else _ssd_pre)(img, fmt.size)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = 255.0 if fmt.dtype == "float32" else 1.0
    diff = np.abs(got.astype(np.float64) - want) * scale
    assert diff.max() <= 1 + 1e-4, f"graph letterbox off by {diff.max():.2f} grey levels"
    np.testing.assert_array_equal(got, want, err_msg="graph letterbox differs from cv2.resize by one level")


@pytest.mark.parametrize("hw", SIZES, ids=[f"{w}x{h}" for h, w in SIZES])
@pytest.mark.parametrize("fmt", [YOLO, SSD], ids=["yolo", "ssd"])
def test_prologue_equals_todays_preprocessing_on_synthetic_frames(fmt: InputFormat, hw: tuple[int, int]) -> None:
    _assert_prologue_matches(fmt, _synthetic_frame(*hw, seed=hw[0]), gather_uint8=hw[0] % 2 == 0)


@pytest.mark.skipif(not PHOTOS or not VTEST.exists(), reason="../shared/data is absent (only the project's machines)")
@pytest.mark.parametrize("fmt", [YOLO, InputFormat(640), SSD], ids=["yolo320", "yolo640", "ssd"])
def test_prologue_equals_todays_preprocessing_on_real_frames(fmt: InputFormat) -> None:
    ok, frame = cv2.VideoCapture(str(VTEST)).read()
    assert ok
    for img in [frame] + [cv2.imread(str(p)) for p in PHOTOS[:2]]:
        _assert_prologue_matches(fmt, img)


@pytest.mark.parametrize("hw", SIZES + [(1, 1), (2000, 3), (333, 777)])
@pytest.mark.parametrize("size", [320, 640])
def test_resize_params_are_todays_letterbox(hw: tuple[int, int], size: int) -> None:
    h, w = hw
    _, s, pad = letterbox(np.zeros((h, w, 3), np.uint8), size)
    p = resize_params((w, h), size)
    assert (p.scale_x, p.scale_y, (p.pad_x, p.pad_y)) == (s, s, pad)
    boxes = np.array([[10.5, 20.25, 100.0, 300.75], [0, 0, size, size]], np.float32)
    np.testing.assert_array_equal(p.to_frame(boxes), (boxes - [pad[0], pad[1], pad[0], pad[1]]) / s)


def test_with_prologue_runs_the_bundled_detectors_on_the_frame() -> None:
    img = _synthetic_frame(360, 640, seed=7)
    for name, fmt, pre in (("yolo_synth", YOLO, _yolo_pre), ("ssdlite", SSD, _ssd_pre)):
        path = bundled_path(name)
        if not path.exists():
            pytest.skip(f"bundled detector {name} is missing")
        merged, params = with_prologue(str(path), fmt, img.shape[:2])
        meta = {p.key: p.value for p in merged.metadata_props}
        assert meta["mca.kind"] == "detector" and "mca.resize" in meta
        assert [i.name for i in merged.graph.input] == ["frame"]
        got = _session(merged).run(None, {"frame": img})
        x, _ = pre(img, fmt.size)
        want = _session(onnx.load(str(path))).run(None, {_session(onnx.load(str(path))).get_inputs()[0].name: x})
        for g, wv in zip(got, want):
            np.testing.assert_array_equal(g, wv)
        if fmt.letterbox:
            assert params == resize_params((640, 360), fmt.size)


def test_with_prologue_rejects_models_it_cannot_feed() -> None:
    from onnx import TensorProto, helper

    two = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    with pytest.raises(ModelError, match="one image input"):
        with_prologue(two, YOLO, (10, 10))
    old = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["a"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 320, 320])]),
        opset_imports=[helper.make_opsetid("", 11)])
    with pytest.raises(ModelError, match="opset 11"):
        with_prologue(old, YOLO, (10, 10))
    with pytest.raises(ModelError, match="unsupported"):
        InputFormat(320, layout="CHW")
