"""Optional GPU video decode and encode: what this machine has, detected (``python -m realtime.gpu_io``).

Each route is optional and probed, never assumed:

- **NVDEC via PyNvVideoCodec** (``pip install pynvvideocodec``; desktops and servers): frames
  decoded into device memory, exposed through DLPack / ``__cuda_array_interface__``, so
  :meth:`engines.device.DeviceArray.from_dlpack` takes them without a copy and the chain starts
  on the device (no upload at all).  Frames are NV12 (or RGB in PyNvVideoCodec 2.x), so the
  chain needs a colour-conversion prologue in front of its BGR graphs (phase 2).
- **NVDEC via PyAV's FFmpeg** (``h264_cuvid``/``hevc_cuvid``): decode offloaded to the GPU, frames
  returned to host memory; a drop-in for the current file source where the FFmpeg build has it.
- **GStreamer on Jetson** (``nvv4l2decoder`` for files, ``nvarguscamerasrc`` for CSI cameras):
  needs an OpenCV built with GStreamer (JetPack's; pip's has none). :func:`jetson_csi_pipeline`
  and :func:`jetson_file_pipeline` give pipelines for ``--source``.
- **NVENC via PyAV** (``h264_nvenc``): the annotated MP4 encoded on the GPU; probed by opening
  a small encoder (compiled-in is not enough: it needs the driver).

The sources and the sink themselves are in :mod:`realtime.gpu_video` (``nvdec:FILE``,
``jetson:FILE``, ``csi:N``; :class:`realtime.gpu_video.NvencMp4Writer`).
"""

from __future__ import annotations

import argparse
import fractions
import importlib.util
import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["GpuIoOption", "nvdec_pynvvideocodec", "nvdec_ffmpeg", "nvenc_pyav", "gstreamer_nvidia", "detect_all",
           "jetson_csi_pipeline", "jetson_file_pipeline", "describe", "main"]


@dataclass(frozen=True)
class GpuIoOption:
    """One GPU video route: whether it works here, why (not), and how to get it."""

    name: str
    available: bool
    detail: str
    how: str

    def line(self) -> str:
        return f"{'yes' if self.available else 'no ':3}  {self.name}: {self.detail}" + (
            "" if self.available else f" ({self.how})")


def _cuda_devices() -> tuple[int, str]:
    try:
        from engines import cuda

        return cuda.device_count(), ""
    except Exception as e:  # noqa: BLE001 - no cuda-python, no driver, no device: all mean "none"
        return 0, str(e).splitlines()[0][:120] if str(e) else type(e).__name__


def nvdec_pynvvideocodec() -> GpuIoOption:
    """NVDEC into device memory through NVIDIA's PyNvVideoCodec."""
    how = "pip install pynvvideocodec on a machine with an NVIDIA GPU and driver"
    if importlib.util.find_spec("PyNvVideoCodec") is None:
        return GpuIoOption("NVDEC (PyNvVideoCodec)", False, "PyNvVideoCodec is not installed", how)
    try:
        import PyNvVideoCodec as nvc
    except Exception as e:  # noqa: BLE001 - a broken install says why on import
        return GpuIoOption("NVDEC (PyNvVideoCodec)", False, f"import failed: {str(e)[:120]}", how)
    n, why = _cuda_devices()
    version = getattr(nvc, "__version__", "?")
    if not n:
        return GpuIoOption("NVDEC (PyNvVideoCodec)", False, f"PyNvVideoCodec {version}, but no CUDA device "
                           f"({why or 'none visible'})", how)
    return GpuIoOption("NVDEC (PyNvVideoCodec)", True, f"PyNvVideoCodec {version}, {n} CUDA device(s)", how)


def _av_codecs() -> set[str]:
    try:
        import av

        return set(av.codecs_available)
    except ImportError:
        return set()


def nvdec_ffmpeg(codec: str = "h264_cuvid") -> GpuIoOption:
    """NVDEC through PyAV's FFmpeg (``*_cuvid`` decoders; frames come back to host memory)."""
    how = "an FFmpeg/PyAV build with CUVID and an NVIDIA driver"
    if codec not in _av_codecs():
        return GpuIoOption(f"NVDEC ({codec} via PyAV)", False, f"PyAV's FFmpeg has no {codec}", how)
    n, why = _cuda_devices()
    if not n:
        return GpuIoOption(f"NVDEC ({codec} via PyAV)", False, f"{codec} compiled in, but no CUDA device "
                           f"({why or 'none visible'})", how)
    return GpuIoOption(f"NVDEC ({codec} via PyAV)", True, f"{codec} compiled in, {n} CUDA device(s)", how)


