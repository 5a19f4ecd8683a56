"""Frame sources: webcam, video file, directory, RTSP/HTTP stream, GStreamer pipeline, synthetic demo.

``open_source(spec)`` returns a :class:`VideoSource` whose ``frames()`` generator
yields :class:`~realtime.types.Frame`.  Files are read losslessly and in order
(corrupt frames are skipped and counted); live sources are read by a grabber
thread that keeps only the newest frame, so latency never builds up, and the
frames it overwrote are counted as dropped.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from realtime.orientation import apply_orientation, display_orientation
from realtime.types import Frame

log = logging.getLogger(__name__)

__all__ = ["SourceError", "VideoSource", "open_source", "IMAGE_EXTS", "VIDEO_EXTS"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".gif",
              ".h264", ".264", ".h265", ".hevc"}  # a .gif (maybe animated) is read as a video, as on its own
# raw elementary streams: no container timestamps, the demuxer assumes 25 fps; the real rate is in the stream
RAW_FORMATS = {"h264", "hevc", "m4v", "mpegvideo", "cavsvideo", "vc1", "obu", "av1"}
IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH  # applies EXIF orientation; keeps 16-bit depth


def _reason(e: BaseException) -> str:
    """FFmpeg's or the OS's message without the raw errno ('[Errno 1094995529] ...')."""
    return (getattr(e, "strerror", None) or str(e).splitlines()[0] or type(e).__name__)[:160]


class SourceError(RuntimeError):
    """A source that cannot be opened or read."""


def _to_bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img


def _opencv_has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if "GStreamer" in line:
            return "YES" in line.upper()
    return False


class VideoSource(abc.ABC):
    """Base class: ``frames()`` yields frames; counters say what happened."""

    is_live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.fps: float = 25.0
        self.size: tuple[int, int] = (0, 0)
        self.total: int | None = None
        self.time_base: Fraction | None = None  # frames keep their own timestamps in this base (video files)
        self.dropped = 0
        self.corrupt = 0
        self._stop = threading.Event()

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends or ``stop()`` is called."""

    def stop(self) -> None:
        """Ask ``frames()`` to end after the current frame (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSource(VideoSource):
    """A video file decoded with PyAV: exact frame order, corrupt frames skipped and counted."""

    def __init__(self, path: Path, max_frames: int | None = None, pace: bool = False) -> None:
        super().__init__(str(path))
        import av

        self.path, self.max_frames = path, max_frames
        # pace: hand frames out no faster than their timestamps, as a camera would (to try a live setup on a file)
        self.pace = pace
        self._io = threading.Lock()  # held while FFmpeg reads; close() must not free the container under a read
        try:
            self._container = av.open(str(path))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise SourceError(f"cannot open video {path}: {_reason(e)}") from None
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise SourceError(f"{path} has no video stream")
        self._stream = streams[0]
        # where the sound comes from for the output MP4 (a regular file only: a pipe cannot be read twice)
        self.audio_path = path if self._container.streams.audio and path.is_file() else None
        ctx = self._stream.codec_context
        if ctx is None:  # PyAV has no decoder for this codec
            self._container.close()
            raise SourceError(f"unsupported codec in {path}: this FFmpeg build has no decoder for its video stream")
        self._stream.thread_type = "AUTO"
        self.time_base = self._stream.time_base  # the output keeps each frame's timestamp in it
        rate = self._stream.average_rate or self._stream.guessed_rate
        if self._container.format.name in RAW_FORMATS and ctx.framerate:  # from the SPS, not the 25 assumed
            rate = ctx.framerate
        self.fps = float(rate) if rate and 0 < float(rate) <= 1000 else 25.0
        self.size = (ctx.width, ctx.height)
        self.total = int(self._stream.frames) or self._estimate_total()
        if max_frames:
            self.total = min(self.total, max_frames) if self.total else max_frames

    def _estimate_total(self) -> int | None:
        """Frame count from the duration where the container does not store it (for the progress bar only)."""
        s = self._stream
        if s.duration and s.time_base:
            seconds = float(s.duration * s.time_base)
        elif self._container.duration:
            seconds = self._container.duration / 1e6
        else:
            return None
        return max(1, int(round(seconds * self.fps)))

    def frames(self) -> Iterator[Frame]:
        index = 0
        packets = self._container.demux(self._stream)
        clock: tuple[float, float] | None = None  # (wall time, stream time) of the first frame, when pacing
        while not self._stop.is_set():
            with self._io:  # not held across the yield: a consumer that stops may close at once
                try:
                    images = self._read_packet(packets)
                except StopIteration:
                    break
            for img, t in images:
                ts = t if t is not None else index / self.fps
                if self.pace:
                    clock = clock or (time.perf_counter(), ts)
                    if self._stop.wait(max(0.0, clock[0] + ts - clock[1] - time.perf_counter())):
                        return
                yield Frame(index, img, ts)
                index += 1
                if self.max_frames and index >= self.max_frames:
                    return
        listed = int(self._stream.frames or 0)
        if not self._stop.is_set() and listed and index < 0.98 * listed:
            log.warning("%s ended after %d of the %d frames its index lists: the file is truncated or damaged",
                        self.path.name, index, listed)

    def _read_packet(self, packets: Iterator) -> list[tuple[np.ndarray, float | None]]:
        """Demux and decode one packet: its frames as BGR with their times (corrupt ones skipped, counted)."""
        import av

        try:
            packet = next(packets)
        except av.error.FFmpegError as e:
            self.corrupt += 1
            log.warning("unreadable packet in %s skipped: %s", self.path.name, str(e)[:100])
            return []
        try:
            decoded = packet.decode()
        except av.error.FFmpegError as e:
            self.corrupt += 1
            log.debug("corrupt frame skipped: %s", e)
            return []
        out = []
        for vf in decoded:
            try:
                img = apply_orientation(vf.to_ndarray(format="bgr24"), *display_orientation(vf))
                out.append((img, float(vf.time) if vf.time is not None else None))
            except (av.error.FFmpegError, ValueError):
                self.corrupt += 1
        return out

    def close(self) -> None:
        """Close the file; one blocked in a read (a stalled pipe) is left to the process's exit."""
        super().close()
        if self._io.acquire(timeout=0.5):
            try:
                self._container.close()
            finally:
                self._io.release()
        else:
            log.debug("%s is blocked in a read; not closed", self.path)


