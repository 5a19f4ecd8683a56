"""Sources: live sources keep only the newest frame and count the drops; files are lossless and ordered."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.sources import LiveSource, SourceError, open_source
from tests.realtime.conftest import write_video


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    frames = []
    for i in range(60):
        f = np.zeros((64, 96, 3), np.uint8)
        f[:, :] = (i * 4) % 256  # the frame number, in the grey level
        frames.append(f)
    return write_video(tmp_path_factory.mktemp("v") / "n.mp4", frames, fps=30)


def test_file_source_is_lossless_and_in_order(numbered_video) -> None:
    src = open_source(str(numbered_video))
    levels = [int(np.median(f.image)) for f in src.frames()]
    src.close()
    assert len(levels) == 60
    # Grey level rises with the frame number (video range and compression shift the exact values).
    assert all(b > a for a, b in zip(levels, levels[1:])), levels
    assert src.dropped == 0 and src.corrupt == 0


def test_paced_file_keeps_its_frame_rate_and_stops_at_once(numbered_video) -> None:
    """--pace: frame k is handed out no earlier than k/30 s after the first, every frame kept; stop() ends a wait."""
    src = open_source(str(numbered_video), pace=True)
    t0, late = time.perf_counter(), []
    for f in src.frames():
        late.append(time.perf_counter() - t0 - f.timestamp)
    src.close()
    assert len(late) == 60
    first = late[0]
    assert min(d - first for d in late) >= -0.005, "no frame came before its time"
    assert time.perf_counter() - t0 >= 59 / 30 - 0.01
    src = open_source(str(numbered_video), pace=True)
    frames = src.frames()
    next(frames)
    src.stop()
    assert next(frames, None) is None, "a stop during the wait ends the frames"
    src.close()


def test_live_source_drops_stale_frames_for_a_slow_consumer(numbered_video) -> None:
    src = LiveSource(str(numbered_video), cv2.CAP_FFMPEG)  # a file read as fast as a camera would deliver
    got = []
    for f in src.frames():
        got.append(int(np.median(f.image)))
        time.sleep(0.05)  # a consumer slower than the source
    src.close()
    assert src.dropped > 0
    assert len(got) + src.dropped <= 60 and len(got) < 60
    assert got == sorted(got), "frames still come out in time order"


@pytest.mark.parametrize("spec,match", [("/no/such/file.mp4", "no such file"), ("98", "cannot open camera")])
def test_open_errors(spec: str, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        open_source(spec)


def _mjpeg_avi(path, n: int = 5, size=(64, 48)):
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(n):
        wr.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    wr.release()
    return path


def unsupported_codec_avi(path):
    """An AVI whose video stream claims a FourCC no decoder knows."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        good = _mjpeg_avi(Path(d) / "good.avi")
        path.write_bytes(good.read_bytes().replace(b"MJPG", b"QQQQ").replace(b"mjpg", b"qqqq"))
    return path


def test_unsupported_codec_is_a_source_error(tmp_path) -> None:
    with pytest.raises(SourceError, match="unsupported codec"):
        open_source(str(unsupported_codec_avi(tmp_path / "x.avi")))


def test_directory_of_images_and_videos_in_name_order(tmp_path) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.full((48, 64, 3), 10, np.uint8))
    write_video(d / "b.mp4", [np.full((48, 64, 3), 120, np.uint8)] * 3, fps=10)
    (d / "c.jpg").write_bytes(b"not a jpeg")  # unreadable: skipped and counted
    unsupported_codec_avi(d / "d.avi")  # a video that cannot be decoded: skipped and counted
    cv2.imwrite(str(d / "e.png"), np.full((48, 64), 250, np.uint8))  # grayscale image -> BGR
    (d / "notes.txt").write_text("ignored")
    src = open_source(str(d), fps=5)
    frames = list(src.frames())
    src.close()
    levels = [int(np.median(f.image)) for f in frames]
    assert len(frames) == 5 and levels[0] == 10 and all(100 < v < 140 for v in levels[1:4]) and levels[4] == 250
    assert [f.index for f in frames] == list(range(5)) and frames[1].timestamp == pytest.approx(0.2)
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    assert src.corrupt == 2  # the bad jpeg and the undecodable video


def test_single_image_and_max_frames(tmp_path, numbered_video) -> None:
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((10, 20, 3), np.uint8))
    src = open_source(str(tmp_path / "one.png"))
    assert [f.image.shape for f in src.frames()] == [(10, 20, 3)] and src.total == 1
    src = open_source(str(numbered_video), max_frames=7)
    assert src.total == 7 and len(list(src.frames())) == 7
    src.close()


