"""Outputs: H.264 MP4 (PyAV), COCO results JSON, per-frame JSON Lines, an on-screen window.

Every sink is a context manager and is closed on any exit (errors, Ctrl-C), so
what was processed before a fault is written and playable.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from realtime.types import Poses

log = logging.getLogger(__name__)

__all__ = ["Mp4Writer", "CocoJsonWriter", "JsonlWriter", "Window", "SinkError", "check_output_path"]


class SinkError(RuntimeError):
    """An output that cannot be written (bad path, codec missing ...)."""


_MS = Fraction(1, 1000)
_CLOCK = Fraction(1, 90000)  # divides the usual frame rates (24, 25, 30000/1001, 50, 60 ...) exactly


def _fps_fraction(fps: float) -> Fraction:
    if not fps or fps <= 0 or not np.isfinite(fps):
        fps = 25.0
    return Fraction(fps).limit_denominator(1001)


class _CheckedFile:
    """The MP4's file for FFmpeg's I/O callbacks: the first OS error is kept, not raised into FFmpeg.

    FFmpeg's MP4 muxer ignores most write errors (a full disk showed only when the
    index was written at the end); here the writer looks at ``error`` after each packet
    and stops at once.  After an error every call is a no-op, so FFmpeg's own clean-up
    neither crashes nor prints tracebacks.
    """

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None
        self.name = f.name  # FFmpeg reopens the file by name to move the index first (faststart)

    def _do(self, op: str, *args: Any) -> Any:
        if self.error is None:
            try:
                return getattr(self.f, op)(*args)
            except OSError as e:
                self.error = e
        if op == "write":
            return len(args[0])
        return b"" if op == "read" else 0

    def write(self, data: bytes) -> int:
        return self._do("write", data)

    def read(self, n: int = -1) -> bytes:
        return self._do("read", n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._do("seek", offset, whence)

    def tell(self) -> int:
        return self._do("tell")

    def flush(self) -> None:
        self._do("flush")

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:
            self.error = self.error or e


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

    Without a time base, frame ``n`` is at ``n / fps`` (constant rate: image folders, the
    demo).  With ``time_base`` (a video file's own) each frame keeps its timestamp in
    that base, so a variable-frame-rate source keeps its timing and a constant one its
    exact rate.  With ``timestamps=True`` (live sources, where stale frames are
    dropped) each frame is stamped with its capture time in milliseconds, so the video
    plays at the speed things happened rather than fast-forwarding over the drops.
    Timestamps start at zero.
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 23, preset: str = "veryfast",
                 timestamps: bool = False, time_base: Fraction | None = None) -> None:
        self.path = Path(path)
        self.fps = _fps_fraction(fps)
        self.crf, self.preset, self.timestamps = crf, preset, timestamps
        # the source's timestamps are kept on a 1/90000 s clock (exact for the usual rates), snapped to the
        # constant-rate grid when within one tick of the source's own time base of it (ms-rounded MKV times)
        self._tolerance = float(time_base) + 1e-6 if time_base and not timestamps else None
        self.time_base = _MS if timestamps else (_CLOCK if time_base else None)
        self._t0: float | None = None
        self._container: Any = None
        self._stream: Any = None
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._last_pts = -1
        self._resized = False
        self._failed = False  # a write into the container failed: never touch its muxer again
        self._file: _CheckedFile | None = None

    def __enter__(self) -> "Mp4Writer":
        import av

        check_output_path(self.path)  # the index is written first (faststart): a seekable, regular file
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = _CheckedFile(open(self.path, "w+b"))  # noqa: SIM115 - closed in close()
            # faststart: the index goes first, so browsers start playing before the whole file arrives
            self._container = av.open(self._file, mode="w", format="mp4", options={"movflags": "+faststart"})
        except (OSError, ValueError, av.error.FFmpegError) as e:
            if self._file is not None:
                self._file.close()
            raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None
        return self

    def _open_stream(self, w: int, h: int) -> None:
        try:
            self._stream = self._container.add_stream("libx264", rate=self.fps)
        except Exception as e:  # noqa: BLE001 - PyAV raises codec-specific errors
            raise SinkError(f"H.264 encoder (libx264) unavailable in this PyAV build: {e}") from None
        self._stream.width, self._stream.height = w + (w & 1), h + (h & 1)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        if self.time_base is not None:
            self._stream.time_base = self.time_base
            self._stream.codec_context.time_base = self.time_base
        self._size = (w, h)

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
        """Encode one BGR frame (``timestamp`` in seconds is used with a time base or ``timestamps=True``)."""
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
        if self.time_base is not None:
            if timestamp is None:
                pts = self._last_pts + 1
            else:
                self._t0 = timestamp if self._t0 is None else self._t0
                t = timestamp - self._t0
                slot = round(t * self.fps)
                if self._tolerance is not None and abs(t - slot / self.fps) <= self._tolerance:
                    t = slot / self.fps  # on the constant-rate grid: exact rate for a constant-rate source
                pts = int(round(t / self.time_base))
            pts = max(pts, self._last_pts + 1)  # strictly increasing, as the muxer requires
            frame.pts, frame.time_base, self._last_pts = pts, self.time_base, pts
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
                if self._file.error is not None:
                    raise self._file.error
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
            error: BaseException | None = None
            try:
                container.close()
            except (OSError, av.error.FFmpegError) as e:
                error = e
            error = self._file.error or error
            self._file.close()
            if error is not None and not self._failed:  # else the first failure is the one reported
                self._failed = True
                raise SinkError(f"cannot finish {self.path}: {_reason(error)}") from None

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_output_path(path: str | os.PathLike, streams: bool = False) -> None:
    """Raise :class:`SinkError` unless ``path`` is a regular file or a new path (with ``streams``: also a FIFO or a
    character device such as /dev/stdout, for outputs written line by line).

    A device node or FIFO must never be renamed over (JSON) nor seeked in (MP4).
    """
    p = Path(path)
    try:
        st = p.stat()  # follows symlinks: what would be written
    except FileNotFoundError:
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise SinkError(f"cannot write {p}: {parent} is not a directory") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SinkError(f"cannot write {p}: {parent} is not writable") from None
        return
    except OSError as e:
        raise SinkError(f"cannot write {p}: {_reason(e)}") from None
    if stat.S_ISREG(st.st_mode):
        if not os.access(p, os.W_OK):
            raise SinkError(f"cannot write {p}: permission denied")
        return
    if stat.S_ISDIR(st.st_mode):
        raise SinkError(f"output {p} is a directory; give a file name")
    if streams and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        return
    kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or \
        stat.S_ISBLK(st.st_mode) else "not a regular file"
    raise SinkError(f"cannot write {p}: it is {kind}; give a regular file or a new path")


class _TextSink:
    """A text output whose write errors (disk full, EIO) become one :class:`SinkError`, after which it is closed."""

    path: Path
    _f: Any

    def _write(self, text: str) -> None:
        try:
            self._f.write(text)
        except OSError as e:
            self._abandon()
            raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None

    def _abandon(self) -> None:
        f, self._f = self._f, None
        try:
            f.close()
        except OSError:  # the buffered rest cannot be written either
            pass


class CocoJsonWriter(_TextSink):
    """COCO keypoint *results* (a list of detections), streamed to disk and moved into place on close.

    ``image_id`` is the frame index; COCO-17 models give standard results, other joint
    sets the same layout with their own keypoint count.  Results go to a temporary
    file as they come (memory stays flat over a days-long stream); ``close`` ends the
    list and renames it, so a reader never sees half a file.  Only a regular file or a
    new path is replaced (never a device node or FIFO); a symlink's target is.  A list
    that cannot be finished (disk full) is removed: the path keeps what it held before.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.count = 0
        self._f: Any = None

    def __enter__(self) -> "CocoJsonWriter":
        check_output_path(self.path)
        try:  # fail now, not after the whole video, when the place cannot be written
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self._tmp.open("w")
        except OSError as e:
            raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None
        self._write("[")
        return self

    @property
    def _target(self) -> Path:
        return Path(os.path.realpath(self.path))

    @property
    def _tmp(self) -> Path:
        t = self._target
        return t.with_name(t.name + ".tmp")

    def write(self, frame_index: int, poses: Poses, file: str | None = None) -> None:
        """Add one result per person: keypoints [x, y, score, ...] in frame pixels, score, bbox, track id
        (and ``file``, the image or video the frame came from, for folder sources)."""
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
            if file is not None:
                result["file"] = file
            self._write(("," if self.count else "") + json.dumps(result))
            self.count += 1

    def close(self) -> None:
        """End the list and move the file into place (a list that cannot be finished is removed)."""
        try:
            if self._f is None:
                return  # never opened, or abandoned after a failed write
            self._write("]")
            f, self._f = self._f, None
            try:
                f.close()
                check_output_path(self._target)  # it may have become a FIFO or a device meanwhile
                os.replace(self._tmp, self._target)
            except OSError as e:
                raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None
        finally:
            self._tmp.unlink(missing_ok=True)

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonlWriter(_TextSink):
    """One JSON object per frame: frame index, time, people with track ids, boxes, keypoints, scores.

    Lines are complete as they are written (line-buffered), so what was written before a
    fault or a kill is readable; a FIFO or /dev/stdout may be given to stream them.
    """

    def __init__(self, path: str | os.PathLike, joint_names: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.joint_names = joint_names
        self._f: Any = None

    def __enter__(self) -> "JsonlWriter":
        check_output_path(self.path, streams=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("w", buffering=1)  # line-buffered: complete lines even if killed
        except OSError as e:
            raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None
        self._write(json.dumps({"joint_names": list(self.joint_names)}) + "\n")
        return self

    def write(self, frame_index: int, timestamp: float, poses: Poses, file: str | None = None) -> None:
        """One line for the frame (also for frames without people); ``file`` names where it came from."""
        if self._f is None:
            raise SinkError(f"{self.path} is not open (use JsonlWriter as a context manager)")
        people = [{"track_id": int(poses.track_ids[i]), "box": [round(float(v), 2) for v in poses.boxes[i]],
                   "box_score": round(float(poses.box_scores[i]), 4),
                   # in float64: a float32 rounded to 2 decimals still prints as 1.2300000190734863
                   "keypoints": np.round(poses.keypoints[i].astype(np.float64), 2).tolist(),
                   "scores": np.round(poses.scores[i].astype(np.float64), 3).tolist()} for i in range(len(poses))]
        line: dict[str, Any] = {"frame": int(frame_index), "time": round(float(timestamp), 4)}
        if file is not None:
            line["file"] = file
        line["people"] = people
        self._write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError as e:
                raise SinkError(f"cannot write {self.path}: {_reason(e)}") from None
            finally:
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


def open_mp4_writer(path: str | Path, fps: float, encoder: str = "libx264", **kw: Any) -> "Mp4Writer":
    """The MP4 writer for ``encoder``: libx264 (PyAV's FFmpeg, everywhere) or ``h264_nvenc`` (NVENC, where PyAV's
    FFmpeg has it; probed when opened, a SinkError naming it where not)."""
    if encoder == "libx264":
        return Mp4Writer(path, fps, **kw)
    from realtime.gpu_video import NvencMp4Writer  # imported here: gpu_video imports this module

    return NvencMp4Writer(path, fps, codec=encoder, **kw)
