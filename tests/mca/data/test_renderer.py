"""Synthetic people: determinism, labels that match the pixels, smooth videos, torch-free import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mca.data import synthetic as S


@pytest.mark.parametrize("joint_set,k", [("mpii16", 16), ("coco17", 17)])
def test_render_is_deterministic_and_seeded(joint_set: str, k: int) -> None:
    r = S.SceneRenderer(joint_set, (200, 160), seed=3, min_people=1, max_people=3)
    a, b = r.render(5), r.render(5)
    assert np.array_equal(a.image, b.image) and len(a.people) == len(b.people) >= 1
    for p, q in zip(a.people, b.people):
        assert np.array_equal(p.joints, q.joints) and np.array_equal(p.visible, q.visible)
        assert p.joints.shape == (k, 2) and p.visible.shape == (k,) and p.box.shape == (4,)
    assert not np.array_equal(a.image, r.render(6).image)
    assert not np.array_equal(a.image, S.SceneRenderer(joint_set, (200, 160), seed=4, min_people=1).render(5).image)


def _single_figure(yaw: float = 0.0, foot=(100.0, 190.0), height: float = 170.0):
    pose = S.Pose(yaw=yaw, arm_abd=(30.0, 30.0), hip_abd=(10.0, 10.0))
    pts = S.place(pose, S.Build(), foot, height)
    look = S._look(np.random.default_rng(0))
    look["yaw"] = np.array([yaw])
    return S._Figure(pts, height, look, 1.0, 0, 0)


def _drawn(fig, joint_set: str = "mpii16"):
    """The figure drawn alone on a black 200x200 canvas, with its joints and visibility."""
    canvas = S._Canvas(np.zeros((200, 200, 3), np.uint8))
    S._draw_figure(canvas, fig, 1)
    names = S._SET_MAP[joint_set]
    joints, vis = S._labels_for(fig.pts, fig.height, canvas.label, 1, names, (200, 200))
    return canvas, names, joints, vis


def test_visible_joints_are_drawn_on_the_person() -> None:
    """Every visible joint's pixel belongs to one of that joint's own body parts in the label map."""
    canvas, names, joints, vis = _drawn(_single_figure())
    assert vis.sum() >= 14  # a frontal, spread pose: nearly everything visible
    for (x, y), v, n in zip(joints, vis, names):
        lab = canvas.label[int(round(y)), int(round(x))]
        if n in ("head_top", "l_ear", "r_ear"):  # on the head's outline: test_synthetic checks them inside it
            continue
        if v:
            assert lab in {32 + S.PART_IDS[p] for p in S.ADJACENT[n]}
            assert canvas.image[int(round(y)), int(round(x))].any(), f"{n} sits on a black (empty) pixel"


def test_occluder_hides_the_joint_it_covers() -> None:
    fig = _single_figure()
    canvas, names, _, before = _drawn(fig)
    k = names.index("l_knee")
    x, y = fig.pts[S.J["l_knee"], :2]
    box = np.array([[x - 6, y - 6], [x + 6, y - 6], [x + 6, y + 6], [x - 6, y + 6]])
    canvas.poly(box, np.array([0, 255, 0], np.float32), 65535)
    _, after = S._labels_for(fig.pts, fig.height, canvas.label, 1, names, (200, 200))
    assert before[k] and not after[k]
    assert after.sum() == before.sum() - 1


def test_face_points_hidden_when_facing_away() -> None:
    names = S._SET_MAP["coco17"]
    res = {yaw: _drawn(_single_figure(yaw), "coco17")[3] for yaw in (0.0, 180.0)}
    face = [names.index(n) for n in ("nose", "l_eye", "r_eye")]
    assert res[0.0][face].all() and not res[180.0][face].any()


def test_out_of_frame_joints_are_invisible_and_boxes_are_clipped() -> None:
    r = S.SceneRenderer("mpii16", (160, 120), seed=1, min_people=2, max_people=4, min_height=100, max_height=300)
    seen_outside = 0
    for i in range(15):
        scene = r.render(i)
        for p in scene.people:
            outside = (p.joints[:, 0] < -0.5) | (p.joints[:, 0] > 159.5) | (p.joints[:, 1] < -0.5) | (p.joints[:, 1] > 119.5)
            seen_outside += int(outside.sum())
            assert not (p.visible & outside).any()
            assert 0 <= p.box[0] <= p.box[2] <= 159 and 0 <= p.box[1] <= p.box[3] <= 119
            vj = p.joints[p.visible]
            assert ((vj >= p.box[:2] - 2) & (vj <= p.box[2:] + 2)).all()
    assert seen_outside > 0, "the test needs people partly outside the frame"


def test_video_motion_is_smooth_with_stable_ids_and_random_access() -> None:
    v = S.VideoRenderer("mpii16", (320, 240), fps=25, num_people=3, seed=2, min_height=100, max_height=180)
    frames = list(v.frames(20))
    assert np.array_equal(frames[7].image, v.frame(7).image)
    by_id = {}
    for f in frames:
        for p in f.people:
            by_id.setdefault(p.track_id, []).append(p)
    assert len(by_id) >= 2
    for tid, track in by_id.items():
        for a, b in zip(track, track[1:]):
            step = np.linalg.norm(b.joints - a.joints, axis=1).max()
            assert step < 0.15 * a.height_px, (tid, step)


def test_renderer_is_fast_enough_for_live_demo() -> None:
    """Not a timing assertion: just that one 720p frame renders (the figure is in the README)."""
    v = S.VideoRenderer("mpii16", (1280, 720), 25, 4, seed=0)
    assert v.frame(0).image.shape == (720, 1280, 3)


@pytest.mark.parametrize("kw,match", [
    (dict(size=(10, 10)), "at least 32x32"), (dict(min_people=3, max_people=1), "min_people"),
    (dict(joint_set="h36m"), "valid"),
])
def test_bad_settings_are_clear(kw, match) -> None:
    with pytest.raises((ValueError, KeyError), match=match):
        S.SceneRenderer(**kw)


def test_imports_and_renders_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "from mca.data.synthetic import VideoRenderer\n"
            "s = VideoRenderer(size=(96, 64), num_people=1).frame(0); print(s.image.shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "(64, 96, 3)" in r.stdout
