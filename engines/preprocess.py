"""Frame pre-processing as ONNX graphs: the detector's letterbox and the person crops.

The same graph runs under ONNX Runtime (tested on the CPU) and TensorRT (a small
FP32 engine, or merged into the detector's), so on a GPU a frame is uploaded once and
everything up to the keypoints stays on the device (:mod:`realtime.chain`).

- :func:`frame_prologue`: a uint8 HWC **BGR** frame -> the detector's input: a resize
  **bit-exact** with ``cv2.resize(INTER_LINEAR)`` (OpenCV's 1/2048 integer taps, computed at
  build time, and its vectorised rounding, in int32 arithmetic: a graph ``Resize`` in float is
  within one grey level, and on real footage that one level flips heatmap maxima by whole
  heatmap pixels), letterbox padding, channel order, layout, dtype and scale.
  :func:`with_prologue` merges it in front of a detector.  The geometry (:class:`ResizeParams`)
  is the graph's build-time constant, computed by :func:`resize_params` with exactly the
  arithmetic of ``realtime.detectors.letterbox``, so boxes map back exactly as today.
- :func:`crop_graph` + :func:`crop_maps`: the frame + one affine per person -> the batch of
  pose inputs, **bit-exact** with ``cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT, 0)``.
  OpenCV does not interpolate at the exact source point: it rounds the inverse map to
  1/1024 px per row and per column (in double), sums, rounds to 1/32 px, and blends the
  four neighbours with integer weights.  :func:`crop_maps` computes those per-row and
  per-column tables on the host in float64 exactly as OpenCV does (2 x (W + H) numbers per
  person, from the 2x3 matrix); the graph adds them, splits integer pixel and 1/32 fraction,
  gathers the four neighbours (zero outside the frame) and blends and rounds in integer-valued
  float32 arithmetic, which is exact.  ``GridSample`` was the alternative: it needs the frame
  expanded to the batch, NCHW float, and interpolates at the exact point, which differs from
  OpenCV by up to ``gradient / 64`` grey levels (several levels at sharp edges).

Graphs are static in the frame size (one engine per resolution; TensorRT wants it so) and
dynamic only in the number of people.  Operators used (all in TensorRT's ONNX parser, opset
13-17): Cast, Unsqueeze, Squeeze, Transpose, Reshape, Pad (constant), Gather (constant or int32
indices), Split, Add, Sub, Mul, Div (int32, non-negative operands only), Floor, Clip (constant
bounds), Equal.  No Resize, GridSample or data-dependent shapes.
The crop graph must stay FP32 (its integer-valued sums reach 2^18; never convert it to FP16).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import ModelError
from engines.graphbuild import GraphBuilder, require_onnx

log = logging.getLogger(__name__)

__all__ = ["InputFormat", "ResizeParams", "resize_params", "resize_taps", "frame_prologue", "with_prologue", "crop_maps",
           "crop_graph", "save_graph", "graph_cache_dir", "FRAME", "MAP_ROWS", "MAP_COLS", "CROPS"]

FRAME, MAP_ROWS, MAP_COLS, CROPS = "frame", "map_rows", "map_cols", "crops"
_FLOAT, _UINT8, _INT32, _INT64 = 1, 2, 6, 7  # onnx.TensorProto element types
AB_SCALE, INTER_TAB = 1024, 32  # OpenCV's warpAffine fixed point: maps in 1/1024 px, sampling at 1/32 px
RESIZE_ONE = 2048  # OpenCV's resize weights: 1/2048 (INTER_RESIZE_COEF_BITS = 11)
_MAX_MAP = 2 ** 24  # float32 holds every integer below this: the maps' sums must stay under it


@dataclass(frozen=True)
class InputFormat:
    """What a detector wants as input; the prologue turns a BGR uint8 frame into it."""

    size: int
    layout: str = "NCHW"  # or "NHWC"
    dtype: str = "float32"  # or "uint8"
    channels: str = "RGB"  # or "BGR"
    scale: float = 1.0 / 255.0  # multiplies float outputs
    letterbox: bool = True  # keep the aspect and pad with ``fill``; False stretches to size x size
    fill: int = 114

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC") or self.dtype not in ("float32", "uint8") \
                or self.channels not in ("RGB", "BGR") or self.size < 1:
            raise ModelError(f"unsupported detector input format {self}")


@dataclass(frozen=True)
class ResizeParams:
    """Where the frame lands on the detector's canvas: canvas = frame * scale + pad (pixel corners)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    new_w: int
    new_h: int
    size: int

    def to_frame(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Canvas boxes back to frame pixels (the inverse of the letterbox)."""
        b = np.asarray(boxes_xyxy, np.float64)
        return (b - [self.pad_x, self.pad_y, self.pad_x, self.pad_y]) / [self.scale_x, self.scale_y, self.scale_x, self.scale_y]

    def json(self) -> str:
        return json.dumps(asdict(self))


def resize_params(frame_wh: tuple[int, int], size: int, letterbox: bool = True) -> ResizeParams:
    """The canvas geometry for a frame: the arithmetic of ``realtime.detectors.letterbox`` (letterbox)
    or a plain stretch to size x size (what the SSD family's pre-processing does)."""
    w, h = (int(v) for v in frame_wh)
    if w < 1 or h < 1:
        raise ModelError(f"frame size must be positive, got {w}x{h}")
    if not letterbox:
        return ResizeParams(size / w, size / h, 0.0, 0.0, size, size, size)
    s = min(size / w, size / h)
    nw, nh = min(size, max(1, int(round(w * s)))), min(size, max(1, int(round(h * s))))
    x0, y0 = int(round((size - nw) / 2 - 0.1)), int(round((size - nh) / 2 - 0.1))
    return ResizeParams(s, s, float(x0), float(y0), nw, nh, size)


def resize_taps(src: int, dst: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's bilinear taps along one axis for ``src`` -> ``dst`` pixels: (first index, second index,
    first weight, second weight), weights in 1/2048 (``INTER_RESIZE_COEF_BITS``).

    The sample point of output pixel ``i`` is ``(i + 0.5) * src / dst - 0.5`` in float32; along x a point
    left of the first (right of the last) pixel is clamped to it with weight 0 (``clamp``); along y the
    weights are kept and the row indices clamped, exactly as ``cv2.resize`` does.
    """
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i = np.floor(f)
    f = (f - i).astype(np.float32)
    i = i.astype(np.int64)
    if clamp:
        lo, hi = i < 0, i >= src - 1
        f[lo | hi] = 0
        i[lo], i[hi] = 0, src - 1
    w1 = np.rint(np.float32(RESIZE_ONE) * f)
    w0 = np.rint(np.float32(RESIZE_ONE) * (np.float32(1) - f))
    return np.clip(i, 0, src - 1), np.clip(i + 1, 0, src - 1), w0.astype(np.int32), w1.astype(np.int32)


def _resize_int(b: GraphBuilder, frame: str, frame_hw: tuple[int, int], new_wh: tuple[int, int],
                gather_uint8: bool) -> str:
    """``cv2.resize(frame, new_wh, interpolation=INTER_LINEAR)`` on uint8, in int32 arithmetic: the taps of
    :func:`resize_taps`, a horizontal pass in 1/2048 units, then OpenCV's vectorised vertical pass
    ``((((S0 >> 4) * b0) >> 16) + (((S1 >> 4) * b1) >> 16) + 2) >> 2`` (all values are non-negative,
    so integer division is the shift).  Output: (h', w', 3) int32 grey levels."""
    (h, w), (nw, nh) = frame_hw, new_wh
    x0, x1, a0, a1 = resize_taps(w, nw, clamp=True)
    y0, y1, b0, b1 = resize_taps(h, nh, clamp=False)
    src = frame if gather_uint8 else b.op("Cast", frame, to=_INT32)

    def rows(idx: np.ndarray) -> str:
        r = b.op("Gather", src, b.const(idx, np.int64), axis=0)  # (h', W, 3)
        r = b.op("Cast", r, to=_INT32) if gather_uint8 else r
        return b.op("Add", b.op("Mul", b.op("Gather", r, b.const(x0, np.int64), axis=1), b.const(a0.reshape(1, -1, 1), np.int32)),
                    b.op("Mul", b.op("Gather", r, b.const(x1, np.int64), axis=1), b.const(a1.reshape(1, -1, 1), np.int32)))

    def vertical(s: str, beta: np.ndarray) -> str:
        t = b.op("Div", s, b.const(np.int32(16), np.int32))
        return b.op("Div", b.op("Mul", t, b.const(beta.reshape(-1, 1, 1), np.int32)), b.const(np.int32(65536), np.int32))

    v = b.op("Add", b.op("Add", vertical(rows(y0), b0), vertical(rows(y1), b1)), b.const(np.int32(2), np.int32))
    return b.op("Div", v, b.const(np.int32(4), np.int32))


def frame_prologue(fmt: InputFormat, frame_hw: tuple[int, int], output: str = "pre/out", opset: int = 17,
                   ir_version: int | None = None, gather_uint8: bool = False) -> tuple[Any, ResizeParams]:
    """The graph ``frame`` (H, W, 3) uint8 BGR -> ``output`` in ``fmt``, and its geometry.

    The resize is bit-exact with ``cv2.resize(INTER_LINEAR)`` (:func:`_resize_int`; one grey level of
    difference flips heatmap maxima on real footage, so "close" is not enough); then letterbox padding,
    channel order, layout, dtype and scale as ``realtime.detectors`` makes them.  ``gather_uint8`` gathers
    the rows from the uint8 frame before casting (ONNX Runtime only; TensorRT gathers int32).
    """
    from onnx import helper

    h, w = (int(v) for v in frame_hw)
    p = resize_params((w, h), fmt.size, fmt.letterbox)
    b = GraphBuilder("pre/")
    if (p.new_h, p.new_w) != (h, w):
        x = _resize_int(b, FRAME, (h, w), (p.new_w, p.new_h), gather_uint8)
    else:
        x = b.op("Cast", FRAME, to=_INT32)
    if fmt.channels == "RGB":
        x = b.op("Gather", x, b.const([2, 1, 0], np.int64), axis=2)
    if fmt.letterbox and (p.new_w, p.new_h) != (fmt.size, fmt.size):
        x0, y0 = int(p.pad_x), int(p.pad_y)
        pads = [y0, x0, 0, fmt.size - p.new_h - y0, fmt.size - p.new_w - x0, 0]
        x = b.op("Pad", x, b.const(pads, np.int64), b.const(np.int32(fmt.fill), np.int32), mode="constant")
    if fmt.layout == "NCHW":
        x = b.op("Transpose", x, perm=[2, 0, 1])
    x = b.op("Unsqueeze", x, b.const([0], np.int64))
    if fmt.dtype == "uint8":
        x = b.op("Cast", x, to=_UINT8)
    else:
        x = b.op("Cast", x, to=_FLOAT)
        if fmt.scale != 1.0:
            x = b.op("Mul", x, b.const(fmt.scale))
    b.op("Identity", x, out=output)
    shape = [1, 3, fmt.size, fmt.size] if fmt.layout == "NCHW" else [1, fmt.size, fmt.size, 3]
    model = b.model([helper.make_tensor_value_info(FRAME, _UINT8, [h, w, 3])],
                    [helper.make_tensor_value_info(output, _FLOAT if fmt.dtype == "float32" else _UINT8, shape)],
                    opset=opset, ir_version=ir_version, name="frame_prologue",
                    metadata={"mca.kind": "prologue", "mca.resize": p.json()})
    return model, p


def _default_opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


def with_prologue(model: Any, fmt: InputFormat, frame_hw: tuple[int, int],
                  gather_uint8: bool = False) -> tuple[Any, ResizeParams]:
    """``model`` (a detector: path or ModelProto, one image input) with :func:`frame_prologue` merged in
    front: its input becomes ``frame`` (H, W, 3) uint8 BGR; metadata is kept, plus ``mca.resize``."""
    onnx = require_onnx()
    from onnx import compose

    m = onnx.load(str(model)) if isinstance(model, (str, os.PathLike)) else model
    if len(m.graph.input) != 1:
        raise ModelError(f"a detector with one image input is needed, this one has {len(m.graph.input)}")
    target = m.graph.input[0].name
    opset = _default_opset(m)
    if opset < 13:
        raise ModelError(f"the detector's opset {opset} is older than 13 (the prologue is written for 13+)")
    pro, params = frame_prologue(fmt, frame_hw, opset=opset, ir_version=m.ir_version, gather_uint8=gather_uint8)
    del pro.metadata_props[:]
    merged = compose.merge_models(pro, m, io_map=[("pre/out", target)], producer_name="mca-pose",
                                  producer_version="1")
    merged.metadata_props.add(key="mca.resize", value=params.json())
    merged.metadata_props.add(key="mca.input_layout", value="HWC")
    return merged, params


def crop_maps(frame_to_crop: np.ndarray, out_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row and per-column sampling maps of each person's crop, exactly as ``cv2.warpAffine`` builds them.

    ``frame_to_crop`` (N, 2, 3) is the matrix ``cv2.warpAffine`` takes (frame -> crop pixels).  It is
    inverted with OpenCV's own formula (double); then, for crop pixel (x, y), the source point in
    1/1024 px is ``rows[:, :, y] + cols[:, :, x]`` (x and y components on axis 1; the rows include
    OpenCV's rounding offset).  Returned as float32 (every value is an integer below 2^24).
    """
    m = np.asarray(frame_to_crop, np.float64).reshape(-1, 2, 3)
    ow, oh = (int(v) for v in out_wh)
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = m00 * m11 - m01 * m10
    d = np.divide(1.0, det, out=np.zeros_like(det), where=det != 0)
    a11, a22, a12, a21 = m11 * d, m00 * d, -m01 * d, -m10 * d
    b1, b2 = -a11 * m02 - a12 * m12, -a21 * m02 - a22 * m12
    xs, ys = np.arange(ow, dtype=np.float64), np.arange(oh, dtype=np.float64)
    cols = np.rint(np.stack([a11, a21], 1)[:, :, None] * xs * AB_SCALE)
    rows = np.rint((np.stack([a12, a22], 1)[:, :, None] * ys + np.stack([b1, b2], 1)[:, :, None]) * AB_SCALE)
    rows += AB_SCALE // INTER_TAB // 2
    if len(m) and np.abs(rows).max() + np.abs(cols).max() >= _MAX_MAP:
        raise ModelError("a crop reaches beyond +-16384 px from the frame origin (its map does not fit float32)")
    return rows.astype(np.float32), cols.astype(np.float32)


def crop_graph(frame_hw: tuple[int, int], out_wh: tuple[int, int], output_dtype: str = "uint8",
               gather_uint8: bool = False, opset: int = 17) -> Any:
    """The graph ``frame`` (H, W, 3) uint8 + ``map_rows`` (N, 2, h) + ``map_cols`` (N, 2, w) float32 ->
    ``crops`` (N, h, w, 3) uint8 (or float32 holding the same whole numbers), bit-exact with
    ``cv2.warpAffine(frame, M, (w, h), flags=INTER_LINEAR, borderMode=BORDER_CONSTANT, borderValue=0)``.

    ``gather_uint8`` gathers the neighbours from the uint8 frame and casts them (less memory traffic;
    ONNX Runtime only: TensorRT computes on float, so the default casts the frame first).
    """
    from onnx import helper

    if output_dtype not in ("uint8", "float32"):
        raise ModelError(f"output_dtype must be uint8 or float32, got {output_dtype!r}")
    h, w = (int(v) for v in frame_hw)
    ow, oh = (int(v) for v in out_wh)
    b = GraphBuilder("crop/")
    rows = b.op("Unsqueeze", b.op("Transpose", MAP_ROWS, perm=[0, 2, 1]), b.const([2], np.int64))  # (N, h, 1, 2)
    cols = b.op("Unsqueeze", b.op("Transpose", MAP_COLS, perm=[0, 2, 1]), b.const([1], np.int64))  # (N, 1, w, 2)
    fixed = b.op("Floor", b.op("Mul", b.op("Add", rows, cols), b.const(1.0 / INTER_TAB)))  # 1/32 px
    whole = b.op("Floor", b.op("Mul", fixed, b.const(1.0 / INTER_TAB)))  # pixel
    frac = b.op("Sub", fixed, b.op("Mul", whole, b.const(float(INTER_TAB))))  # 0..31
    # per-pixel tensors are (N, h, w) and the gathered samples (3, N, h, w), so every blend broadcasts over
    # the leading channel axis (a contiguous span per channel: ONNX Runtime's fast broadcast path)
    squeeze = b.const([3], np.int64)
    sx, sy = (b.op("Squeeze", t, squeeze) for t in b.op("Split", whole, b.const([1, 1], np.int64), axis=3, outputs=2))
    fx, fy = (b.op("Squeeze", t, squeeze) for t in b.op("Split", frac, b.const([1, 1], np.int64), axis=3, outputs=2))
    one, tab = b.const(1.0), b.const(float(INTER_TAB))

    def tap(v: str, hi: int, weight: str) -> tuple[str, str]:
        """(clamped coordinate as int32, weight zeroed where the coordinate is outside the frame)."""
        c = b.op("Clip", v, b.const(0.0), b.const(float(hi - 1)))
        inside = b.op("Cast", b.op("Equal", c, v), to=_FLOAT)
        return b.op("Cast", c, to=_INT32), b.op("Mul", weight, inside)

    cx0, wx0 = tap(sx, w, b.op("Sub", tab, fx))
    cx1, wx1 = tap(b.op("Add", sx, one), w, fx)
    cy0, wy0 = tap(sy, h, b.op("Sub", tab, fy))
    cy1, wy1 = tap(b.op("Add", sy, one), h, fy)
    src = FRAME if gather_uint8 else b.op("Cast", FRAME, to=_FLOAT)
    flat = b.op("Reshape", src, b.const([h * w * 3], np.int64))  # HWC order: pixel p channel c at 3p + c
    three, channel = b.const(np.int32(3), np.int32), b.const(np.arange(3).reshape(3, 1, 1, 1), np.int32)
    stride = b.const(np.int32(w), np.int32)

    def pixel(cy: str, cx: str) -> str:
        p = b.op("Add", b.op("Mul", cy, stride), cx)  # (N, h, w)
        v = b.op("Gather", flat, b.op("Add", b.op("Mul", p, three), channel), axis=0)  # (3, N, h, w)
        return b.op("Cast", v, to=_FLOAT) if gather_uint8 else v

    top = b.op("Add", b.op("Mul", wx0, pixel(cy0, cx0)), b.op("Mul", wx1, pixel(cy0, cx1)))
    bottom = b.op("Add", b.op("Mul", wx0, pixel(cy1, cx0)), b.op("Mul", wx1, pixel(cy1, cx1)))
    v = b.op("Add", b.op("Mul", wy0, top), b.op("Mul", wy1, bottom))  # whole numbers up to 32*32*255
    v = b.op("Floor", b.op("Mul", b.op("Add", v, b.const(512.0)), b.const(1.0 / 1024.0)))
    v = b.op("Transpose", v, perm=[1, 2, 3, 0])  # (N, h, w, 3)
    b.op("Cast", v, to=_UINT8 if output_dtype == "uint8" else _FLOAT, out=CROPS)
    out_type = _UINT8 if output_dtype == "uint8" else _FLOAT
    meta = {"mca.kind": "crop", "mca.frame_hw": json.dumps([h, w]), "mca.crop_wh": json.dumps([ow, oh]),
            "mca.convention": "cv2.warpAffine INTER_LINEAR BORDER_CONSTANT 0, maps from engines.preprocess.crop_maps"}
    return b.model([helper.make_tensor_value_info(FRAME, _UINT8, [h, w, 3]),
                    helper.make_tensor_value_info(MAP_ROWS, _FLOAT, ["persons", 2, oh]),
                    helper.make_tensor_value_info(MAP_COLS, _FLOAT, ["persons", 2, ow])],
                   [helper.make_tensor_value_info(CROPS, out_type, ["persons", oh, ow, 3])],
                   opset=opset, name="crop", metadata=meta)


def graph_cache_dir() -> Path:
    """Where built graphs are kept (``$MCA_POSE_CACHE/graphs``, default ``~/.cache/mca-pose/graphs``)."""
    root = os.environ.get("MCA_POSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mca-pose")
    return Path(root) / "graphs"


def save_graph(model: Any, name: str, directory: str | os.PathLike | None = None) -> Path:
    """Write ``model`` under a name that carries its content hash (so engines cached by ONNX hash stay
    valid) and return the path; an existing identical file is reused."""
    data = model.SerializeToString()
    d = Path(directory) if directory else graph_cache_dir()
    path = d / f"{name}_{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    if not path.exists():
        d.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path
