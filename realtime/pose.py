"""Crop people (batched affine warps) and estimate their poses (batched inference + decode).

Cropping and decoding share one :class:`mca.heatmaps.CropTransform` per person, the
same geometry training and evaluation use, so keypoints land back on the frame to
the sub-pixel.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from mca import heatmaps as H
from realtime.models import Backend, ModelError, submit
from realtime.types import Crops, Detections, Poses

log = logging.getLogger(__name__)

__all__ = ["PoseModelInfo", "Cropper", "PoseEstimator"]


class PoseModelInfo:
    """What the pipeline needs to know about a pose model, read from its metadata."""

    def __init__(self, backend: Backend) -> None:
        meta = backend.metadata
        kind = meta.get("mca.kind")
        if kind != "pose":
            what = ("a person detector (give it as --detector)" if kind == "detector"
                    else "not an mca-pose model (no mca.kind=pose metadata)")
            raise ModelError(f"{backend.path} is {what}; --pose needs a model from python -m engines.export")
        try:
            self.input_size = int(meta["mca.input_size"])
            self.heatmap_size = int(meta["mca.heatmap_size"])
            self.flip_index = tuple(int(i) for i in json.loads(meta["mca.flip_index"]))
            self.joint_names = tuple(json.loads(meta["mca.joint_names"]))
            self.skeleton = tuple(tuple(int(v) for v in e) for e in json.loads(meta["mca.skeleton"]))
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"{backend.path}: incomplete pose metadata ({e})") from None
        layout = (meta.get("mca.input_layout", "NHWC"), meta.get("mca.input_dtype", "uint8"),
                  meta.get("mca.input_channels", "BGR"))
        if layout != ("NHWC", "uint8", "BGR"):
            raise ModelError(f"{backend.path}: input is {'/'.join(layout)}; the pipeline feeds NHWC/uint8/BGR crops "
                             "(re-export with python -m engines.export)")
        if len(self.flip_index) != len(self.joint_names):
            raise ModelError(f"{backend.path}: flip index and joint names differ in length")
        try:
            self.crop_padding = float(meta.get("mca.crop_padding", H.DEFAULT_PADDING))
        except ValueError:
            raise ModelError(f"{backend.path}: mca.crop_padding is not a number") from None
        self.joint_set = meta.get("mca.joint_set", "mpii16")
        self.config = meta.get("mca.config", "?")
        names = [o.name for o in backend.outputs]
        if "heatmaps" not in names:
            raise ModelError(f"{backend.path}: no 'heatmaps' output")
        self.heatmap_index = names.index("heatmaps")
        self._check_against_graph(backend)
        self.attention_index = names.index("holistic_attention") if "holistic_attention" in names else None
        self.part_attention_index = names.index("part_attention") if "part_attention" in names else None

    def _check_against_graph(self, backend: Backend) -> None:
        """The metadata must describe the graph: a wrong size gives silently wrong keypoints, a wrong skeleton
        or flip index a crash deep in drawing or flip-testing."""
        k = self.num_joints
        where = f"{backend.path}: metadata"
        if sorted(self.flip_index) != list(range(k)):
            raise ModelError(f"{where} mca.flip_index is not a permutation of the {k} joints")
        if any(not (0 <= a < k and 0 <= b < k) for a, b in self.skeleton):
            raise ModelError(f"{where} mca.skeleton names a joint outside 0..{k - 1}")
        shape = tuple(backend.inputs[0].shape) if backend.inputs else ()
        if len(shape) == 4 and any(isinstance(d, int) and d != self.input_size for d in shape[1:3]):
            raise ModelError(f"{where} mca.input_size is {self.input_size} but the graph's input is "
                             f"{shape[1]}x{shape[2]}")
        out = tuple(backend.outputs[self.heatmap_index].shape)
        if len(out) == 4:
            if isinstance(out[1], int) and out[1] != k:
                raise ModelError(f"{where} names {k} joints but the graph gives {out[1]} heatmaps")
            if any(isinstance(d, int) and d != self.heatmap_size for d in out[2:]):
                raise ModelError(f"{where} mca.heatmap_size is {self.heatmap_size} but the graph's heatmaps are "
                                 f"{out[2]}x{out[3]}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


class Cropper:
    """``crop(image, detections) -> Crops``: one affine warp per person into the model's input."""

    def __init__(self, input_size: int, heatmap_size: int, padding: float = H.DEFAULT_PADDING) -> None:
        self.input_wh = (input_size, input_size)
        self.heatmap_wh = (heatmap_size, heatmap_size)
        self.padding = padding

    def transform(self, box: np.ndarray) -> H.CropTransform:
        """The crop geometry of one box."""
        b = np.asarray(box, np.float64).copy()
        # a degenerate box (a detector's zero-width sliver) is grown to one pixel
        b[2], b[3] = max(b[2], b[0] + 1.0), max(b[3], b[1] + 1.0)
        return H.CropTransform.from_box(b, self.input_wh, self.heatmap_wh, self.padding)

    def regions(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy: the part of the frame each box's crop covers, where its keypoints can land (the heatmap's
        extent, half a heatmap pixel beyond its centres)."""
        hw, hh = self.heatmap_wh
        corners = np.array([[-0.5, -0.5], [hw - 0.5, -0.5], [-0.5, hh - 0.5], [hw - 0.5, hh - 0.5]])
        out = np.zeros((len(boxes), 4))
        for i, box in enumerate(np.asarray(boxes).reshape(-1, 4)):
            xy = H.apply_affine(self.transform(box).heatmap_to_frame[None], corners[None])[0]
            out[i] = [*xy.min(0), *xy.max(0)]
        return out

    def crop(self, image: np.ndarray, detections: Detections) -> Crops:
        """The batch (N, S, S, 3) uint8 BGR of every detected person, with each crop's transform."""
        n = len(detections)
        s = self.input_wh[0]
        out = np.empty((n, s, s, 3), np.uint8)
        tfs = []
        for i, box in enumerate(detections.boxes):
            t = self.transform(box)
            out[i] = H.warp_crop(image, t)
            tfs.append(t)
        return Crops(out, tfs, detections)


