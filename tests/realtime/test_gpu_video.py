"""The optional GPU video sources and sink (realtime.gpu_video) on a CPU.

NVDEC: a fake ``PyNvVideoCodec`` whose ``SimpleDecoder`` decodes with PyAV into the fake CUDA runtime's
device memory (tests/engines/fake_gpu.py) and hands frames out over DLPack, as the real one does; the
source must give the same BGR frames as ``FileSource`` and keep each frame's device copy.  NVENC: the
writer refuses cleanly where the encoder does not open, and its code path writes a playable MP4 with a
software codec.  GStreamer: the sequential capture reads a file in order, none dropped.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import cv2
import numpy as np
import pytest

from realtime.gpu_video import CaptureSource, DeviceFrame, NvdecSource, NvencMp4Writer, open_gpu_source
from realtime.sinks import Mp4Writer, SinkError
from realtime.sources import FileSource, SourceError
from tests.engines.fake_gpu import install


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    rng = np.random.default_rng(0)
    with Mp4Writer(path, 25) as w:
        for k in range(7):
            img = np.zeros((64, 96, 3), np.uint8)
            img[:, :, 0] = 40 * (k % 5)  # blue changes per frame, red stays: a swapped channel order shows
            img[10:30, 20:50, 2] = 200
            img += rng.integers(0, 20, img.shape, dtype=np.uint8)
            w.write(img)
    return path


def _fake_nvc(rt):
    """PyNvVideoCodec's SimpleDecoder API (2.x): RGB frames in device memory, __dlpack__ on each."""
    import av

    from engines.device import DeviceArray

    mod = types.ModuleType("PyNvVideoCodec")
    mod.__spec__ = importlib.machinery.ModuleSpec("PyNvVideoCodec", None)
    mod.__version__ = "2.2.4"
    mod.OutputColorType = types.SimpleNamespace(NATIVE=0, RGB=1, RGBP=2)

    class SimpleDecoder:
        def __init__(self, path, gpu_id=0, use_device_memory=True, output_color_type=0, **_):
            assert use_device_memory and output_color_type == mod.OutputColorType.RGB
            with av.open(path) as c:
                self.frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
                rate = c.streams.video[0].average_rate
            self.meta = types.SimpleNamespace(width=self.frames[0].shape[1], height=self.frames[0].shape[0],
                                              average_fps=float(rate), num_frames=len(self.frames))
            self.pos = 0
            self.buffers = []

        def get_stream_metadata(self):
            return self.meta

        def __len__(self):
            return self.meta.num_frames

        def get_batch_frames(self, n):
            out = []
            for img in self.frames[self.pos:self.pos + n]:
                ptr = rt.cudaMalloc(img.nbytes)[1]
                np.ctypeslib.as_array((np.ctypeslib.ctypes.c_ubyte * img.nbytes).from_address(ptr))[:] = \
                    img.reshape(-1)
                self.buffers.append(ptr)
                out.append(DeviceArray(ptr, img.shape, np.uint8, "cuda:0"))
            self.pos += len(out)
            return out

    mod.SimpleDecoder = SimpleDecoder
    return mod


def test_nvdec_source_gives_the_file_sources_frames(monkeypatch, clip) -> None:
    rt = install(monkeypatch)
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", _fake_nvc(rt))
    src = open_gpu_source(f"nvdec:{clip}", max_frames=6)
    assert isinstance(src, NvdecSource) and src.size == (96, 64) and src.fps == 25.0 and src.total == 6
    src.batch = 4  # two batches, the second partial
    got = list(src.frames())
    want = [f.image for f in FileSource(clip, max_frames=6).frames()]
    assert len(got) == 6 and [f.index for f in got] == list(range(6))
    for f, w in zip(got, want):
        assert isinstance(f, DeviceFrame) and f.device_rgb.device.kind == "cuda"
        assert rt.is_device(f.device_rgb.ptr, f.device_rgb.nbytes)
        np.testing.assert_array_equal(f.image, w)  # BGR, like every other source
    assert len(rt.copies("D2H")) == 6  # one download per frame for the host image, nothing else


def test_nvdec_source_without_pynvvideocodec(clip, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # import fails as when it is not installed
    with pytest.raises(SourceError, match="PyNvVideoCodec"):
        NvdecSource(clip)
    with pytest.raises(SourceError, match="no such file"):
        NvdecSource(clip.with_name("missing.mp4"))


def test_capture_source_reads_in_order(clip) -> None:
    src = CaptureSource(str(clip), cv2.CAP_ANY)
    frames = list(src.frames())
    src.close()
    assert [f.index for f in frames] == list(range(7)) and src.dropped == 0
    want = [f.image for f in FileSource(clip).frames()]
    assert all(np.abs(a.image.astype(int) - b.astype(int)).max() <= 2 for a, b in zip(frames, want))
    with pytest.raises(SourceError, match="cannot open"):
        CaptureSource("videotestsrc ! appsink", cv2.CAP_GSTREAMER)


def test_gpu_source_specs(tmp_path) -> None:
    with pytest.raises(SourceError, match="sensor number"):
        open_gpu_source("csi:x")
    with pytest.raises(SourceError, match="no such file"):
        open_gpu_source(f"jetson:{tmp_path / 'none.mp4'}")
    with pytest.raises(SourceError, match="not a GPU source"):
        open_gpu_source("vaapi:x")


def test_nvenc_writer_refuses_cleanly_where_nvenc_does_not_open(tmp_path, monkeypatch) -> None:
    from realtime import gpu_io

    monkeypatch.setattr(gpu_io, "nvenc_pyav", lambda codec="h264_nvenc": gpu_io.GpuIoOption(
        "NVENC", False, "no NVIDIA driver", "an NVIDIA driver"))
    with pytest.raises(SinkError, match="h264_nvenc is not available here: no NVIDIA driver"):
        with NvencMp4Writer(tmp_path / "a.mp4", 25):
            pass
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize("timestamps", [False, True])
def test_nvenc_writer_code_path_with_a_software_codec(tmp_path, clip, timestamps) -> None:
    out = tmp_path / "b.mp4"
    src = [(f.image, f.timestamp) for f in FileSource(clip).frames()]
    with NvencMp4Writer(out, 25, preset="veryfast", codec="libx264", timestamps=timestamps) as w:
        for img, t in src:
            w.write(img[:63, :95], t)  # odd size: padded to even like Mp4Writer
    back = list(FileSource(out).frames())
    assert len(back) == len(src) and back[0].image.shape == (64, 96, 3)
    assert [round(f.timestamp, 3) for f in back] == [round(t, 3) for _, t in src]  # the frames' times kept
