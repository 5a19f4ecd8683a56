"""Post-processing appended to a model's ONNX, so only small tensors leave the device.

- :func:`with_heatmap_decode`: a pose model's ``heatmaps`` (N, K, H, W) -> ``peaks`` (N, K, 2)
  in heatmap pixels and ``peak_scores`` (N, K): the argmax with the released quarter-pixel
  shift, the same numbers as ``mca.heatmaps.decode_heatmaps(refine="quarter"|"none")``
  (first maximum on ties, as numpy's argmax).  The host maps peaks to the frame with each
  crop's float64 transform, as ``realtime.pose`` does.
- :func:`with_yolo_candidates`: a YOLO head's (1, 4 + classes, anchors) output -> the ``k`` most
  confident anchors of the person class, (1, 5, k) in the same row layout (cx, cy, w, h, score),
  so the host's decode and NMS run unchanged on k columns instead of every anchor.
- :func:`with_ssd_candidates`: the same for a cut SSD (``engines.ssd_cut``: ``boxes`` (1, A, 4),
  ``scores`` (1, A, C)): the ``k`` anchors with the highest person score, same outputs, k rows.

Operators (TensorRT's ONNX parser has all, opset 13-17): Reshape, ArgMax, ReduceMax,
GatherElements, Gather, TopK (constant k), Cast, Floor, Div, Mul, Sub, Add, Min, Max,
Sign, Greater, Less, And, Where, Concat, Squeeze.  Safe to convert to FP16 (heatmap
coordinates are multiples of 0.25 below 2048).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from engines.base import ModelError
from engines.graphbuild import GraphBuilder, require_onnx

log = logging.getLogger(__name__)

__all__ = ["with_heatmap_decode", "with_yolo_candidates", "with_ssd_candidates", "PEAKS", "PEAK_SCORES",
           "CANDIDATES"]

PEAKS, PEAK_SCORES, CANDIDATES = "peaks", "peak_scores", "candidates"
_FLOAT, _INT64 = 1, 7


def _load(model: Any) -> Any:
    onnx = require_onnx()
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(str(model))
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def _output_shape(model: Any, name: str) -> list[int | str]:
    for o in model.graph.output:
        if o.name == name:
            return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in
                    o.type.tensor_type.shape.dim]
    raise ModelError(f"the model has no output {name!r} (outputs: {[o.name for o in model.graph.output]})")


def _splice(model: Any, b: GraphBuilder, outputs: list[Any], keep: tuple[str, ...]) -> Any:
    onnx = require_onnx()
    model.graph.node.extend(b.nodes)
    model.graph.initializer.extend(b.initializers)
    kept = [o for o in model.graph.output if o.name in keep]
    del model.graph.output[:]
    model.graph.output.extend(kept + outputs)
    onnx.checker.check_model(model)
    return model


def with_heatmap_decode(model: Any, refine: str = "quarter", keep: tuple[str, ...] = ()) -> Any:
    """``model`` (a pose ONNX: path or ModelProto) with its heatmaps decoded in the graph.

    Outputs become ``peaks`` and ``peak_scores`` plus the original outputs named in ``keep``
    (e.g. ``("heatmaps",)``); the others (attention maps) are dropped, so an engine skips them.
    """
    from onnx import helper

    if refine not in ("quarter", "none"):
        raise ModelError(f"the graph decode does refine='quarter' or 'none', not {refine!r}")
    m = _load(model)
    shape = _output_shape(m, "heatmaps")
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise ModelError(f"heatmaps must be (N, K, H, W) with static K, H, W; got {shape}")
    k, hh, ww = (int(d) for d in shape[1:])
    b = GraphBuilder("post/")
    flat = b.op("Reshape", "heatmaps", b.const([-1, k, hh * ww], np.int64))
    idx = b.op("ArgMax", flat, axis=2, keepdims=1, select_last_index=0)  # (N, K, 1) int64
    score = b.op("ReduceMax", flat, axes=[2], keepdims=1)
    fidx = b.op("Cast", idx, to=_FLOAT)
    py = b.op("Floor", b.op("Div", fidx, b.const(float(ww))))
    px = b.op("Sub", fidx, b.op("Mul", py, b.const(float(ww))))
    coords = []
    for pos, step, lim in ((px, 1, ww), (py, ww, hh)):
        if refine == "none":
            coords.append(pos)
            continue
        lo_i = b.op("Max", b.op("Sub", idx, b.const(np.int64(step), np.int64)), b.const(np.int64(0), np.int64))
        hi_i = b.op("Min", b.op("Add", idx, b.const(np.int64(step), np.int64)),
                    b.const(np.int64(hh * ww - 1), np.int64))
        lo = b.op("GatherElements", flat, lo_i, axis=2)
        hi = b.op("GatherElements", flat, hi_i, axis=2)
        inner = b.op("And", b.op("Greater", pos, b.const(0.0)), b.op("Less", pos, b.const(float(lim - 1))))
        shift = b.op("Mul", b.op("Sign", b.op("Sub", hi, lo)), b.const(0.25))
        coords.append(b.op("Add", pos, b.op("Where", inner, shift, b.const(0.0))))
    b.op("Concat", *coords, axis=2, out=PEAKS)
    b.op("Squeeze", score, b.const([2], np.int64), out=PEAK_SCORES)
    n = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else "batch"
    outs = [helper.make_tensor_value_info(PEAKS, _FLOAT, [n, k, 2]),
            helper.make_tensor_value_info(PEAK_SCORES, _FLOAT, [n, k])]
    m = _splice(m, b, outs, keep)
    m.metadata_props.add(key="mca.decode", value=refine)
    return m


def with_yolo_candidates(model: Any, person_class: int = 0, k: int = 1000) -> Any:
    """``model`` (a YOLO detector, one (1, 4 + classes, anchors) output) returning ``candidates``:
    the ``k`` highest person scores' columns, (1, 5, k) as cx, cy, w, h, score (most confident first)."""
    from onnx import helper

    m = _load(model)
    if len(m.graph.output) != 1:
        raise ModelError(f"a YOLO head with one output is needed, this one has {len(m.graph.output)}")
    raw = m.graph.output[0].name
    shape = _output_shape(m, raw)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise ModelError(f"the YOLO output must be (1, 4 + classes, anchors) with static sizes; got {shape}")
    rows, anchors = int(shape[1]), int(shape[2])
    if not 0 <= person_class < rows - 4:
        raise ModelError(f"person class {person_class} is beyond the model's {rows - 4} classes")
    k = max(1, min(int(k), anchors))
    b = GraphBuilder("post/")
    sel = b.op("Gather", raw, b.const([0, 1, 2, 3, 4 + person_class], np.int64), axis=1)  # (1, 5, A)
    scores = b.op("Gather", raw, b.const(4 + person_class, np.int64), axis=1)  # (1, A)
    _, top = b.op("TopK", scores, b.const([k], np.int64), axis=1, largest=1, sorted=1, outputs=2)
    b.op("Gather", sel, b.op("Squeeze", top, b.const([0], np.int64)), axis=2, out=CANDIDATES)
    m = _splice(m, b, [helper.make_tensor_value_info(CANDIDATES, _FLOAT, [1, 5, k])], ())
    m.metadata_props.add(key="mca.candidates", value=str(k))
    return m


