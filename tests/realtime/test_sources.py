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