def nvenc_pyav(codec: str = "h264_nvenc") -> GpuIoOption:
    """NVENC through PyAV: compiled in and a 64x64 encoder actually opens."""
    how = "an FFmpeg/PyAV build with NVENC and an NVIDIA driver"
    if codec not in _av_codecs():
        return GpuIoOption(f"NVENC ({codec} via PyAV)", False, f"PyAV's FFmpeg has no {codec}", how)
    import av

    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = fractions.Fraction(1, 25)
        ctx.open()
        ctx.close()
    except Exception as e:  # noqa: BLE001 - FFmpeg reports a missing driver/GPU as various errors
        return GpuIoOption(f"NVENC ({codec} via PyAV)", False,
                           f"{codec} compiled in but does not open here ({type(e).__name__}: {str(e)[:100]})", how)
    return GpuIoOption(f"NVENC ({codec} via PyAV)", True, f"{codec} opens", how)


def gstreamer_nvidia(element: str = "nvv4l2decoder") -> GpuIoOption:
    """A Jetson GStreamer element, usable from OpenCV (needs OpenCV built with GStreamer)."""
    import cv2

    how = "JetPack's OpenCV (built with GStreamer) on a Jetson"
    info = cv2.getBuildInformation()
    has_gst = any("GStreamer:" in ln and "YES" in ln for ln in info.splitlines())
    if not has_gst:
        return GpuIoOption(f"GStreamer {element}", False, "this OpenCV has no GStreamer (pip's builds do not)", how)
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        return GpuIoOption(f"GStreamer {element}", False, "gst-inspect-1.0 not found to check the element", how)
    try:
        found = subprocess.run([inspect, element], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as e:
        return GpuIoOption(f"GStreamer {element}", False, f"gst-inspect-1.0 failed ({e})", how)
    return GpuIoOption(f"GStreamer {element}", found, "element present" if found else "element not installed", how)


def detect_all() -> list[GpuIoOption]:
    """Every GPU video route, probed."""
    return [nvdec_pynvvideocodec(), nvdec_ffmpeg(), nvenc_pyav(), gstreamer_nvidia("nvv4l2decoder"),
            gstreamer_nvidia("nvarguscamerasrc")]


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """A CSI camera into BGR frames through NVMM (give it as ``--source``)."""
    if min(width, height, fps) < 1 or sensor_id < 0:
        raise ValueError("sensor id must be >= 0 and width, height, fps positive")
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM),width={width},height={height},"
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR "
            "! appsink drop=true max-buffers=1")


def jetson_file_pipeline(path: str, codec: str = "h264") -> str:
    """An MP4 decoded by the Jetson's NVDEC (``nvv4l2decoder``) into BGR frames."""
    if codec not in ("h264", "h265"):
        raise ValueError(f"codec must be h264 or h265, got {codec!r}")
    if "!" in path or '"' in path:
        raise ValueError("the path must not contain '!' or '\"' (they would change the pipeline)")
    return (f'filesrc location="{path}" ! qtdemux ! {codec}parse ! nvv4l2decoder ! nvvidconv ! '
            "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink")


def describe() -> str:
    """One paragraph for ``--help`` and the README: the routes and how each is chosen."""
    return ("GPU video (optional, detected; python -m realtime.gpu_io lists them): --source nvdec:FILE decodes "
            "with NVDEC through PyNvVideoCodec (frames also kept in GPU memory); on a Jetson --source jetson:FILE "
            "(GStreamer nvv4l2decoder) and --source csi:N (nvarguscamerasrc), with JetPack's OpenCV; "
            "--encoder h264_nvenc writes the MP4 with NVENC where PyAV's FFmpeg has it and it opens.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m realtime.gpu_io", description=__doc__.split("\n\n")[0],
                                 epilog=describe())
    ap.parse_args(argv)
    for opt in detect_all():
        print(opt.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
