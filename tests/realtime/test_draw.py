"""Drawing: skeletons where the keypoints are, attention maps warped back onto the person's crop."""

from __future__ import annotations

import numpy as np
import pytest

from mca import heatmaps as H
from realtime.draw import KPT_THR, Renderer, track_color
from realtime.writer import overlay_text
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


@pytest.mark.parametrize("thr", [None, 0.5])
def test_joints_under_the_threshold_are_not_drawn(thr) -> None:
    """Issue 16.4: a person cut off at the waist gets no invented legs: joints under --kpt-thr (default KPT_THR)
    and the limbs to them are not drawn."""
    t = KPT_THR if thr is None else thr
    frame = np.zeros((100, 300, 3), np.uint8)
    kps = np.array([[[30, 50], [100, 50], [170, 50], [240, 50]]], np.float32)
    scores = np.array([[0.9, t, t - 0.05, 0.9]])  # at the threshold: drawn; just under it: not
    p = Poses(kps, scores, [[10, 10, 290, 90]], [0.9])
    r = Renderer(((0, 1), (1, 2), (2, 3)), boxes=False, **({} if thr is None else {"min_score": thr}))
    img = r.draw(frame, p)
    assert img[50, 100].any() and img[50, 65].any(), "a joint at the threshold and its limb are drawn"
    assert not img[50, 170].any() and not img[50, 135].any() and not img[50, 205].any(), "under it: nothing"


def test_default_threshold_hides_joints_the_old_one_drew() -> None:
    assert 0.3 < KPT_THR < 0.5, "chosen from the bundled model's scores (was 0.2: invented legs drawn)"


def test_labels_are_outlined_and_on_top_of_other_boxes() -> None:
    """First run: track ids readable over a busy (here white) background and never under another person's box."""
    frame = np.full((200, 300, 3), 255, np.uint8)
    one = Poses(np.zeros((1, 2, 2)), np.zeros((1, 2)), [[50, 60, 150, 190]], [0.9], track_ids=np.array([7]))
    both = Poses(np.zeros((2, 2, 2)), np.zeros((2, 2)), [[50, 60, 150, 190], [40, 45, 250, 52]], [0.9, 0.8],
                 track_ids=np.array([7, 8]))  # the second box's top edge runs through the first one's label
    r = Renderer(((0, 1),))
    alone, crowded = r.draw(frame, one), r.draw(frame, both)
    label = (slice(40, 57), slice(50, 80))
    outline = alone[label].max(2) < 60
    assert outline.sum() > 20, "a dark outline around the text"
    assert (crowded[label][outline].max(1) < 60).all(), "the label is drawn over the other box, not under it"


def test_overlay_text_shows_no_rate_before_there_is_one() -> None:
    """First run: no '0.0 fps' on the first frame or a single image; latency only for live sources."""
    assert overlay_text(None, None, 1) == "1 person"
    assert overlay_text(12.5, None, 3) == " 12.5 fps  3 people"
    assert overlay_text(12.5, 40.0, 0) == " 12.5 fps    40 ms  0 people"


def test_labels_of_people_side_by_side_do_not_cover_each_other() -> None:
    """First run: in a crowd the next person's id tag was drawn over the previous one's (ids unreadable)."""
    frame = np.full((200, 300, 3), 127, np.uint8)
    box7, box8 = [50, 60, 150, 190], [53, 63, 160, 190]
    one = Poses(np.zeros((1, 2, 2)), np.zeros((1, 2)), [box7], [0.9], track_ids=np.array([7]))
    both = Poses(np.zeros((2, 2, 2)), np.zeros((2, 2)), [box7, box8], [0.9, 0.8], track_ids=np.array([7, 8]))
    r = Renderer(((0, 1),))
    alone, crowded = r.draw(frame, one), r.draw(frame, both)
    ys, xs = np.nonzero((alone[:60] == track_color(7)).all(2))  # the tag above box 7
    assert len(ys) > 50, "the id sits on a solid tag in the track's colour"
    tag = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    np.testing.assert_array_equal(crowded[tag], alone[tag], "the second label covers the first")
    assert (crowded == track_color(8)).all(2).sum() > 50, "the second label is drawn too"


def test_a_label_in_the_corner_is_not_hidden_under_the_overlay_text() -> None:
    """First run: a person at the frame's top left had their id under the fps band."""
    frame = np.full((200, 300, 3), 127, np.uint8)
    p = Poses(np.zeros((1, 2, 2)), np.zeros((1, 2)), [[2, 0, 150, 190]], [0.9], track_ids=np.array([3]))
    img = Renderer(((0, 1),)).draw(frame, p, text=" 12.5 fps  1 person")
    inside = img[3:60, 5:145]  # within the box, away from its own lines (drawn in the same colour)
    assert (inside == track_color(3)).all(2).sum() > 50, "the id tag is visible below the overlay text"
