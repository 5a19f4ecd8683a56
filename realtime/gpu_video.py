"""GPU video decode and encode as optional sources and sinks (same interface as ``realtime.sources`` /
``realtime.sinks``); :mod:`realtime.gpu_io` says which of them this machine has.

- :class:`NvdecSource` (``nvdec:FILE``): NVDEC through NVIDIA's PyNvVideoCodec ``SimpleDecoder``,
  interleaved RGB decoded into device memory.  Each frame is taken by
  :meth:`engines.device.DeviceArray.from_dlpack` without a copy and kept on the frame as
  ``device_rgb`` (for a chain that starts on the device); the host BGR image the pipeline draws on
  is one download per frame.
- :class:`CaptureSource` (``jetson:FILE``, ``csi:N``): an OpenCV capture read in order, for GStreamer
  pipelines on a Jetson (:func:`realtime.gpu_io.jetson_file_pipeline`: ``nvv4l2decoder`` into NVMM;
  :func:`realtime.gpu_io.jetson_csi_pipeline`: ``nvarguscamerasrc``); files are read without
  dropping frames, cameras through ``realtime.sources.LiveSource`` (newest frame wins).
- :class:`NvencMp4Writer` (``--encoder h264_nvenc``): the annotated MP4 encoded by NVENC through
  PyAV's FFmpeg, otherwise exactly :class:`realtime.sinks.Mp4Writer`.

None of them is needed: each is probed and a missing one is a :class:`SourceError` / :class:`SinkError`
naming what is missing.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from realtime.sinks import Mp4Writer, SinkError
from realtime.sources import LiveSource, SourceError, VideoSource
from realtime.types import Frame

log = logging.getLogger(__name__)

__all__ = ["DeviceFrame", "NvdecSource", "CaptureSource", "NvencMp4Writer", "open_gpu_source", "GPU_SOURCE_PREFIXES"]

GPU_SOURCE_PREFIXES = ("nvdec:", "jetson:", "csi:")


@dataclass
class DeviceFrame(Frame):
    """A frame that also has its pixels on the GPU: ``device_rgb`` is an (H, W, 3) uint8 RGB
    :class:`engines.device.DeviceArray` (valid while the frame is alive)."""

    device_rgb: Any = None


class NvdecSource(VideoSource):
    """A video file decoded by NVDEC (PyNvVideoCodec), frames in device memory and as host BGR."""

    def __init__(self, path: str | Path, max_frames: int | None = None, gpu_id: int = 0, batch: int = 8) -> None:
        super().__init__(f"nvdec:{path}")
        self.path, self.max_frames, self.batch = Path(path), max_frames, max(1, int(batch))
        if not self.path.is_file():
            raise SourceError(f"no such file: {self.path}")
        try:
            nvc = importlib.import_module("PyNvVideoCodec")
        except Exception as e:  # noqa: BLE001 - not installed, or no driver to load it
            raise SourceError(f"NVDEC source needs PyNvVideoCodec (pip install pynvvideocodec on a machine "
                              f"with an NVIDIA GPU): {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
                              ) from None
        try:
            self._dec = nvc.SimpleDecoder(str(self.path), gpu_id=gpu_id, use_device_memory=True,
                                          output_color_type=nvc.OutputColorType.RGB)
            meta = self._dec.get_stream_metadata()
        except Exception as e:  # noqa: BLE001 - PyNvVideoCodec raises plain Exceptions
            raise SourceError(f"NVDEC cannot open {self.path}: {str(e).splitlines()[0][:160]}") from None
        fps = float(getattr(meta, "average_fps", 0) or 0)
        self.fps = fps if 0 < fps <= 1000 else 25.0
        self.size = (int(meta.width), int(meta.height))
        self.total = len(self._dec) or None
        if max_frames:
            self.total = min(self.total, max_frames) if self.total else max_frames

    def frames(self) -> Iterator[Frame]:
        from engines.device import DeviceArray, download

        index = 0
        while not self._stop.is_set():
            batch = self._dec.get_batch_frames(self.batch)
            if not batch:
                return
            for f in batch:
                dev = DeviceArray.from_dlpack(f)
                if dev.ndim != 3 or dev.shape[2] != 3 or dev.dtype != np.uint8:
                    raise SourceError(f"NVDEC gave a {dev.dtype}{list(dev.shape)} frame, not (H, W, 3) uint8 RGB")
                bgr = np.ascontiguousarray(download(dev)[:, :, ::-1])
                yield DeviceFrame(index, bgr, index / self.fps, device_rgb=dev)
                index += 1
                if self.max_frames and index >= self.max_frames:
                    return

    def close(self) -> None:
        super().close()
        self._dec = None


class CaptureSource(VideoSource):
    """An OpenCV capture (e.g. a GStreamer pipeline) read frame by frame, in order, none dropped."""

    def __init__(self, spec: str, api: int = cv2.CAP_GSTREAMER, max_frames: int | None = None) -> None:
        super().__init__(spec)
        self.max_frames = max_frames
        self.cap = cv2.VideoCapture(spec, api)
        if not self.cap.isOpened():
            self.cap.release()
            hint = ""
            if api == cv2.CAP_GSTREAMER and "GStreamer:                   YES" not in cv2.getBuildInformation():
                hint = " (this OpenCV has no GStreamer; on a Jetson use JetPack's OpenCV)"
            raise SourceError(f"cannot open {spec!r}{hint}")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps <= 1000 else 25.0
        self.size = (int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = min(n, max_frames) if n > 0 and max_frames else (n if n > 0 else max_frames)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while not self._stop.is_set():
            ok, img = self.cap.read()
            if not ok or img is None:
                return
            if img.ndim == 2 or img.shape[2] != 3:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_BGRA2BGR)
            yield Frame(index, np.ascontiguousarray(img), index / self.fps)
            index += 1
            if self.max_frames and index >= self.max_frames:
                return

    def close(self) -> None:
        super().close()
        self.cap.release()


def open_gpu_source(spec: str, max_frames: int | None = None) -> VideoSource:
    """``nvdec:FILE`` (PyNvVideoCodec), ``jetson:FILE`` (GStreamer nvv4l2decoder), ``csi:N`` (nvarguscamerasrc)."""
    from realtime.gpu_io import jetson_csi_pipeline, jetson_file_pipeline

    kind, _, rest = spec.partition(":")
    if kind == "nvdec":
        return NvdecSource(rest, max_frames)
    if kind == "jetson":
        p = Path(rest).expanduser()
        if not p.is_file():
            raise SourceError(f"no such file: {p}")
        codec = "h265" if p.suffix.lower() in (".h265", ".hevc") else "h264"
        return CaptureSource(jetson_file_pipeline(str(p), codec), cv2.CAP_GSTREAMER, max_frames)
    if kind == "csi":
        if not rest.isdigit():
            raise SourceError(f"csi:N needs a sensor number, got {spec!r}")
        return LiveSource(jetson_csi_pipeline(int(rest)), cv2.CAP_GSTREAMER, max_frames=max_frames)
    raise SourceError(f"not a GPU source: {spec!r} (valid: {', '.join(p + '...' for p in GPU_SOURCE_PREFIXES)})")


class NvencMp4Writer(Mp4Writer):
    """:class:`realtime.sinks.Mp4Writer` with a hardware encoder (``h264_nvenc`` by default).

    ``crf`` becomes NVENC's constant-quality ``cq`` (same scale for H.264); ``preset`` is NVENC's
    (p1 fastest .. p7 best).  The encoder is probed on entry, so a machine without NVENC fails
    with one :class:`SinkError` line before any frame is processed.
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 23, preset: str = "p4", timestamps: bool = False,
                 time_base: Any = None, codec: str = "h264_nvenc") -> None:
        super().__init__(path, fps, crf, preset, timestamps, time_base)
        self.codec = codec

    def __enter__(self) -> "NvencMp4Writer":
        from realtime.gpu_io import nvenc_pyav

        if self.codec.endswith("_nvenc"):
            opt = nvenc_pyav(self.codec)
            if not opt.available:
                raise SinkError(f"{self.codec} is not available here: {opt.detail} ({opt.how})")
        super().__enter__()
        return self

    def _open_stream(self, w: int, h: int) -> None:
        """As :meth:`Mp4Writer._open_stream`, with this writer's codec and its options."""
        try:
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
        except Exception as e:  # noqa: BLE001 - PyAV raises codec-specific errors
            raise SinkError(f"encoder {self.codec} unavailable in this PyAV build: {e}") from None
        self._stream.width, self._stream.height = w + (w & 1), h + (h & 1)
        self._stream.pix_fmt = "yuv420p"
        if self.codec.endswith("_nvenc"):
            self._stream.options = {"preset": self.preset, "rc": "vbr", "cq": str(self.crf), "b:v": "0"}
        else:
            self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        if self.time_base is not None:
            self._stream.time_base = self.time_base
            self._stream.codec_context.time_base = self.time_base
        self._size = (w, h)
