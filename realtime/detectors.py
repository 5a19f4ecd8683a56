"""Person detectors run from ONNX/TensorRT, with our own pre-processing, decode and NMS.

Detector families form a small registry: each knows its input format and how to
turn its raw outputs into :class:`~realtime.types.Detections`.

- ``yolo``: Ultralytics YOLOv8/11 exports: ``images`` float32 NCHW RGB in [0, 1],
  letterboxed (grey 114); one output (N, 4 + classes, anchors) of cx, cy, w, h in
  input pixels and class scores, no NMS in the graph.
- ``ssd``: TensorFlow Object Detection API graphs converted with tf2onnx (e.g. the
  bundled pedestrian SSDLite): uint8 NHWC RGB input, outputs ``num_detections``,
  ``detection_scores``, ``detection_boxes`` (ymin, xmin, ymax, xmax normalised),
  ``detection_classes``; NMS already done in the graph.
"""

from __future__ import annotations

import logging
from typing import Callable

import cv2
import numpy as np

from engines.base import Backend, ModelError
from realtime.types import Detections

log = logging.getLogger(__name__)

__all__ = ["nms", "letterbox", "PersonDetector", "DETECTOR_FAMILIES", "detect_family"]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, most confident first."""
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(-np.asarray(scores), kind="stable")
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
    """Resize keeping aspect into a size x size canvas; returns (canvas, scale, (pad_x, pad_y))."""
    h, w = image.shape[:2]
    s = min(size / w, size / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    px, py = (size - nw) / 2, (size - nh) / 2
    out = np.full((size, size, 3), fill, np.uint8)
    x0, y0 = int(round(px - 0.1)), int(round(py - 0.1))
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, s, (float(x0), float(y0))


def _yolo_pre(frame: np.ndarray, size: int) -> tuple[np.ndarray, tuple]:
    img, s, pad = letterbox(frame, size)
    x = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * (1.0 / 255.0)
    return x, (s, pad)


def _yolo_post(outputs: list[np.ndarray], ctx: tuple, frame_wh: tuple[int, int], person_class: int,
               conf: float, iou: float) -> Detections:
    s, (px, py) = ctx
    out = outputs[0][0]  # (4 + nc, A)
    if out.ndim != 2 or out.shape[0] < 5:
        raise ModelError(f"YOLO output must be (N, 4 + classes, anchors), got {outputs[0].shape}")
    scores = out[4 + person_class]
    m = scores >= conf
    if not m.any():
        return Detections()
    cx, cy, bw, bh = out[0, m], out[1, m], out[2, m], out[3, m]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    boxes = (boxes - [px, py, px, py]) / s
    w, h = frame_wh
    boxes = boxes.clip(0, [w - 1, h - 1, w - 1, h - 1])
    keep = nms(boxes, scores[m], iou)
    return Detections(boxes[keep], scores[m][keep])


def _ssd_pre(frame: np.ndarray, size: int) -> tuple[np.ndarray, tuple]:
    img = cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img[:, :, ::-1][None]), ()


def _ssd_post(outputs: list[np.ndarray], ctx: tuple, frame_wh: tuple[int, int], person_class: int,
              conf: float, iou: float) -> Detections:
    named = {}
    for o in outputs:
        if o.ndim == 3:
            named["boxes"] = o
        elif o.ndim == 1:
            named["num"] = o
    rest = [o for o in outputs if o.ndim == 2]
    if "boxes" not in named or "num" not in named or len(rest) != 2:
        raise ModelError("SSD outputs must be num_detections, detection_scores, detection_boxes, detection_classes")
    scores, classes = rest  # in the graph's output order: scores before classes
    n = int(named["num"][0])
    b = named["boxes"][0, :n]
    sc, cl = scores[0, :n], classes[0, :n]
    m = (np.round(cl).astype(int) == person_class) & (sc >= conf)
    w, h = frame_wh
    boxes = np.stack([b[m, 1] * w, b[m, 0] * h, b[m, 3] * w, b[m, 2] * h], 1).clip(0, [w - 1, h - 1, w - 1, h - 1])
    keep = nms(boxes, sc[m], iou)  # the graph's NMS is class-wise; this also merges duplicates
    return Detections(boxes[keep], sc[m][keep])


# family -> (pre, post, default person class)
DETECTOR_FAMILIES: dict[str, tuple[Callable, Callable, int]] = {
    "yolo": (_yolo_pre, _yolo_post, 0),
    "ssd": (_ssd_pre, _ssd_post, 1),
}


def detect_family(backend: Backend) -> str:
    """The detector family from metadata, else from the model's inputs/outputs."""
    fam = backend.metadata.get("mca.detector_family")
    if fam:
        if fam not in DETECTOR_FAMILIES:
            raise ModelError(f"{backend.path}: unknown detector family {fam!r}; known: {', '.join(DETECTOR_FAMILIES)}")
        return fam
    kind = backend.metadata.get("mca.kind")
    if kind == "pose":
        raise ModelError(f"{backend.path} is a pose model, not a person detector")
    names = {o.name for o in backend.outputs}
    if any("detection_boxes" in n for n in names):
        return "ssd"
    if len(backend.outputs) == 1 and len(backend.outputs[0].shape) == 3 and backend.input.dtype == np.float32:
        return "yolo"
    raise ModelError(f"{backend.path} does not look like a YOLO or SSD person detector")


class PersonDetector:
    """``detect(image) -> Detections``: people in a BGR frame, most confident first."""

    def __init__(self, backend: Backend, conf: float = 0.35, iou: float = 0.5, max_persons: int = 16) -> None:
        self.backend = backend
        self.family = detect_family(backend)
        self._pre, self._post, default_cls = DETECTOR_FAMILIES[self.family]
        self.person_class = int(backend.metadata.get("mca.person_class", default_cls))
        shape = backend.input.shape
        size = backend.metadata.get("mca.input_size")
        if size is None:
            dims = [d for d in (shape[2], shape[3]) if d] if self.family == "yolo" else [d for d in shape[1:3] if d]
            size = dims[0] if dims else (640 if self.family == "yolo" else 300)
        self.input_size = int(size)
        self.conf, self.iou, self.max_persons = conf, iou, max_persons

    def detect(self, image: np.ndarray) -> Detections:
        x, ctx = self._pre(image, self.input_size)
        outputs = self.backend.run(x)
        det = self._post(outputs, ctx, (image.shape[1], image.shape[0]), self.person_class, self.conf, self.iou)
        return det.top(self.max_persons)