class ImageDirSource(VideoSource):
    """Images (and videos, one after another) from a directory sorted by name, or one image file."""

    def __init__(self, path: Path, fps: float = 10.0, max_frames: int | None = None) -> None:
        super().__init__(str(path))
        if path.is_dir():
            media = IMAGE_EXTS | VIDEO_EXTS
            self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in media)
        else:
            self.files = [path]
        if not self.files:
            raise SourceError(f"{path} holds no images or videos ({', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
        self.fps, self.max_frames = fps, max_frames
        imgs = [p for p in self.files if p.suffix.lower() in IMAGE_EXTS]
        self.total = len(imgs) if len(imgs) == len(self.files) else None
        self._current: FileSource | None = None
        first = cv2.imread(str(imgs[0]), IMREAD_FLAGS) if imgs else None
        if first is None and not path.is_dir():
            raise SourceError(f"cannot read image {path}")
        self.size = (first.shape[1], first.shape[0]) if first is not None else (0, 0)

    def frames(self) -> Iterator[Frame]:
        """Each image is a frame of its own and each video a run of frames, every one a new scene
        (nothing carries over from one file to the next); frames name the file they came from."""
        index = 0
        for p in self.files:
            if self._stop.is_set():
                return
            if p.suffix.lower() in VIDEO_EXTS:
                try:
                    src = FileSource(p)
                except SourceError as e:
                    self.corrupt += 1
                    log.warning("video skipped: %s", e)
                    continue
                self._current = src
                try:
                    for i, f in enumerate(src.frames()):
                        if self._stop.is_set():
                            return
                        yield Frame(index, f.image, index / self.fps, file=p.name, new_scene=i == 0)
                        index += 1
                        if self.max_frames and index >= self.max_frames:
                            return
                finally:
                    self._current = None
                    self.corrupt += src.corrupt
                    src.close()
                continue
            img = cv2.imread(str(p), IMREAD_FLAGS)
            if img is None:
                self.corrupt += 1
                log.warning("unreadable image skipped: %s", p.name)
                continue
            if img.dtype != np.uint8:
                img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(img.max())))
            yield Frame(index, _to_bgr(img), index / self.fps, file=p.name, new_scene=True)
            index += 1
            if self.max_frames and index >= self.max_frames:
                return

    def stop(self) -> None:
        super().stop()
        current = self._current
        if current is not None:
            current.stop()


