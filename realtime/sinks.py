"""Outputs: H.264 MP4 (PyAV), COCO results JSON, per-frame JSON Lines, an on-screen window.

Every sink is a context manager and is closed on any exit (errors, Ctrl-C), so
what was processed before a fault is written and playable.
"""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from realtime.types import Poses

log = logging.getLogger(__name__)

__all__ = ["Mp4Writer", "CocoJsonWriter", "JsonlWriter", "Window", "SinkError"]


class SinkError(RuntimeError):
    """An output that cannot be written (bad path, codec missing ...)."""


def _fps_fraction(fps: float) -> Fraction:
    if not fps or fps <= 0 or not np.isfinite(fps):
        fps = 25.0
    return Fraction(fps).limit_denominator(1001)


class Mp4Writer:
    """Browser-playable H.264 (libx264, yuv420p) at the source frame rate; odd sizes are padded to even."""

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 23, preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.fps = _fps_fraction(fps)
        self.crf, self.preset = crf, preset
        self._container: Any = None
        self._stream: Any = None
        self.frames = 0
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> "Mp4Writer":
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # faststart: the index goes first, so browsers start playing before the whole file arrives
            self._container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        except (OSError, ValueError) as e:
            raise SinkError(f"cannot write {self.path}: {e}") from None
        return self

    def _open_stream(self, w: int, h: int) -> None:
        try:
            self._stream = self._container.add_stream("libx264", rate=self.fps)
        except Exception as e:  # noqa: BLE001 - PyAV raises codec-specific errors
            raise SinkError(f"H.264 encoder (libx264) unavailable in this PyAV build: {e}") from None
        self._stream.width, self._stream.height = w + (w & 1), h + (h & 1)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._size = (w, h)

    def write(self, image: np.ndarray) -> None:
        import av

        h, w = image.shape[:2]
        if self._stream is None:
            self._open_stream(w, h)
        if (w, h) != self._size:
            raise SinkError(f"frame size changed from {self._size} to {(w, h)} mid-stream")
        if w & 1 or h & 1:
            image = np.pad(image, ((0, h & 1), (0, w & 1), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CocoJsonWriter:
    """COCO keypoint *results* (a list of detections), written atomically on close.

    ``image_id`` is the frame index; COCO-17 models give standard results, other joint
    sets the same layout with their own keypoint count.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.results: list[dict] = []

    def __enter__(self) -> "CocoJsonWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame_index: int, poses: Poses) -> None:
        for i in range(len(poses)):
            kp = np.concatenate([poses.keypoints[i], poses.scores[i][:, None]], 1)
            x0, y0, x1, y1 = (float(v) for v in poses.boxes[i])
            self.results.append({
                "image_id": int(frame_index), "category_id": 1,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "score": round(float(poses.box_scores[i] * max(float(poses.scores[i].mean()), 1e-3)), 4),
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "track_id": int(poses.track_ids[i]),
            })

    def close(self) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.results))
        os.replace(tmp, self.path)

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonlWriter:
    """One JSON object per frame: frame index, time, people with track ids, boxes, keypoints, scores."""

    def __init__(self, path: str | os.PathLike, joint_names: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.joint_names = joint_names
        self._f: Any = None

    def __enter__(self) -> "JsonlWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("w")
        self._f.write(json.dumps({"joint_names": list(self.joint_names)}) + "\n")
        return self

    def write(self, frame_index: int, timestamp: float, poses: Poses) -> None:
        people = [{"track_id": int(poses.track_ids[i]), "box": [round(float(v), 2) for v in poses.boxes[i]],
                   "box_score": round(float(poses.box_scores[i]), 4),
                   "keypoints": np.round(poses.keypoints[i], 2).tolist(),
                   "scores": np.round(poses.scores[i], 3).tolist()} for i in range(len(poses))]
        self._f.write(json.dumps({"frame": int(frame_index), "time": round(float(timestamp), 4), "people": people}) + "\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Window:
    """An OpenCV window; ``show`` returns False when the user pressed q/Esc."""

    def __init__(self, title: str = "mca-pose") -> None:
        self.title = title
        self.ok = True

    def __enter__(self) -> "Window":
        return self

    def show(self, image: np.ndarray) -> bool:
        import cv2

        if not self.ok:
            return True
        try:
            cv2.imshow(self.title, image)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as e:
            log.warning("cannot open a window (%s); continuing without one", str(e).splitlines()[0][:120])
            self.ok = False
            return True
        return key not in (ord("q"), 27)

    def __exit__(self, *exc: Any) -> None:
        if self.ok:
            try:
                import cv2

                cv2.destroyWindow(self.title)
            except Exception:  # noqa: BLE001 - headless builds have no GUI at all
                pass
