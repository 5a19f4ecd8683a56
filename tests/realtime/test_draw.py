"""Drawing: skeletons where the keypoints are, attention maps warped back onto the person's crop."""

from __future__ import annotations

import numpy as np
import pytest

from mca import heatmaps as H
from realtime.draw import Renderer, track_color
from realtime.types import Poses


def _poses_with_attention(frame_wh, box, hot_map_px, k=4, map_size=16, crop=64):
    t = H.CropTransform.from_box(box, (crop, crop), (map_size, map_size))
    hol = np.zeros((1, map_size, map_size), np.float32)
    hol[0, hot_map_px[1], hot_map_px[0]] = 1.0
    part = np.zeros((1, k, map_size, map_size), np.float32)
    part[0, k - 1, hot_map_px[1], map_size - 1 - hot_map_px[0]] = 1.0  # mirrored spot, in the last joint's map
    kps = np.zeros((1, k, 2), np.float32)
    return Poses(kps, np.zeros((1, k)), [box], [0.9], attention=hol, part_attention=part, transforms=[t]), t


@pytest.mark.parametrize("mode,mirrored", [("holistic", False), ("parts", True)])
@pytest.mark.parametrize("box,spot", [((100, 50, 180, 210), (4, 11)), ((250, 100, 330, 230), (12, 3))])
def test_attention_overlay_lands_on_the_crop(mode, mirrored, box, spot) -> None:
    frame = np.zeros((240, 360, 3), np.uint8)
    poses, t = _poses_with_attention((360, 240), box, spot)
    img = Renderer(((0, 1),), attention=mode, boxes=False).draw(frame, poses)
    changed = np.abs(img.astype(int) - frame).sum(2)
    assert changed.max() > 50
    ys, xs = np.nonzero(changed)
    x, y = np.average(xs, weights=changed[ys, xs]), np.average(ys, weights=changed[ys, xs])  # centre of the mark
    sx = 16 - 1 - spot[0] if mirrored else spot[0]
    want = H.apply_affine(t.heatmap_to_frame, np.array([[sx, spot[1]]], float))[0]
    hm_px = 1.25 * max(box[2] - box[0], box[3] - box[1]) / 16
    assert np.hypot(x - want[0], y - want[1]) <= 0.5 * hm_px, ((x, y), want)


def test_no_attention_maps_draws_nothing_extra() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    p = Poses(np.zeros((1, 2, 2)), np.zeros((1, 2)), [[10, 10, 50, 90]], [0.9])
    img = Renderer(((0, 1),), attention="holistic", boxes=False).draw(frame, p)
    assert (img == 0).all()
    with pytest.raises(ValueError, match="attention must be one of"):
        Renderer(((0, 1),), attention="everything")


def test_skeleton_drawn_only_for_confident_joints() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    kps = np.array([[[20, 50], [80, 50], [150, 50]]], np.float32)
    p = Poses(kps, np.array([[0.9, 0.9, 0.05]]), [[10, 10, 190, 90]], [0.9], track_ids=np.array([3]))
    img = Renderer(((0, 1), (1, 2)), boxes=False).draw(frame, p)
    assert img[50, 50].any(), "the limb between two confident joints is drawn"
    assert not img[50, 120].any(), "a limb to a joint under min_score is not"
    assert tuple(int(v) for v in img[50, 40]) == track_color(3)
    assert (frame == 0).all(), "the input frame is not modified"


def test_track_colours_are_stable_and_distinct() -> None:
    cols = [track_color(i) for i in range(8)]
    assert cols == [track_color(i) for i in range(8)] and len(set(cols)) == 8