class LiveSource(VideoSource):
    """A webcam, stream URL or GStreamer pipeline read by OpenCV in a grabber thread (newest frame wins)."""

    is_live = True

    def __init__(self, spec: str | int, api: int = cv2.CAP_ANY, max_frames: int | None = None,
                 open_timeout: float = 10.0) -> None:
        super().__init__(str(spec))
        params = []
        if not isinstance(spec, int) and api != cv2.CAP_GSTREAMER:  # network streams: do not hang on a dead host
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(open_timeout * 1000)]
        self.cap = cv2.VideoCapture(spec, api, params)
        if not self.cap.isOpened():
            self.cap.release()
            what = "camera" if isinstance(spec, int) else "stream"
            hint = ""
            if api == cv2.CAP_GSTREAMER and not _opencv_has_gstreamer():
                hint = " (this OpenCV build has no GStreamer support; on a Jetson use the JetPack OpenCV)"
            raise SourceError(f"cannot open {what} {spec!r}{hint}")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
        self.size = (int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.max_frames = max_frames
        self._latest: tuple[int, np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._eof = False
        self._grabbed = 0
        self._thread = threading.Thread(target=self._grab, name="grabber", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, img = self.cap.read()
            if not ok or img is None:
                failures += 1
                if failures > 50:
                    break
                time.sleep(0.01)
                continue
            failures = 0
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1  # the consumer had not taken the previous frame yet
                self._latest = (self._grabbed, _to_bgr(img), time.perf_counter())
                self._grabbed += 1
                self._cond.notify()
        with self._cond:
            self._eof = True
            self._cond.notify()

    def frames(self) -> Iterator[Frame]:
        index, t0 = 0, None
        while not self._stop.is_set():
            with self._cond:
                while self._latest is None and not self._eof and not self._stop.is_set():
                    self._cond.wait(timeout=0.5)
                if self._latest is None:
                    return
                _, img, t = self._latest
                self._latest = None
            t0 = t if t0 is None else t0
            yield Frame(index, img, t - t0, captured=t)
            index += 1
            if self.max_frames and index >= self.max_frames:
                return

    def close(self) -> None:
        """Stop the grabber and release the device; one blocked in a read is left to the process's exit."""
        super().close()
        self._thread.join(timeout=2.0)
        if self._thread.is_alive():  # releasing under a read in progress would crash
            log.debug("%s is blocked in a read; not released", self.name)
        else:
            self.cap.release()


class DemoSource(VideoSource):
    """A synthetic multi-person video rendered on the fly, with ground truth on every frame."""

    def __init__(self, num_frames: int = 250, size: tuple[int, int] = (1280, 720), people: int = 4,
                 fps: float = 25.0, seed: int = 0, joint_set: str = "mpii16") -> None:
        super().__init__("demo")
        from mca.data.synthetic import VideoRenderer

        self.renderer = VideoRenderer(joint_set, size, fps, people, seed)
        self.fps, self.size, self.total = fps, size, num_frames

    def frames(self) -> Iterator[Frame]:
        for i in range(self.total or 0):
            if self._stop.is_set():
                return
            scene = self.renderer.frame(i)
            yield Frame(i, scene.image, i / self.fps, ground_truth=scene)


def open_source(spec: str, max_frames: int | None = None, demo_people: int = 4,
                demo_size: tuple[int, int] = (1280, 720), demo_seed: int = 0, fps: float | None = None,
                joint_set: str = "mpii16", pace: bool = False) -> VideoSource:
    """Open ``spec``: ``demo``, a camera index, a file, a directory, a URL, or a GStreamer pipeline.

    ``pace`` reads a video file at its own frame rate instead of as fast as it decodes (other sources ignore it).
    """
    s = spec.strip()
    if s.startswith(("nvdec:", "jetson:", "csi:")):  # GPU decode (optional, detected): realtime.gpu_video
        from realtime.gpu_video import open_gpu_source  # imported here: gpu_video imports this module

        return open_gpu_source(s, max_frames)
    if s == "demo":
        return DemoSource(max_frames or 250, demo_size, demo_people, fps or 25.0, demo_seed, joint_set)
    if s.isdigit():
        return LiveSource(int(s), max_frames=max_frames)
    if "!" in s:
        return LiveSource(s, cv2.CAP_GSTREAMER, max_frames=max_frames)
    if "://" in s:
        if s.startswith("file://"):
            s = s[7:]
        else:
            return LiveSource(s, cv2.CAP_FFMPEG, max_frames=max_frames)
    if s == "-":  # standard input, e.g. `cat clip.mp4 | python -m realtime.run --source -`
        s = "/dev/stdin"
    p = Path(s).expanduser()
    if not p.exists():
        raise SourceError(f"no such file or directory: {p}")
    if p.is_dir():
        return ImageDirSource(p, fps or 10.0, max_frames)
    if p.suffix.lower() in IMAGE_EXTS:
        return ImageDirSource(p, fps or 10.0, max_frames)
    return FileSource(p, max_frames, pace=pace)
