"""A TensorFlow Object Detection API SSD graph without its pre- and post-processing loops.

Why: tf2onnx turns the TF graph's ``Preprocessor/map`` (resize every image of the batch)
and ``Postprocessor/BatchMultiClassNonMaxSuppression/map`` (per-class NMS of every image)
into ONNX ``Loop`` nodes with TensorArray glue (``Loop`` was 12 % of ONNX Runtime's node
time in a profile of the bundled SSDLite; cut, the detector ran x1.07 faster alone), for work
the pipeline already does (it resizes the frame to 300x300 before the model) or does in
NumPy (NMS of a few dozen boxes); TensorRT does not take those loops at all.

:func:`cut_ssd` keeps the feature extractor, the box predictor and the box decoding
(all plain tensor ops), feeds the first convolution from the uint8 input directly
(``x / 127.5 - 1`` as before, minus the resize of a 300x300 image to 300x300), replaces the
arithmetic on tensor shapes by its constants (:func:`fold_shape_arithmetic`: the input size is
fixed, so every output has a static shape, as TensorRT and ``engines.lint`` want), and ends
at two outputs: ``boxes`` (1, anchors, 4: ymin, xmin, ymax, xmax in [0, 1] of the input,
decoded, not yet clipped) and ``scores`` (1, anchors, classes: sigmoid scores, background
first).  The NMS settings the graph used (IoU, detections per class) go into the
metadata, so ``realtime.detectors``' ``ssd_decoded`` family reproduces the graph's boxes
(``tools/ssdlite_cut.py`` writes the file and checks that on real frames).
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import numpy as np

from engines.base import ModelError
from engines.detector_meta import set_metadata
from engines.graph import keep_needed

log = logging.getLogger(__name__)

__all__ = ["cut_ssd", "fold_shape_arithmetic", "SSD_DECODED_FAMILY", "find_tensor"]

SSD_DECODED_FAMILY = "ssd_decoded"

# tensor names of the TF1 Object Detection API export as tf2onnx writes them
_RESIZED = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0"  # the float image out of the resize loop
_CAST = "ToFloat:0"  # uint8 input -> float, the first node
_BOXES = "Postprocessor/Reshape_2:0"  # decoded boxes (batch, anchors, 4), before NMS
_SCORES = "Postprocessor/convert_scores:0"  # sigmoid scores (batch, anchors, classes)
_NMS_IOU = "non_max_suppression/iou_threshold:0"


def _graphs(g: Any) -> Iterator[Any]:
    """``g`` and every subgraph in it (Loop/If/Scan bodies), depth first."""
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == a.GRAPH:
                yield from _graphs(a.g)


def find_tensor(model: Any, suffix: str) -> np.ndarray | None:
    """The value of the first initializer (graph or any subgraph) whose name ends with ``suffix``."""
    from onnx import numpy_helper

    for g in _graphs(model.graph):
        for t in g.initializer:
            if t.name.endswith(suffix):
                return numpy_helper.to_array(t)
    return None


def _nms_settings(model: Any, default_per_class: int = 100) -> tuple[float, int]:
    """(IoU threshold, detections per class) of the graph's NMS, read from its loop's constants."""
    from onnx import numpy_helper

    iou = find_tensor(model, _NMS_IOU)
    if iou is None:
        raise ModelError("no NMS IoU threshold in the graph: not a TF Object Detection API SSD export")
    outer = {t.name: t for t in model.graph.initializer}
    for g in _graphs(model.graph):
        consts = outer | {t.name: t for t in g.initializer}
        for n in g.node:
            if n.op_type != "NonMaxSuppression" or len(n.input) <= 2:
                continue
            name = n.input[2]  # max_output_boxes_per_class: a constant, or a Cast/Unsqueeze of one
            feeder = next((p for p in g.node if name in p.output and p.op_type in ("Cast", "Unsqueeze", "Identity")),
                          None)
            t = consts.get(name) or (consts.get(feeder.input[0]) if feeder is not None else None)
            if t is not None:
                return float(np.asarray(iou).reshape(-1)[0]), int(numpy_helper.to_array(t).reshape(-1)[0])
    return float(np.asarray(iou).reshape(-1)[0]), default_per_class


def cut_ssd(model: Any, input_size: int = 300) -> dict[str, str]:
    """Rewrite ``model`` (an ``onnx.ModelProto`` of a TF OD API SSD) in place; returns the metadata it set.

    The input keeps its name and becomes (1, ``input_size``, ``input_size``, 3) uint8: the caller
    resizes (as ``realtime.detectors`` always did for this family).  Raises ``ModelError`` when the
    graph is not such an export.
    """
    from onnx import TensorProto, helper

    g = model.graph
    produced = {o for n in g.node for o in n.output}
    for name in (_RESIZED, _CAST, _BOXES, _SCORES):
        if name not in produced:
            raise ModelError(f"no tensor {name!r} in the graph: not a TF Object Detection API SSD export")
    iou, per_class = _nms_settings(model)
    if len(g.input) != 1:
        raise ModelError(f"an SSD export has one input, this graph has {len(g.input)}")
    # the first convolution reads the cast input instead of the resize loop's output, which tf2onnx
    # already wrote channels first (it moved the NHWC -> NCHW transpose into the loop)
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == _RESIZED:
                n.input[i] = "cut/nchw:0"
    g.node.insert(1, helper.make_node("Transpose", [_CAST], ["cut/nchw:0"], name="cut/nchw", perm=[0, 3, 1, 2]))
    inp = g.input[0]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(inp.name, TensorProto.UINT8, [1, input_size, input_size, 3]))
    g.node.append(helper.make_node("Identity", [_BOXES], ["boxes"], name="cut/boxes"))
    g.node.append(helper.make_node("Identity", [_SCORES], ["scores"], name="cut/scores"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4]))
    g.output.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, None, None]))
    removed = keep_needed(g)
    if any(n.op_type == "Loop" for n in g.node):
        raise ModelError("the decoded boxes still depend on a Loop: an SSD export this cut does not know")
    del g.value_info[:]
    folded = fold_shape_arithmetic(model)
    _static_outputs(model)
    meta = {"mca.detector_family": SSD_DECODED_FAMILY, "mca.input_size": str(int(input_size)),
            "mca.nms_iou": f"{iou:.6g}", "mca.max_per_class": str(per_class),
            "mca.cut": "engines.ssd_cut: TF pre/post-processing loops removed; decode in graph, NMS in NumPy"}
    set_metadata(model, meta)
    log.info("cut %d nodes (pre-processing and NMS loops), folded %d shape tensors; NMS IoU %.2f, %d per class",
             removed, folded, iou, per_class)
    return meta


def fold_shape_arithmetic(model: Any) -> int:
    """Replace, in place, every tensor computed only from ``Shape`` nodes and constants by its value.

    Why: tf2onnx writes the TF graph's reshapes as ``Shape -> Gather -> Concat -> Reshape`` chains;
    with a fixed input size those are constants, and as constants every output shape is static.
    The values come from one ONNX Runtime run on a zero input.  Returns the tensors replaced.
    """
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    g = model.graph
    const = {t.name for t in g.initializer}
    shape_only: set[str] = set()
    for n in g.node:  # topological order: a node is shape-only when its inputs all are (or are constants)
        if n.op_type == "Shape" or (n.op_type not in ("RandomNormal", "RandomUniform", "Loop", "If", "Scan")
                                    and n.input and all(i in const or i in shape_only for i in n.input if i)):
            if n.op_type == "Shape" or any(i in shape_only for i in n.input):
                shape_only.update(n.output)
    frontier = sorted({i for n in g.node for i in n.input if i in shape_only
                       and not all(o in shape_only for o in n.output)})
    if not frontier:
        return 0
    probe = type(model)()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in frontier)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        if any(not isinstance(d, int) for d in i.shape):
            raise ModelError(f"input {i.name} has no fixed shape ({i.shape}); nothing can be folded")
        dtype = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}.get(i.type)
        if dtype is None:
            raise ModelError(f"input {i.name} is {i.type}; the fold feeds uint8 or float inputs")
        feeds[i.name] = np.zeros(i.shape, dtype)
    values = dict(zip(frontier, sess.run(frontier, feeds)))
    for name, v in values.items():
        g.initializer.append(numpy_helper.from_array(np.asarray(v), name))
    keep_needed(g, set(values))
    return len(values)


def _static_outputs(model: Any) -> None:
    """Write the outputs' shapes, as one run on a zero input gives them, into the graph's output types."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    i = sess.get_inputs()[0]
    outs = sess.run(None, {i.name: np.zeros(i.shape, np.uint8)})
    for o, v in zip(model.graph.output, outs):
        dims = o.type.tensor_type.shape.dim
        del dims[:]
        for d in v.shape:
            dims.add().dim_value = int(d)