class PoseEstimator:
    """``estimate(crops) -> Poses``: batched inference, heatmap decode, back to frame pixels."""

    def __init__(self, backend: Backend, max_batch: int = 16, flip_test: bool = False, refine: str = "quarter",
                 attention: bool = True) -> None:
        self.backend = backend
        self.info = PoseModelInfo(backend)
        self.max_batch, self.flip_test, self.refine = max(1, max_batch), flip_test, refine
        self.attention = attention  # keep the attention maps (drawing them); off saves the copies

    def _split(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        info = self.info
        hol = outs[info.attention_index] if self.attention and info.attention_index is not None else None
        part = outs[info.part_attention_index] if self.attention and info.part_attention_index is not None else None
        return outs[info.heatmap_index], hol, part

    def estimate(self, crops: Crops) -> Poses:
        """Keypoints (frame pixels) and per-joint confidences of every cropped person."""
        n, k = len(crops), self.info.num_joints
        if n == 0:
            return Poses.empty(k)
        chunks = [crops.images[i:i + self.max_batch] for i in range(0, n, self.max_batch)]
        if self.flip_test:
            parts = [self._flip_pass(c) for c in chunks]
        else:
            pending = [submit(self.backend, c) for c in chunks]  # an async backend queues every chunk first
            parts = [self._split(p.result()) for p in pending]
        heat = np.concatenate([p[0] for p in parts])
        hol = np.concatenate([p[1][:, 0] for p in parts]) if all(p[1] is not None for p in parts) else None
        part = np.concatenate([p[2] for p in parts]) if all(p[2] is not None for p in parts) else None
        return self.estimate_from_heatmaps(crops, heat, hol, part)

    def _flip_pass(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Heatmaps averaged with the mirror image's (flipped back, left and right joints swapped), in one
        batch of 2N; the attention maps drawn are the unmirrored pass's."""
        n = len(chunk)
        both = np.ascontiguousarray(np.concatenate([chunk, chunk[:, :, ::-1]]))
        heat, hol, part = self._split(self.backend.run(both))
        avg = 0.5 * (heat[:n] + H.flip_heatmaps(heat[n:], self.info.flip_index))
        return avg, None if hol is None else hol[:n], None if part is None else part[:n]

    def estimate_from_heatmaps(self, crops: Crops, heat: np.ndarray, attention: np.ndarray | None = None,
                               part_attention: np.ndarray | None = None) -> Poses:
        """Decode the model's heatmaps of ``crops`` back to frame pixels (the step after inference)."""
        k = self.info.num_joints
        if len(crops) == 0:
            return Poses.empty(k)
        if heat.shape[1] != k:
            raise ModelError(f"{self.backend.path}: {heat.shape[1]} heatmaps but {k} joint names")
        hs = self.info.heatmap_size
        if heat.shape[2:] != (hs, hs):  # a graph with dynamic dims, checked on its first output
            raise ModelError(f"{self.backend.path}: metadata mca.heatmap_size is {hs} but the model gave "
                             f"{heat.shape[2]}x{heat.shape[3]} heatmaps")
        coords, conf = H.decode_heatmaps(heat, refine=self.refine)
        mats = np.stack([t.heatmap_to_frame for t in crops.transforms])
        kps = H.apply_affine(mats, coords).astype(np.float32)
        return Poses(kps, np.clip(conf, 0, 1), crops.detections.boxes.copy(), crops.detections.scores.copy(),
                     attention=attention, part_attention=part_attention, transforms=list(crops.transforms))
