"""Person detectors run from ONNX/TensorRT, with our own pre-processing, decode and NMS.

Detector families form a small registry (:data:`DETECTOR_FAMILIES`, extended with
:func:`register_family`): each knows its input format and how to turn its raw
outputs into :class:`~realtime.types.Detections` in frame pixels.

- ``yolo``: Ultralytics YOLOv8/11 exports: ``images`` float32 NCHW RGB in [0, 1],
  letterboxed (grey 114); one output (N, 4 + classes, anchors) of cx, cy, w, h in
  input pixels and class scores, no NMS in the graph.  Only the person class is
  kept (``mca.person_class``, default 0), so NMS is class-agnostic over people.
- ``ssd``: TensorFlow Object Detection API graphs converted with tf2onnx: uint8 NHWC RGB
  input, outputs ``num_detections``, ``detection_scores``, ``detection_boxes`` (ymin, xmin,
  ymax, xmax normalised), ``detection_classes`` (person = 1); NMS already done in the graph.
- ``ssd_decoded``: the same graph with its pre-processing and NMS loops cut away
  (:mod:`engines.ssd_cut`; the bundled pedestrian SSDLite): outputs ``boxes`` (decoded,
  normalised, one per anchor) and ``scores`` (sigmoid, background first); the graph's NMS
  (IoU ``mca.nms_iou``, ``mca.max_per_class`` boxes) runs here in NumPy, then the same
  duplicate merge as ``ssd``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, NamedTuple

import cv2
import numpy as np

from realtime.models import Backend, ModelError
from realtime.types import Detections

log = logging.getLogger(__name__)

__all__ = ["nms", "letterbox", "PersonDetector", "DetectorFamily", "DETECTOR_FAMILIES", "register_family",
           "detect_family", "GroundTruthDetector"]

# pre(frame, input_size) -> (model input, context); post(outputs by name, context, frame (w, h),
# person class, conf, iou) -> Detections
PreFn = Callable[[np.ndarray, int], tuple[np.ndarray, tuple]]
PostFn = Callable[[dict[str, np.ndarray], tuple, tuple[int, int], int, float, float], Detections]


class DetectorFamily(NamedTuple):
    """How to feed one kind of detector and read its outputs."""

    pre: PreFn
    post: PostFn
    person_class: int  # default when the model's metadata has no mca.person_class
    default_size: int
    default_conf: float  # the score threshold this family is calibrated for (used when none is given)
    # boxes from this score up to default_conf are kept where the pose model finds a person in them (None: none);
    # judged for SSDLite on vtest.avi (tools/ssdlite_margin.py), not yet for YOLO
    verify_conf: float | None = None
    # post-processing made for one model's metadata (settings the graph carried), else ``post`` as it is
    bind: Callable[[dict[str, str]], PostFn] | None = None


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, most confident first."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float32).reshape(-1), kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx1 - xx0).clip(0) * (yy1 - yy0).clip(0)
        ov = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[ov <= iou]
    return np.asarray(keep, np.int64)


def letterbox(image: np.ndarray, size: int, fill: int = 114) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect into a size x size canvas; returns (canvas, scale, (pad_x, pad_y)).

    A frame point ``p`` lands at ``p * scale + pad`` on the canvas (pixel corners,
    as Ultralytics computes it), so boxes map back with ``(b - pad) / scale``.
    """
    h, w = image.shape[:2]
    s = min(size / w, size / h)
    nw, nh = min(size, max(1, int(round(w * s)))), min(size, max(1, int(round(h * s))))
    x0, y0 = int(round((size - nw) / 2 - 0.1)), int(round((size - nh) / 2 - 0.1))
    out = np.full((size, size, 3), fill, np.uint8)
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, s, (float(x0), float(y0))


def _clip(boxes: np.ndarray, frame_wh: tuple[int, int]) -> np.ndarray:
    w, h = frame_wh
    return boxes.clip(0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)


def _yolo_pre(frame: np.ndarray, size: int) -> tuple[np.ndarray, tuple]:
    img, s, pad = letterbox(frame, size)
    x = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * (1.0 / 255.0)
    return x, (s, pad)


def _yolo_post(outputs: dict[str, np.ndarray] | list[np.ndarray], ctx: tuple, frame_wh: tuple[int, int],
               person_class: int, conf: float, iou: float) -> Detections:
    raw = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs[0]
    if raw.ndim != 3 or raw.shape[1] < 5:
        raise ModelError(f"YOLO output must be (N, 4 + classes, anchors), got {raw.shape}")
    if 4 + person_class >= raw.shape[1]:
        raise ModelError(f"person class {person_class} is beyond the model's {raw.shape[1] - 4} classes")
    s, (px, py) = ctx
    out = raw[0]
    scores = out[4 + person_class]
    m = scores >= conf
    if not m.any():
        return Detections()
    cx, cy, bw, bh = out[0, m], out[1, m], out[2, m], out[3, m]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    boxes = _clip((boxes - [px, py, px, py]) / s, frame_wh)
    keep = nms(boxes, scores[m], iou)
    return Detections(boxes[keep], scores[m][keep])


