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


_MS = Fraction(1, 1000)


def _fps_fraction(fps: float) -> Fraction:
    if not fps or fps <= 0 or not np.isfinite(fps):
        fps = 25.0
    return Fraction(fps).limit_denominator(1001)


def _reason(e: BaseException) -> str:
    """An OS or FFmpeg error as the user reads it: 'No space left on device', not the errno repr."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (w, h), keeping its aspect, centred on black."""
    import cv2

    w, h = size
    ih, iw = image.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, min(w, int(round(iw * s)))), max(1, min(h, int(round(ih * s))))
    out = np.zeros((h, w, 3), np.uint8)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class Mp4Writer:
    """Browser-playable H.264 (libx264, yuv420p, index first) with odd sizes padded to even.

    The first frame sets the size; a later frame of another size (a folder of mixed
    photos) is letterboxed into it rather than ending the run.

    Files keep the source frame rate (constant, frame ``n`` at ``n / fps``).  With
    ``timestamps=True`` (live sources, where stale frames are dropped) each frame is
    stamped with its capture time in milliseconds instead, so the video plays at the
    speed things happened rather than fast-forwarding over the drops.
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 23, preset: str = "veryfast",
                 timestamps: bool = False) -> None:
        self.path = Path(path)
        self.fps = _fps_fraction(fps)
        self.crf, self.preset, self.timestamps = crf, preset, timestamps
        self._container: Any = None
        self._stream: Any = None
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._last_pts = -1
        self._resized = False
        self._failed = False  # a write into the container failed: never touch its muxer again

    def __enter__(self) -> "Mp4Writer":
        import av

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # faststart: the index goes first, so browsers start playing before the whole file arrives
            self._container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        except (OSError, ValueError, av.error.FFmpegError) as e:
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
        if self.timestamps:
            self._stream.time_base = _MS
            self._stream.codec_context.time_base = _MS
        self._size = (w, h)

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
        """Encode one BGR frame (``timestamp`` in seconds is used only with ``timestamps=True``)."""
        import av

        if self._container is None:
            raise SinkError(f"{self.path} is not open (use Mp4Writer as a context manager)")
        if self._failed:
            raise SinkError(f"cannot write {self.path}: an earlier write failed")
        h, w = image.shape[:2]
        if self._stream is None:
            self._open_stream(w, h)
        if (w, h) != self._size:  # e.g. a folder of photos of different sizes: fit into the first size
            if not self._resized:
                log.warning("frame size changed from %s to %s; later frames are fitted (letterboxed) into the "
                            "first size", self._size, (w, h))
                self._resized = True
            image = _fit(image, self._size)
            h, w = image.shape[:2]
        if w & 1 or h & 1:
            image = np.pad(image, ((0, h & 1), (0, w & 1), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        if self.timestamps:
            pts = int(round(1000 * timestamp)) if timestamp is not None else self._last_pts + 1
            pts = max(pts, self._last_pts + 1)  # strictly increasing, as the muxer requires
            frame.pts, frame.time_base, self._last_pts = pts, _MS, pts
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _mux(self, packets: Any) -> None:
        """Mux ``packets``; a failed write (disk full, I/O error) marks the container failed.

        FFmpeg's muxer is left half-written by a failed write (its header may never have
        been finished); muxing into it again, as flushing the encoder would, crashes the
        process, so after a failure nothing more goes into it.
        """
        import av

        try:
            for packet in packets:
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as e:
            self._failed = True
            raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None

    def close(self) -> None:
        """Flush the encoder and write the index (the file is playable after this).

        After a failed write the container is closed without flushing (see ``_mux``);
        a failure while writing the index is a :class:`SinkError`.
        """
        import av

        container = self._container
        if container is None:
            return
        try:
            if self._stream is not None and not self._failed:
                self._mux(self._stream.encode())
        finally:
            self._container = None
            try:
                container.close()
            except (OSError, av.error.FFmpegError) as e:
                if not self._failed:  # else the first failure is the one reported
                    self._failed = True
                    raise SinkError(f"cannot finish {self.path}: {_reason(e)}") from None

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CocoJsonWriter:
    """COCO keypoint *results* (a list of detections), streamed to disk and moved into place on close.

    ``image_id`` is the frame index; COCO-17 models give standard results, other joint
    sets the same layout with their own keypoint count.  Results go to a temporary
    file as they come (memory stays flat over a days-long stream); ``close`` ends the
    list and renames it, so a reader never sees half a file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.count = 0
        self._f: Any = None

    def __enter__(self) -> "CocoJsonWriter":
        try:  # fail now, not after the whole video, when the place cannot be written
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self._tmp.open("w")
        except OSError as e:
            raise SinkError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._f.write("[")
        return self

    @property
    def _tmp(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".tmp")

    def write(self, frame_index: int, poses: Poses) -> None:
        """Add one result per person: keypoints [x, y, score, ...] in frame pixels, score, bbox, track id."""
        if self._f is None:
            raise SinkError(f"{self.path} is not open (use CocoJsonWriter as a context manager)")
        for i in range(len(poses)):
            kp = np.concatenate([poses.keypoints[i], poses.scores[i][:, None]], 1)
            x0, y0, x1, y1 = (float(v) for v in poses.boxes[i])
            result = {
                "image_id": int(frame_index), "category_id": 1,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "score": round(float(poses.box_scores[i] * max(float(poses.scores[i].mean()), 1e-3)), 4),
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "track_id": int(poses.track_ids[i]),
            }
            self._f.write(("," if self.count else "") + json.dumps(result))
            self.count += 1

    def close(self) -> None:
        """End the list and move the file into place."""
        if self._f is None:
            return
        self._f.write("]")
        self._f.close()
        self._f = None
        os.replace(self._tmp, self.path)

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonlWriter:
    """One JSON object per frame: frame index, time, people with track ids, boxes, keypoints, scores."""

    def __init__(self, path: str | os.PathLike, joint_names: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.joint_names = joint_names
        self._f: Any = None

    def __enter__(self) -> "JsonlWriter":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("w", buffering=1)  # line-buffered: complete lines even if killed
        except OSError as e:
            raise SinkError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._f.write(json.dumps({"joint_names": list(self.joint_names)}) + "\n")
        return self

    def write(self, frame_index: int, timestamp: float, poses: Poses) -> None:
        """One line for the frame (also for frames without people)."""
        people = [{"track_id": int(poses.track_ids[i]), "box": [round(float(v), 2) for v in poses.boxes[i]],
                   "box_score": round(float(poses.box_scores[i]), 4),
                   "keypoints": np.round(poses.keypoints[i], 2).tolist(),
                   "scores": np.round(poses.scores[i], 3).tolist()} for i in range(len(poses))]
        line = {"frame": int(frame_index), "time": round(float(timestamp), 4), "people": people}
        self._f.write(json.dumps(line) + "\n")

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
        """Show ``image``; False once the user asked to quit (a GUI-less OpenCV disables the window)."""
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
