"""Sources: live sources keep only the newest frame and count the drops; files are lossless and ordered."""

from __future__ import annotations

import time

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