def _ssd_pre(frame: np.ndarray, size: int) -> tuple[np.ndarray, tuple]:
    img = cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img[:, :, ::-1][None]), ()


def _ssd_outputs(outputs: dict[str, np.ndarray] | list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """(num, scores, boxes, classes) by output name, else by rank in the TF API's order."""
    if isinstance(outputs, dict):
        by = {}
        for key in ("num_detections", "detection_scores", "detection_boxes", "detection_classes"):
            hit = [v for k, v in outputs.items() if key in k]
            if len(hit) == 1:
                by[key] = hit[0]
        if len(by) == 4:
            return by["num_detections"], by["detection_scores"], by["detection_boxes"], by["detection_classes"]
        outputs = list(outputs.values())
    num = [o for o in outputs if o.ndim == 1]
    boxes = [o for o in outputs if o.ndim == 3]
    two = [o for o in outputs if o.ndim == 2]
    if len(num) != 1 or len(boxes) != 1 or len(two) != 2:
        raise ModelError("SSD outputs must be num_detections, detection_scores, detection_boxes, detection_classes")
    return num[0], two[0], boxes[0], two[1]  # scores come before classes in the TF API's order


def _ssd_post(outputs: dict[str, np.ndarray] | list[np.ndarray], ctx: tuple, frame_wh: tuple[int, int],
              person_class: int, conf: float, iou: float) -> Detections:
    num, scores, boxes_n, classes = _ssd_outputs(outputs)
    n = min(int(num.reshape(-1)[0]), boxes_n.shape[1])
    b, sc, cl = boxes_n[0, :n], scores[0, :n], classes[0, :n]
    m = (np.round(cl).astype(int) == person_class) & (sc >= conf)
    w, h = frame_wh
    boxes = _clip(np.stack([b[m, 1] * w, b[m, 0] * h, b[m, 3] * w, b[m, 2] * h], 1), frame_wh)
    keep = nms(boxes, sc[m], iou)  # the graph's NMS is per class; this also merges near-duplicates
    return Detections(boxes[keep], sc[m][keep])


def _ssd_decoded_post(outputs: dict[str, np.ndarray] | list[np.ndarray], ctx: tuple, frame_wh: tuple[int, int],
                      person_class: int, conf: float, iou: float, graph_iou: float = 0.6,
                      per_class: int = 100) -> Detections:
    """What the TF graph's post-processing did (clip to the image, NMS at ``graph_iou``, the best
    ``per_class``), for the person class only, then the ``ssd`` family's threshold and merge."""
    if isinstance(outputs, dict):
        if "boxes" not in outputs or "scores" not in outputs:
            raise ModelError(f"an ssd_decoded detector has outputs 'boxes' and 'scores', not {sorted(outputs)}")
        boxes_n, scores = outputs["boxes"], outputs["scores"]
    else:
        boxes_n, scores = outputs[0], outputs[1]
    if boxes_n.ndim != 3 or boxes_n.shape[-1] != 4 or scores.ndim != 3 or scores.shape[1] != boxes_n.shape[1]:
        raise ModelError(f"ssd_decoded outputs must be boxes (1, A, 4) and scores (1, A, C), got {boxes_n.shape} "
                         f"and {scores.shape}")
    if person_class >= scores.shape[2]:
        raise ModelError(f"person class {person_class} is beyond the model's {scores.shape[2]} score columns")
    sc = scores[0, :, person_class]
    m = sc >= conf  # NMS in score order: boxes under the threshold never suppress one above it
    if not m.any():
        return Detections()
    b, sc = boxes_n[0, m].clip(0.0, 1.0), sc[m]
    keep = nms(b, sc, graph_iou)[:per_class]  # IoU is the same in normalised and pixel coordinates
    b, sc = b[keep], sc[keep]
    w, h = frame_wh
    boxes = _clip(np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], 1), frame_wh)
    keep = nms(boxes, sc, iou)
    return Detections(boxes[keep], sc[keep])


def _bind_ssd_decoded(meta: dict[str, str]) -> PostFn:
    """The ``ssd_decoded`` post-processing with the NMS settings the graph had (its metadata)."""
    try:
        graph_iou = float(meta.get("mca.nms_iou", 0.6))
        per_class = int(meta.get("mca.max_per_class", 100))
    except ValueError:
        raise ModelError("mca.nms_iou / mca.max_per_class metadata is not a number") from None

    def post(outputs: dict[str, np.ndarray] | list[np.ndarray], ctx: tuple, frame_wh: tuple[int, int],
             person_class: int, conf: float, iou: float) -> Detections:
        return _ssd_decoded_post(outputs, ctx, frame_wh, person_class, conf, iou, graph_iou, per_class)

    return post


DETECTOR_FAMILIES: dict[str, DetectorFamily] = {}


