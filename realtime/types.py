"""Checked dataclasses passed between pipeline stages.

Each validates shapes and dtypes on construction, so a stage that produces
something malformed fails at its own boundary instead of three stages later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mca.heatmaps import CropTransform

__all__ = ["Frame", "Detections", "Crops", "Poses"]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class Frame:
    """One decoded frame (BGR uint8) with its position in the stream."""

    index: int
    image: np.ndarray
    timestamp: float = 0.0  # seconds (stream time for files, wall clock for live sources)
    ground_truth: object | None = None  # the demo source's Scene, for accuracy reports
    captured: float = field(default_factory=time.perf_counter)  # when it was read (for latency)
    file: str | None = None  # the image or video it came from (folder sources), named in the JSON outputs
    new_scene: bool = False  # unrelated to the frame before (a folder's next photo or video): no carry-over

    def __post_init__(self) -> None:
        _check(self.image.dtype == np.uint8 and self.image.ndim == 3 and self.image.shape[2] == 3,
               f"frame must be (H, W, 3) uint8 BGR, got {self.image.shape} {self.image.dtype}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


@dataclass
class Detections:
    """Person boxes in frame pixels (xyxy) with scores, most confident first."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        _check(len(self.boxes) == len(self.scores), "boxes and scores differ in length")
        _check(bool(np.isfinite(self.boxes).all() and np.isfinite(self.scores).all()), "boxes/scores must be finite")
        _check(bool(np.all(self.boxes[:, 2] >= self.boxes[:, 0]) and np.all(self.boxes[:, 3] >= self.boxes[:, 1])),
               "boxes must be x0 <= x1, y0 <= y1")

    def __len__(self) -> int:
        return len(self.scores)

    def top(self, n: int) -> "Detections":
        """The ``n`` most confident (ties keep their order)."""
        order = np.argsort(-self.scores, kind="stable")[:n]
        return Detections(self.boxes[order], self.scores[order])


@dataclass
class Crops:
    """A batch of person crops (uint8 NHWC BGR) and the transform of each."""

    images: np.ndarray
    transforms: list[CropTransform]
    detections: Detections

    def __post_init__(self) -> None:
        _check(self.images.dtype == np.uint8 and self.images.ndim == 4 and self.images.shape[-1] == 3,
               f"crops must be (N, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        _check(len(self.images) == len(self.transforms) == len(self.detections), "crops, transforms and boxes differ")

    def __len__(self) -> int:
        return len(self.transforms)


@dataclass
class Poses:
    """Keypoints in frame pixels, per-joint confidences, boxes and track ids."""

    keypoints: np.ndarray  # (N, K, 2) float32
    scores: np.ndarray  # (N, K) float32
    boxes: np.ndarray  # (N, 4) float32
    box_scores: np.ndarray  # (N,)
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    attention: np.ndarray | None = None  # (N, h, w) holistic attention maps, when the model exports them
    part_attention: np.ndarray | None = None  # (N, K, h, w) per-joint attention maps, when exported
    transforms: list[CropTransform] | None = None  # each person's crop geometry (maps attention back)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, np.float32)
        self.scores = np.asarray(self.scores, np.float32)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.box_scores = np.asarray(self.box_scores, np.float32).reshape(-1)
        n = len(self.keypoints)
        _check(self.keypoints.ndim == 3 and self.keypoints.shape[2] == 2,
               f"keypoints must be (N, K, 2), got {self.keypoints.shape}")
        _check(self.scores.shape == self.keypoints.shape[:2], "scores must be (N, K)")
        _check(len(self.boxes) == n and len(self.box_scores) == n, "boxes/box_scores must have N rows")
        for name, maps, nd in (("attention", self.attention, 3), ("part_attention", self.part_attention, 4)):
            _check(maps is None or (maps.ndim == nd and len(maps) == n), f"{name} must have N rows and {nd} dims")
        _check(self.transforms is None or len(self.transforms) == n, "one transform per person")
        self.track_ids = np.asarray(self.track_ids, np.int64).reshape(-1)
        if len(self.track_ids) != n:
            self.track_ids = np.full(n, -1, np.int64)

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls, num_joints: int) -> "Poses":
        """No people (a frame where nobody was found)."""
        return cls(np.zeros((0, num_joints, 2), np.float32), np.zeros((0, num_joints), np.float32),
                   np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