def with_ssd_candidates(model: Any, person_class: int = 1, k: int = 300) -> Any:
    """``model`` (an ``engines.ssd_cut`` detector: ``boxes`` (1, A, 4), ``scores`` (1, A, C)) with both
    outputs cut to the ``k`` anchors of highest person score (most confident first), same names, so
    ``realtime.detectors``' ``ssd_decoded`` post-processing runs on them unchanged."""
    from onnx import helper

    m = _load(model)
    if sorted(o.name for o in m.graph.output) != ["boxes", "scores"]:
        raise ModelError(f"a cut SSD with outputs boxes and scores is needed, not {[o.name for o in m.graph.output]}")
    renamed = {}
    for n in m.graph.node:
        for i, o in enumerate(n.output):
            if o in ("boxes", "scores"):
                n.output[i] = renamed[o] = f"post/all_{o}"
    for n in m.graph.node:  # a reader of an output inside the graph (none in a cut SSD, but keep it right)
        for i, name in enumerate(n.input):
            if name in ("boxes", "scores"):
                n.input[i] = f"post/all_{name}"
    shape = _output_shape(m, "scores")
    anchors, classes = shape[1], shape[2]
    if isinstance(classes, int) and not 0 <= person_class < classes:
        raise ModelError(f"person class {person_class} is beyond the model's {classes} score columns")
    k = max(1, int(k) if not isinstance(anchors, int) else min(int(k), anchors))
    b = GraphBuilder("post/")
    person = b.op("Gather", renamed["scores"], b.const(person_class, np.int64), axis=2)  # (1, A)
    _, top = b.op("TopK", person, b.const([k], np.int64), axis=1, largest=1, sorted=1, outputs=2)
    idx = b.op("Squeeze", top, b.const([0], np.int64))  # (k,)
    b.op("Gather", renamed["boxes"], idx, axis=1, out="boxes")
    b.op("Gather", renamed["scores"], idx, axis=1, out="scores")
    del m.graph.output[:]
    c = classes if isinstance(classes, int) else "classes"
    m = _splice(m, b, [helper.make_tensor_value_info("boxes", _FLOAT, [1, k, 4]),
                       helper.make_tensor_value_info("scores", _FLOAT, [1, k, c])], ())
    m.metadata_props.add(key="mca.candidates", value=str(k))
    return m