def register_family(name: str, pre: PreFn, post: PostFn, person_class: int, default_size: int,
                    default_conf: float = 0.35, verify_conf: float | None = None,
                    bind: Callable[[dict[str, str]], PostFn] | None = None) -> None:
    """Add a detector family (e.g. a new export format) under the metadata name ``mca.detector_family``."""
    DETECTOR_FAMILIES[name] = DetectorFamily(pre, post, person_class, default_size, default_conf, verify_conf,
                                             bind)


register_family("yolo", _yolo_pre, _yolo_post, 0, 640, 0.25)  # Ultralytics' own default threshold
register_family("ssd", _ssd_pre, _ssd_post, 1, 300, 0.35, verify_conf=0.2)
register_family("ssd_decoded", _ssd_pre, _ssd_decoded_post, 1, 300, 0.35, verify_conf=0.2, bind=_bind_ssd_decoded)


def detect_family(backend: Backend) -> str:
    """The detector family from metadata, else from the model's inputs/outputs."""
    fam = backend.metadata.get("mca.detector_family")
    kind = backend.metadata.get("mca.kind")
    if kind == "pose":
        raise ModelError(f"{backend.path} is a pose model, not a person detector (give it as --pose)")
    if kind not in (None, "detector"):
        raise ModelError(f"{backend.path} is a {kind!r} model, not a person detector")
    if fam:
        if fam not in DETECTOR_FAMILIES:
            raise ModelError(f"{backend.path}: unknown detector family {fam!r}; known: {', '.join(DETECTOR_FAMILIES)}")
        return fam
    names = {o.name for o in backend.outputs}
    if any("detection_boxes" in n for n in names):
        return "ssd"
    if names == {"boxes", "scores"}:
        return "ssd_decoded"
    if len(backend.outputs) == 1 and len(backend.outputs[0].shape) == 3 and backend.input.dtype == np.float32:
        return "yolo"
    raise ModelError(f"{backend.path} does not look like a YOLO or SSD person detector")


class PersonDetector:
    """``detect(image) -> Detections``: people in a BGR frame, most confident first."""

    def __init__(self, backend: Backend, conf: float | None = None, iou: float = 0.5, max_persons: int = 16) -> None:
        self.backend = backend
        self.family = detect_family(backend)
        fam = DETECTOR_FAMILIES[self.family]
        self._pre = fam.pre
        self.post = fam.bind(backend.metadata) if fam.bind else fam.post  # (outputs, ctx, wh, class, conf, iou)
        try:
            self.person_class = int(backend.metadata.get("mca.person_class", fam.person_class))
            size: str | int | None = backend.metadata.get("mca.input_size")
            if size is None:
                shape = backend.input.shape
                dims = [d for d in ((shape[2], shape[3]) if self.family == "yolo" else shape[1:3]) if d]
                size = int(dims[0]) if dims else fam.default_size
            self.input_size = int(size)
        except (TypeError, ValueError, IndexError) as e:
            raise ModelError(f"{backend.path}: unusable detector metadata ({e})") from None
        self.conf = fam.default_conf if conf is None else float(conf)
        # with a threshold of the user's own, no band under it is assumed
        self.verify_conf = fam.verify_conf if conf is None else None
        self.iou, self.max_persons = iou, max_persons
        self._names = [o.name for o in backend.outputs]

    def detect(self, image: np.ndarray) -> Detections:
        """People in ``image`` (BGR uint8), at most ``max_persons``, most confident first."""
        x, ctx = self._pre(image, self.input_size)
        outputs = dict(zip(self._names, self.backend.run(x)))
        det = self.post(outputs, ctx, (image.shape[1], image.shape[0]), self.person_class, self.conf, self.iou)
        return det.top(self.max_persons)


class GroundTruthDetector:
    """``detect_frame(frame) -> Detections``: the demo's ground-truth boxes, an oracle detector.

    Only for sources with ground truth (``demo``).  With it, whatever the pipeline
    scores is the pose model's and the pipeline's own accuracy, with detector errors
    taken out; ``python -m realtime.bench.evaluate_pipeline`` uses it to show that the
    pipeline loses nothing against the model alone.  People with fewer than
    ``min_visible`` of their joints in view are left out, as the demo's recall does.
    """

    family = "ground-truth"

    def __init__(self, min_visible: float = 0.5, max_persons: int = 16) -> None:
        self.min_visible, self.max_persons = float(min_visible), int(max_persons)

    def detect(self, image: np.ndarray) -> Detections:  # noqa: ARG002 - the image alone has no ground truth
        raise ModelError("the ground-truth detector needs frames with ground truth (--source demo)")

    def detect_frame(self, frame: Any) -> Detections:
        """Boxes of the people of ``frame.ground_truth`` with enough joints in view, larger first."""
        gt = getattr(frame, "ground_truth", None)
        if gt is None:
            raise ModelError("the ground-truth detector needs frames with ground truth (--source demo)")
        people = [p for p in gt.people if float(np.mean(p.visible)) >= self.min_visible]
        if not people:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        boxes = np.stack([p.box for p in people]).astype(np.float32)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-area, kind="stable")[: self.max_persons]
        return Detections(boxes[order], np.ones(len(order), np.float32))