def _upright(h: int = 120, w: int = 80) -> np.ndarray:
    """A portrait picture whose orientation is plain: a white block top left, a red one bottom right."""
    img = np.full((h, w, 3), 60, np.uint8)
    img[:30, :20] = 255
    img[-30:, -20:] = (0, 0, 255)
    return img


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b).mean()) < 12


@pytest.mark.parametrize("degrees,hflip", [(90, False), (-90, False), (180, False), (90, True)])
def test_video_display_rotation_is_applied(tmp_path, degrees, hflip) -> None:
    """Issue 17.4: a phone video stored sideways with a display-rotation tag comes out upright."""
    import av

    up = _upright()
    stored = np.rot90(up[:, ::-1] if hflip else up, -degrees // 90)  # what display_matrix(degrees, hflip) undoes
    stored = np.ascontiguousarray(stored)
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = stored.shape[1], stored.shape[0], "yuv444p"
        s.options = {"preset": "ultrafast", "qp": "0"}
        s.set_display_rotation(degrees, hflip=hflip)
        for _ in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(stored, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with open_source(str(path)) as src:
        frames = [f.image for f in src.frames()]
    assert len(frames) == 3 and _close(frames[0], up), "upright"


def _jpeg_with_exif_orientation(path: Path, image: np.ndarray, orientation: int) -> Path:
    """A JPEG carrying an EXIF APP1 segment with only the Orientation tag (0x0112)."""
    import struct

    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1,
                                                                                    orientation, 0) + b"\0\0\0\0"
    app1 = b"Exif\x00\x00" + tiff
    data = jpg.tobytes()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    return path


def test_photo_exif_orientation_is_applied(tmp_path) -> None:
    """Issue 17.4: EXIF orientation 6 (stored turned 90 degrees counter-clockwise) comes out upright."""
    up = _upright()
    path = _jpeg_with_exif_orientation(tmp_path / "p.jpg", np.ascontiguousarray(np.rot90(up, 1)), 6)
    with open_source(str(path)) as src:
        frames = [f.image for f in src.frames()]
    assert len(frames) == 1 and _close(frames[0], up)


def test_folder_frames_are_independent_and_named(tmp_path) -> None:
    """Issue 17.5: every photo, and the first frame of every video or .gif, starts a new scene; frames name
    their file; a .gif in a folder is read like a lone .gif (all its frames)."""
    import av

    d = tmp_path / "mixed"
    d.mkdir()
    for name in ("a.png", "c.jpg"):
        cv2.imwrite(str(d / name), _upright())
    with av.open(str(d / "b.gif"), "w", format="gif") as c:
        s = c.add_stream("gif", rate=5)
        s.width, s.height, s.pix_fmt = 64, 48, "rgb8"
        for i in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 60 * i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with open_source(str(d)) as src:
        frames = list(src.frames())
    assert [(f.file, f.new_scene) for f in frames] == [("a.png", True), ("b.gif", True), ("b.gif", False),
                                                       ("b.gif", False), ("c.jpg", True)]
    assert [f.index for f in frames] == list(range(5))


def test_truncated_mp4_warns(models, tmp_path, caplog) -> None:
    """Issue 17.8: an MP4 with its index first, cut in half, gave fewer frames with no word said."""
    from realtime.sinks import Mp4Writer

    path = tmp_path / "full.mp4"
    with Mp4Writer(path, 25) as w:
        for i in range(200):
            w.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(str(cut)) as src:
        n = sum(1 for _ in src.frames())
    assert 0 < n < 200
    assert any("truncated" in r.getMessage() and "200" in r.getMessage() for r in caplog.records)
    from realtime.run import main

    caplog.clear()
    assert main(["--source", str(cut), "--pose", str(models["pose"]), "--detector", str(models["detector"]),
                 "--jsonl", str(tmp_path / "o.jsonl"), "--quiet"]) == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == n + 1, "every readable frame"
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_raw_h264_keeps_its_real_rate(tmp_path) -> None:
    """Issue 17.8: a 10 fps raw H.264 stream was read (and written) at the demuxer's assumed 25 fps."""
    from tests.realtime.conftest import synthetic_frames
    from tests.realtime.test_cli_sources import write_raw_h264

    path = write_raw_h264(tmp_path / "r.h264", synthetic_frames(6, (96, 64)), fps=10)
    with open_source(str(path)) as src:
        times = [f.timestamp for f in src.frames()]
        assert src.fps == pytest.approx(10)
    assert times == pytest.approx([i / 10 for i in range(6)])


def test_open_error_has_no_raw_errno(tmp_path) -> None:
    """Issue 17.8: '[Errno 1094995529] Invalid data ...' said as 'Invalid data found when processing input'."""
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(SourceError) as e:
        open_source(str(bad))
    assert "[Errno" not in str(e.value) and "cannot open video" in str(e.value)
