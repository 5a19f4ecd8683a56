"""Crop people (batched affine warps) and estimate their poses (batched inference + decode)."""

from __future__ import annotations

import json
import logging

import numpy as np

from engines.base import Backend, ModelError
from mca import heatmaps as H
from realtime.types import Crops, Detections, Poses

log = logging.getLogger(__name__)

__all__ = ["PoseModelInfo", "Cropper", "PoseEstimator"]


class PoseModelInfo:
    """What the pipeline needs to know about a pose model, read from its metadata."""

    def __init__(self, backend: Backend) -> None:
        meta = backend.metadata
        kind = meta.get("mca.kind")
        if kind != "pose":
            what = "a person detector" if kind == "detector" else "not an mca-pose model (no mca.kind=pose metadata)"
            raise ModelError(f"{backend.path} is {what}; --pose needs a model from python -m engines.export")
        try:
            self.input_size = int(meta["mca.input_size"])
            self.heatmap_size = int(meta["mca.heatmap_size"])
            self.flip_index = tuple(json.loads(meta["mca.flip_index"]))
            self.joint_names = tuple(json.loads(meta["mca.joint_names"]))
            self.skeleton = tuple(tuple(e) for e in json.loads(meta["mca.skeleton"]))
        except (KeyError, ValueError) as e:
            raise ModelError(f"{backend.path}: incomplete pose metadata ({e})") from None
        self.joint_set = meta.get("mca.joint_set", "mpii16")
        self.config = meta.get("mca.config", "?")
        names = [o.name for o in backend.outputs]
        if "heatmaps" not in names:
            raise ModelError(f"{backend.path}: no 'heatmaps' output")
        self.heatmap_index = names.index("heatmaps")
        self.attention_index = names.index("holistic_attention") if "holistic_attention" in names else None

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


class Cropper:
    """``crop(image, detections) -> Crops``: one affine warp per person into the model's input."""

    def __init__(self, input_size: int, heatmap_size: int, padding: float = H.DEFAULT_PADDING) -> None:
        self.input_wh = (input_size, input_size)
        self.heatmap_wh = (heatmap_size, heatmap_size)
        self.padding = padding

    def crop(self, image: np.ndarray, detections: Detections) -> Crops:
        n = len(detections)
        s = self.input_wh[0]
        out = np.empty((n, s, s, 3), np.uint8)
        tfs = []
        for i, box in enumerate(detections.boxes):
            b = box.astype(np.float64)
            if b[2] - b[0] < 1 or b[3] - b[1] < 1:  # degenerate: grow to one pixel
                b = np.array([b[0], b[1], b[0] + max(1.0, b[2] - b[0]), b[1] + max(1.0, b[3] - b[1])])
            t = H.CropTransform.from_box(b, self.input_wh, self.heatmap_wh, self.padding)
            out[i] = H.warp_crop(image, t)
            tfs.append(t)
        return Crops(out, tfs, detections)


class PoseEstimator:
    """``estimate(crops) -> Poses``: batched inference, heatmap decode, back to frame pixels."""

    def __init__(self, backend: Backend, max_batch: int = 16, flip_test: bool = False, refine: str = "quarter") -> None:
        self.backend = backend
        self.info = PoseModelInfo(backend)
        self.max_batch, self.flip_test, self.refine = max_batch, flip_test, refine

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outs = self.backend.run(batch)
        hm = outs[self.info.heatmap_index]
        att = outs[self.info.attention_index] if self.info.attention_index is not None else None
        return hm, att

    def estimate(self, crops: Crops) -> Poses:
        n = len(crops)
        k = self.info.num_joints
        if n == 0:
            return Poses.empty(k)
        hms, atts = [], []
        for i in range(0, n, self.max_batch):
            chunk = crops.images[i:i + self.max_batch]
            if self.flip_test:
                hm = H.flip_test(lambda b: self._infer(b)[0], chunk, self.info.flip_index, channels_last=True)
                att = None
            else:
                hm, att = self._infer(chunk)
            hms.append(hm)
            if att is not None:
                atts.append(att[:, 0])
        heat = np.concatenate(hms)
        coords, conf = H.decode_heatmaps(heat, refine=self.refine)
        kps = np.empty((n, k, 2), np.float32)
        for i, t in enumerate(crops.transforms):
            kps[i] = H.apply_affine(t.heatmap_to_frame, coords[i])
        attention = np.concatenate(atts) if atts else None
        return Poses(kps, np.clip(conf, 0, 1), crops.detections.boxes.copy(), crops.detections.scores.copy(),
                     attention=attention)
