"""GPU video routes are probed, not assumed: each reports whether it works and why, here and on a GPU."""

from __future__ import annotations

import pytest

from realtime import gpu_io


def test_every_route_reports_a_reason_and_a_way_to_get_it() -> None:
    opts = gpu_io.detect_all()
    assert [o.name for o in opts][:3] == ["NVDEC (PyNvVideoCodec)", "NVDEC (h264_cuvid via PyAV)",
                                          "NVENC (h264_nvenc via PyAV)"]
    for o in opts:
        assert o.detail and o.how
        assert o.line().startswith("yes" if o.available else "no")


def test_a_codec_the_ffmpeg_build_lacks_is_reported_as_missing() -> None:
    assert not gpu_io.nvenc_pyav("no_such_nvenc").available
    assert "has no no_such_cuvid" in gpu_io.nvdec_ffmpeg("no_such_cuvid").detail


def test_nvdec_needs_a_cuda_device(monkeypatch) -> None:
    monkeypatch.setattr(gpu_io, "_cuda_devices", lambda: (0, "no driver"))
    monkeypatch.setattr(gpu_io, "_av_codecs", lambda: {"h264_cuvid"})
    o = gpu_io.nvdec_ffmpeg()
    assert not o.available and "no CUDA device (no driver)" in o.detail
    monkeypatch.setattr(gpu_io, "_cuda_devices", lambda: (1, ""))
    assert gpu_io.nvdec_ffmpeg().available


def test_jetson_pipelines() -> None:
    csi = gpu_io.jetson_csi_pipeline(1, 1920, 1080, 60)
    assert csi.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080")
    assert csi.count("!") >= 5 and "format=BGR !" in csi
    f = gpu_io.jetson_file_pipeline("/videos/walk.mp4", "h265")
    assert 'location="/videos/walk.mp4"' in f and "h265parse ! nvv4l2decoder" in f
    with pytest.raises(ValueError):
        gpu_io.jetson_file_pipeline("a ! b.mp4")
    with pytest.raises(ValueError):
        gpu_io.jetson_csi_pipeline(width=0)


def test_cli_lists_the_routes(capsys) -> None:
    assert gpu_io.main([]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(gpu_io.detect_all())
