"""tools/readme_pictures.py: people drawn on a grid tile land where the photo's pixels landed, and the grid's
layout."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.types import Poses
from tests.conftest import load_tool


@pytest.fixture(scope="module")
def rp():
    return load_tool("readme_pictures")


@pytest.mark.parametrize("shape,tile", [((300, 900), (400, 300)), ((900, 300), (400, 300)), ((100, 100), (400, 300))])
def test_a_keypoint_follows_its_pixel_onto_the_tile(rp, shape, tile) -> None:
    img = np.zeros((*shape, 3), np.uint8)
    y, x = shape[0] * 2 // 3, shape[1] // 4
    img[y - 4:y + 5, x - 4:x + 5] = 255  # a bright 9x9 square centred on (x, y)
    small, s, off = rp.fit(img, tile)
    assert small.shape == (tile[1], tile[0], 3)
    p = Poses(np.array([[[x, y]]], np.float32), np.ones((1, 1), np.float32), np.array([[x - 4, y - 4, x + 4, y + 4]]),
              np.ones(1))
    q = rp.moved(p, s, off)
    ys, xs = np.nonzero(small[..., 0] > 100)
    assert q.keypoints[0, 0] == pytest.approx((xs.mean(), ys.mean()), abs=0.75)
    b = q.boxes[0]
    assert b[0] <= xs.min() + 1 and b[2] >= xs.max() - 1 and b[1] <= ys.min() + 1 and b[3] >= ys.max() - 1


def test_grid_rows_of_cols_tiles_in_order(rp) -> None:
    tiles = [np.full((2, 3, 3), i, np.uint8) for i in range(1, 6)]
    g = rp.grid(tiles, 2)
    assert g.shape == (6, 6, 3)
    assert g[0, 0, 0] == 1 and g[0, 3, 0] == 2 and g[2, 0, 0] == 3 and g[4, 0, 0] == 5 and g[4, 3, 0] == 0


def test_frame_of_a_missing_or_short_video_is_one_line_and_exit_2(rp, tmp_path, capsys) -> None:  # noqa: ANN001
    """First seen as a PyAV traceback when the MP4 a user named was not there."""
    av = pytest.importorskip("av", reason="reading video frames needs PyAV")
    assert rp.main(["frame", str(tmp_path / "nope.mp4"), "3", "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    video = tmp_path / "two.mp4"
    with av.open(str(video), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for _ in range(2):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")))
        c.mux(s.encode())
    assert rp.main(["frame", str(video), "5", "--out", str(tmp_path / "f.png")]) == 2
    assert "no frame 5" in capsys.readouterr().err and not (tmp_path / "f.png").exists()
    assert rp.main(["frame", str(video), "1", "--out", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").is_file()
