"""The synthetic people renderer: determinism, label/visibility correctness, boxes, videos, torch-free import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mca.data import synthetic as S
from mca.joints import get_joint_set

JOINT_SETS = [("mpii16", 16), ("coco17", 17)]


# ----------------------------------------------------------------------------- helpers
def _figure(pose: S.Pose | None = None, foot=(120.0, 220.0), height: float = 170.0, girth: float = 1.0,
            track_id: int = 0, look_seed: int = 0) -> S._Figure:
    """A person to draw at a known place, with a known pose."""
    pose = pose or S.Pose(arm_abd=(30.0, 30.0), hip_abd=(10.0, 10.0))
    build = S.Build(girth=girth)
    pts = S.place(pose, build, foot, height)
    look = S._look(np.random.default_rng(look_seed))
    look["yaw"] = np.array([pose.yaw])
    return S._Figure(pts, height, look, girth, 0, track_id)


def _labels(canvas: S._Canvas, fig: S._Figure, slot: int, joint_set: str):
    names = S._SET_MAP[joint_set]
    h, w = canvas.label.shape
    joints, vis = S._labels_for(fig.pts, fig.height, canvas.label, slot, names, (w, h))
    return names, joints, vis


def _drawn_alone(fig: S._Figure, size=(240, 240), joint_set: str = "mpii16"):
    canvas = S._Canvas(np.zeros((size[1], size[0], 3), np.uint8))
    S._draw_figure(canvas, fig, 1)
    return (canvas, *_labels(canvas, fig, 1, joint_set))


def _in_frame(joints: np.ndarray, w: int, h: int) -> np.ndarray:
    r = np.round(joints.astype(np.float64))
    return (r[:, 0] >= 0) & (r[:, 0] < w) & (r[:, 1] >= 0) & (r[:, 1] < h)


POSES = {
    "frontal": S.Pose(arm_abd=(30.0, 30.0), hip_abd=(10.0, 10.0)),
    "arms_up": S.Pose(arm_abd=(165.0, 165.0), elbow=(5.0, 5.0), hip_abd=(8.0, 8.0)),
    "sideways_walk": S.Pose(yaw=90.0, arm_flex=(-30.0, 30.0), hip_flex=(30.0, -30.0), knee=(5.0, 40.0)),
    "facing_away": S.Pose(yaw=180.0, arm_abd=(40.0, 20.0), hip_abd=(12.0, 6.0)),
    "crouch": S.Pose(lean=30.0, hip_flex=(90.0, 90.0), knee=(110.0, 110.0), arm_flex=(60.0, 60.0),
                     elbow=(40.0, 40.0), hip_abd=(15.0, 15.0)),
    "reach_sideways": S.Pose(yaw=-70.0, arm_abd=(90.0, 10.0), arm_flex=(60.0, 0.0), elbow=(5.0, 20.0)),
}


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("joint_set,size,effects,index", [
    ("mpii16", (160, 160), True, 0),
    ("mpii16", (320, 240), False, 11),
    ("coco17", (200, 160), True, 5),
    ("coco17", (240, 200), False, 123),
])
def test_same_seed_and_index_give_identical_pixels_and_labels(joint_set, size, effects, index) -> None:
    kw = dict(joint_set=joint_set, size=size, seed=7, min_people=1, max_people=4, effects=effects)
    a = S.SceneRenderer(**kw).render(index)
    r = S.SceneRenderer(**kw)
    r.render(index + 1)  # rendering something else first must not change the result (no hidden state)
    b = r.render(index)
    assert a.image.shape == (size[1], size[0], 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert a.index == b.index == index
    assert len(a.people) == len(b.people) >= 1
    for p, q in zip(a.people, b.people):
        assert np.array_equal(p.joints, q.joints)
        assert np.array_equal(p.visible, q.visible)
        assert np.array_equal(p.box, q.box)
        assert (p.track_id, p.height_px) == (q.track_id, q.height_px)


@pytest.mark.parametrize("other", [
    dict(seed=7, index=1),   # same seed, next index
    dict(seed=7, index=99),  # same seed, far index
    dict(seed=8, index=0),   # other seed, same index
    dict(seed=0, index=0),
])
def test_different_index_or_seed_gives_a_different_image(other) -> None:
    base = S.SceneRenderer("mpii16", (160, 160), seed=7, min_people=1, max_people=3).render(0)
    img = S.SceneRenderer("mpii16", (160, 160), seed=other["seed"], min_people=1, max_people=3).render(other["index"])
    assert img.image.shape == base.image.shape
    # Not just a few pixels: different scenes differ almost everywhere (new background).
    assert (img.image != base.image).any(-1).mean() > 0.5


@pytest.mark.parametrize("joint_set,k", JOINT_SETS)
def test_person_fields_have_the_documented_shapes_and_types(joint_set, k) -> None:
    r = S.SceneRenderer(joint_set, (200, 160), seed=1, min_people=2, max_people=4)
    people = [p for i in range(4) for p in r.render(i).people]
    assert people
    for p in people:
        assert p.joints.shape == (k, 2) and p.joints.dtype == np.float32
        assert p.visible.shape == (k,) and p.visible.dtype == bool
        assert p.box.shape == (4,) and p.box.dtype == np.float32
        assert p.height_px > 0
    assert r.names == tuple(S._SET_MAP[joint_set]) and len(r.names) == get_joint_set(joint_set).num_joints


@pytest.mark.parametrize("kw,match", [
    (dict(size=(31, 100)), "at least 32x32"),
    (dict(min_people=3, max_people=1), "min_people"),
    (dict(min_height=0), "min_height"),
    (dict(min_height=200, max_height=100), "min_height"),
    (dict(joint_set="h36m"), "valid"),
])
def test_bad_renderer_settings_raise_clear_errors(kw, match) -> None:
    with pytest.raises((ValueError, KeyError), match=match):
        S.SceneRenderer(**kw)


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (100, 59), (160, 120)])
def test_any_size_of_at_least_32x32_renders_with_default_heights(size) -> None:
    """The size check promises 32x32 works; the default person heights must not make small frames fail."""
    r = S.SceneRenderer("mpii16", size, seed=0, min_people=1, max_people=2)
    scene = r.render(0)
    assert scene.image.shape == (size[1], size[0], 3)
    assert 0 < r.min_height <= r.max_height


# ----------------------------------------------------------------------------- labels and visibility
@pytest.mark.parametrize("joint_set,seed,index", [
    ("mpii16", 0, 0), ("mpii16", 1, 3), ("mpii16", 2, 8), ("coco17", 0, 1), ("coco17", 3, 4), ("coco17", 5, 2),
])
def test_visible_joints_lie_on_drawn_person_pixels(joint_set, seed, index) -> None:
    """One large person, no occluders, no effects: the background is recoverable with the renderer's rng
    recipe, so every visible joint must sit on a pixel the person changed, and nothing outside the
    person's box may change."""
    w, h = 240, 240
    r = S.SceneRenderer(joint_set, (w, h), seed=seed, min_people=1, max_people=1, min_height=150,
                        max_height=220, distractors=(0, 1), effects=False)
    scene = r.render(index)
    bg = S.make_background(np.random.default_rng([seed, index, 7]), w, h)
    changed = (scene.image != bg).any(-1)
    assert len(scene.people) == 1
    p = scene.people[0]
    assert p.visible.sum() >= 4
    for (x, y), v in zip(p.joints, p.visible):
        if v:
            assert changed[int(round(float(y))), int(round(float(x)))]
    # Outside the box (2 px for anti-aliasing) the image is the untouched background.
    x0, y0, x1, y1 = p.box
    ys, xs = np.nonzero(changed)
    inside = (xs >= x0 - 2) & (xs <= x1 + 2) & (ys >= y0 - 2) & (ys <= y1 + 2)
    assert inside.all(), f"{(~inside).sum()} changed pixels outside the box {p.box}"


@pytest.mark.parametrize("pose_name", list(POSES))
@pytest.mark.parametrize("joint_set", ["mpii16", "coco17"])
def test_visible_joints_sit_on_their_own_body_parts(pose_name, joint_set) -> None:
    fig = _figure(POSES[pose_name])
    canvas, names, joints, vis = _drawn_alone(fig, joint_set=joint_set)
    assert vis.sum() >= len(names) // 3
    for (x, y), v, n in zip(joints, vis, names):
        lab = int(canvas.label[int(round(float(y))), int(round(float(x)))])
        own = {32 + S.PART_IDS[part] for part in S.ADJACENT[n]}
        if n in ("head_top", "l_ear", "r_ear"):
            # on the head's outline: visible only if the head is drawn just inside it, towards its centre
            c = fig.pts[S.J["head_center"], :2]
            near = [int(canvas.label[int(round(float(q[1]))), int(round(float(q[0])))])
                    for q in (c + f * (np.array([x, y]) - c) for f in np.linspace(0.6, 1.0, 9))]
            assert not v or own & set(near), n
        elif n in ("nose", "l_eye", "r_eye"):
            assert lab in own or not v, n  # face points are also hidden by the head turning away
        else:
            assert v == (lab in own), n


@pytest.mark.parametrize("joint_set", ["mpii16", "coco17"])
@pytest.mark.parametrize("height", [60.0, 120.0, 210.0])
def test_unoccluded_frontal_person_has_every_joint_visible(joint_set, height) -> None:
    """Nothing hides anything: head top and ears (drawn on the head's outline) included."""
    fig = _figure(S.Pose(arm_abd=(35.0, 35.0), hip_abd=(12.0, 12.0), elbow=(10.0, 10.0)), foot=(120.0, 230.0),
                  height=height)
    _, names, _, vis = _drawn_alone(fig, joint_set=joint_set)
    assert vis.all(), [n for n, v in zip(names, vis) if not v]


@pytest.mark.parametrize("yaw,face_visible", [(0.0, True), (20.0, True), (180.0, False), (160.0, False)])
def test_face_points_are_hidden_when_the_head_faces_away(yaw, face_visible) -> None:
    names = S._SET_MAP["coco17"]
    _, _, _, vis = _drawn_alone(_figure(S.Pose(yaw=yaw, arm_abd=(30.0, 30.0))), joint_set="coco17")
    face = [names.index(n) for n in ("nose", "l_eye", "r_eye")]
    assert vis[face].all() == face_visible and vis[face].any() == face_visible


@pytest.mark.parametrize("joint_set", ["mpii16", "coco17"])
@pytest.mark.parametrize("foot,where", [
    ((0.0, 220.0), "left"),      # centred on the left edge: its left half is outside
    ((240.0, 220.0), "right"),
    ((120.0, 300.0), "bottom"),  # legs below the frame
    ((120.0, 120.0), "top"),     # head and shoulders above the frame
])
def test_person_half_outside_the_frame_has_its_outside_joints_invisible(joint_set, foot, where) -> None:
    w, h = 240, 240
    r = S.SceneRenderer(joint_set, (w, h), seed=0, effects=False)
    fig = _figure(S.Pose(arm_abd=(60.0, 60.0), hip_abd=(15.0, 15.0)), foot=foot, height=190.0)
    scene = r._compose(np.zeros((h, w, 3), np.uint8), [fig], np.random.default_rng(0), 0, effects=False,
                       n_distractors=0)
    assert len(scene.people) == 1
    p = scene.people[0]
    inside = _in_frame(p.joints, w, h)
    assert (~inside).sum() >= 2, "the test needs joints outside the frame"
    assert inside.sum() >= 2, "and joints inside it"
    assert not p.visible[~inside].any(), "a joint outside the frame is marked visible"
    assert p.visible[inside].sum() >= inside.sum() // 2, "most joints inside the frame should be visible"
    # The box is clipped to the frame and still covers the visible joints.
    x0, y0, x1, y1 = p.box
    assert 0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - 1
    if where == "left":
        assert x0 == 0
    elif where == "right":
        assert x1 == w - 1
    elif where == "bottom":
        assert y1 == h - 1
    else:
        assert y0 == 0


def test_person_entirely_outside_the_frame_is_dropped() -> None:
    w, h = 200, 160
    r = S.SceneRenderer("mpii16", (w, h), seed=0, effects=False)
    figs = [_figure(foot=(100.0, 150.0), height=120.0, track_id=0),
            _figure(foot=(-300.0, 150.0), height=120.0, track_id=1),
            _figure(foot=(100.0, 500.0), height=120.0, track_id=2)]
    scene = r._compose(np.zeros((h, w, 3), np.uint8), figs, np.random.default_rng(0), 0, effects=False,
                       n_distractors=0)
    assert [p.track_id for p in scene.people] == [0]


@pytest.mark.parametrize("joint_set,joint", [
    ("mpii16", "l_knee"), ("mpii16", "r_elbow"), ("mpii16", "head_top"), ("mpii16", "r_ankle"),
    ("mpii16", "l_wrist"), ("mpii16", "thorax"), ("coco17", "nose"), ("coco17", "r_knee"),
    ("coco17", "l_shoulder"), ("coco17", "l_ankle"),
])
def test_occluder_over_a_joint_hides_exactly_the_joints_it_covers(joint_set, joint) -> None:
    fig = _figure()
    canvas, names, joints, before = _drawn_alone(fig, joint_set=joint_set)
    k = names.index(joint)
    assert before[k], f"{joint} must be visible before the occluder"
    x, y = joints[k]
    half = 5.0
    square = np.array([[x - half, y - half], [x + half, y - half], [x + half, y + half], [x - half, y + half]])
    canvas.poly(square, np.array([0, 255, 0], np.float32), 65535)
    _, _, after = _labels(canvas, fig, 1, joint_set)
    assert not after[k]
    covered = (np.abs(joints[:, 0] - x) <= half + 1) & (np.abs(joints[:, 1] - y) <= half + 1)
    others = ~covered
    assert np.array_equal(after[others], before[others]), "joints away from the occluder must not change"
    assert after.sum() < before.sum()


@pytest.mark.parametrize("joint_set", ["mpii16", "coco17"])
def test_a_person_in_front_hides_the_joints_of_the_person_behind(joint_set) -> None:
    back = _figure(foot=(120.0, 180.0), height=150.0, track_id=0)
    front = _figure(S.Pose(yaw=30.0, arm_abd=(70.0, 70.0)), foot=(130.0, 235.0), height=160.0, track_id=1,
                    look_seed=1)
    canvas, names, _, alone = _drawn_alone(back, joint_set=joint_set)
    S._draw_figure(canvas, front, 2)
    _, joints, vis = _labels(canvas, back, 1, joint_set)
    under_front = np.array([canvas.label[int(round(float(y))), int(round(float(x)))] // 32 == 2
                            for x, y in joints])
    assert under_front.sum() >= 2, "the test needs overlapping people"
    assert not vis[under_front].any()
    assert np.array_equal(vis[~under_front], alone[~under_front])
    # And the scene composer orders them the same way: the lower feet are drawn in front.
    w, h = canvas.label.shape[1], canvas.label.shape[0]
    scene = S.SceneRenderer(joint_set, (w, h), seed=0)._compose(np.zeros((h, w, 3), np.uint8), [front, back],
                                                               np.random.default_rng(0), 0, effects=False,
                                                               n_distractors=0)
    by_id = {p.track_id: p for p in scene.people}
    assert np.array_equal(by_id[0].visible, vis)


# ----------------------------------------------------------------------------- boxes
@pytest.mark.parametrize("joint_set,k", JOINT_SETS)
@pytest.mark.parametrize("seed", [0, 1])
def test_boxes_lie_in_the_frame_and_contain_the_visible_joints(joint_set, k, seed) -> None:
    w, h = 240, 180
    r = S.SceneRenderer(joint_set, (w, h), seed=seed, min_people=1, max_people=5, min_height=40, max_height=320)
    seen_outside = 0
    n_people = 0
    for i in range(12):
        for p in r.render(i).people:
            n_people += 1
            assert p.joints.shape == (k, 2)
            x0, y0, x1, y1 = (float(v) for v in p.box)
            assert 0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - 1
            vj = p.joints[p.visible]
            assert ((vj[:, 0] >= x0 - 1.5) & (vj[:, 0] <= x1 + 1.5)).all()
            assert ((vj[:, 1] >= y0 - 1.5) & (vj[:, 1] <= y1 + 1.5)).all()
            outside = ~_in_frame(p.joints, w, h)
            seen_outside += int(outside.sum())
            assert not (p.visible & outside).any()
    assert n_people >= 12
    assert seen_outside > 0, "the test needs people partly outside the frame"


@pytest.mark.parametrize("pose_name", list(POSES))
@pytest.mark.parametrize("girth", [0.8, 1.35])
def test_box_covers_the_whole_drawn_body(pose_name, girth) -> None:
    """Person.box is documented as tight around the drawn body: hands and shoes must not stick out."""
    w, h = 240, 240
    fig = _figure(POSES[pose_name], foot=(120.0, 225.0), height=170.0, girth=girth)
    r = S.SceneRenderer("mpii16", (w, h), seed=0)
    scene = r._compose(np.zeros((h, w, 3), np.uint8), [fig], np.random.default_rng(0), 0, effects=False,
                       n_distractors=0)
    (p,) = scene.people
    ys, xs = np.nonzero(scene.image.any(-1))
    x0, y0, x1, y1 = p.box
    assert xs.min() > 0 and ys.min() > 0 and xs.max() < w - 1, "the figure should be fully in frame here"
    tol = 1.5  # anti-aliased outline
    over = max(x0 - xs.min(), xs.max() - x1, y0 - ys.min(), ys.max() - y1)
    assert over <= tol, f"drawn body sticks out of the box by {over:.1f} px"
    # ... and the box is tight: no side more than 8% of the height away from the drawing.
    slack = max(xs.min() - x0, x1 - xs.max(), ys.min() - y0, y1 - ys.max())
    assert slack <= 0.08 * fig.height, f"box is loose by {slack:.1f} px"


# ----------------------------------------------------------------------------- video
@pytest.mark.parametrize("seed,size,num_people", [(0, (320, 240), 3), (2, (320, 240), 3), (5, (240, 180), 2)])
def test_video_motion_is_smooth_and_track_ids_are_stable(seed, size, num_people) -> None:
    fps, n = 25.0, 120
    v = S.VideoRenderer("mpii16", size, fps=fps, num_people=num_people, seed=seed, min_height=90, max_height=160,
                        noise=False)
    frames = list(v.frames(n))
    tracks: dict[int, list[tuple[int, S.Person]]] = {}
    for i, f in enumerate(frames):
        ids = [p.track_id for p in f.people]
        assert len(ids) == len(set(ids)), "duplicate track id in one frame"
        assert set(ids) <= set(range(num_people))
        for p in f.people:
            tracks.setdefault(p.track_id, []).append((i, p))
    assert len(tracks) >= 2
    moved = 0.0
    for tid, track in tracks.items():
        # the same id is the same actor: its height never changes
        assert len({p.height_px for _, p in track}) == 1, tid
        for (i, a), (j, b) in zip(track, track[1:]):
            if j != i + 1:
                continue
            step = float(np.linalg.norm(b.joints - a.joints, axis=1).max())
            assert step < 0.15 * a.height_px, f"track {tid} jumps {step / a.height_px:.2f} x height at frame {j}"
        moved = max(moved, float(np.linalg.norm(track[-1][1].joints - track[0][1].joints, axis=1).mean()))
    assert moved > 5.0, "nobody moves"


@pytest.mark.parametrize("order", [[7, 0, 19, 3, 12], [19, 18, 17], [0]])
def test_video_random_access_equals_sequential(order) -> None:
    v = S.VideoRenderer("coco17", (200, 160), fps=25, num_people=3, seed=4, min_height=70, max_height=140)
    seq = list(v.frames(20))
    for i in order:
        f = v.frame(i)
        assert f.index == i
        assert np.array_equal(f.image, seq[i].image)
        assert [p.track_id for p in f.people] == [p.track_id for p in seq[i].people]
        for p, q in zip(f.people, seq[i].people):
            assert np.array_equal(p.joints, q.joints) and np.array_equal(p.visible, q.visible)
            assert np.array_equal(p.box, q.box)
    tail = list(v.frames(5, start=10))
    assert [f.index for f in tail] == list(range(10, 15))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(tail, seq[10:15]))
    # consecutive frames do differ (it is a video, not a still)
    assert not np.array_equal(seq[0].image, seq[1].image)


@pytest.mark.parametrize("joint_set,k", JOINT_SETS)
def test_video_labels_obey_the_same_rules_as_stills(joint_set, k) -> None:
    w, h = 240, 180
    v = S.VideoRenderer(joint_set, (w, h), fps=25, num_people=4, seed=1, min_height=80, max_height=170)
    n_people = 0
    for f in v.frames(15, start=30):
        assert f.image.shape == (h, w, 3)
        for p in f.people:
            n_people += 1
            assert p.joints.shape == (k, 2)
            assert 0 <= p.box[0] < p.box[2] <= w - 1 and 0 <= p.box[1] < p.box[3] <= h - 1
            assert not (p.visible & ~_in_frame(p.joints, w, h)).any()
    assert n_people > 0


@pytest.mark.parametrize("kw,match", [(dict(fps=0), "fps"), (dict(num_people=-1), "num_people")])
def test_bad_video_settings_raise(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        S.VideoRenderer(size=(64, 64), **kw)


# ----------------------------------------------------------------------------- torch-free
@pytest.mark.parametrize("code,expect", [
    ("import mca.data.synthetic as S, mca.data.writers\n"
     "s = S.SceneRenderer('coco17', (96, 80), seed=1, min_people=1).render(0)\n"
     "print(s.image.shape, s.people[0].joints.shape)", "(80, 96, 3) (17, 2)"),
    ("import mca.data.synthetic as S, mca.data.writers\n"
     "s = S.VideoRenderer('mpii16', (96, 64), num_people=1).frame(3)\n"
     "print(s.image.shape, s.index)", "(64, 96, 3) 3"),
])
def test_imports_and_renders_without_torch(code, expect) -> None:
    prog = ("import sys; sys.modules['torch'] = None\n" + code +
            "\nassert not [m for m, v in sys.modules.items() if m.startswith('torch') and v is not None]")
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout


def test_a_720p_demo_video_is_labelled_like_a_small_one() -> None:
    """The live demo's size (1280x720, 4 actors; no timing here): every actor shows up, labelled by the same
    rules as small frames (ids, boxes in the frame around the visible joints, people sized to the frame)."""
    w, h = 1280, 720
    v = S.VideoRenderer("mpii16", (w, h), 25, 4, seed=0)
    frames = [v.frame(i) for i in (0, 50, 100)]
    seen: set[int] = set()
    for f in frames:
        assert f.image.shape == (h, w, 3) and f.image.dtype == np.uint8
        ids = [p.track_id for p in f.people]
        assert 1 <= len(ids) == len(set(ids)) <= 4 and set(ids) <= set(range(4))
        seen |= set(ids)
        for p in f.people:
            assert 0 <= p.box[0] < p.box[2] <= w - 1 and 0 <= p.box[1] < p.box[3] <= h - 1
            assert not (p.visible & ~_in_frame(p.joints, w, h)).any()
            vj = p.joints[p.visible]
            assert ((vj >= p.box[:2] - 2) & (vj <= p.box[2:] + 2)).all()
            assert 0.1 * h < p.height_px < 1.5 * h, "people are scaled to the frame"
        assert max(int(p.visible.sum()) for p in f.people) >= 12
    assert seen == set(range(4)), "every actor appears"
    assert np.array_equal(frames[0].image, next(iter(v.frames(1))).image)
    assert not np.array_equal(frames[0].image, frames[1].image)


# ----------------------------------------------------------------------------- side views on request
def _abs_yaws(r: S.SceneRenderer, n: int) -> np.ndarray:
    return np.array([abs(((p.yaw + 180) % 360) - 180) for i in range(n) for p in r.render(i).people])


def test_side_share_zero_leaves_every_scene_as_it_was() -> None:
    """The held-out test scenes are rendered with the default: asking for side views in training must not move them."""
    kw = dict(joint_set="mpii16", size=(160, 160), seed=2000, min_people=1, max_people=3)
    for i in range(4):
        a, b = S.SceneRenderer(**kw).render(i), S.SceneRenderer(**kw, side_share=0.0).render(i)
        assert np.array_equal(a.image, b.image)
        assert [p.yaw for p in a.people] == [p.yaw for p in b.people]


def test_side_share_one_turns_every_person_to_a_side_view_and_labels_follow() -> None:
    kw = dict(joint_set="mpii16", size=(160, 160), seed=3, min_people=1, max_people=3)
    base, side = _abs_yaws(S.SceneRenderer(**kw), 40), _abs_yaws(S.SceneRenderer(**kw, side_share=1.0), 40)
    lo, hi = S.SIDE_VIEW
    assert (lo, hi) == (45.0, 135.0)
    assert ((side >= lo) & (side <= hi)).all()
    assert not ((base >= lo) & (base <= hi)).all()  # the default draws every turn
    # a side view is narrow: the shoulders' horizontal spread shrinks against the same scenes' default turns
    r0, r1 = S.SceneRenderer(**kw), S.SceneRenderer(**kw, side_share=1.0)
    ls, rs = S._SET_MAP["mpii16"].index("l_shoulder"), S._SET_MAP["mpii16"].index("r_shoulder")

    def spread(r):
        return np.median([abs(p.joints[ls, 0] - p.joints[rs, 0]) / p.height_px for i in range(40) for p in r.render(i).people])

    assert spread(r1) < 0.6 * spread(r0)


def test_side_share_half_turns_about_half() -> None:
    r = S.SceneRenderer("mpii16", (160, 160), seed=5, min_people=1, max_people=3, side_share=0.5)
    a = _abs_yaws(r, 120)
    frac = ((a >= 45) & (a <= 135)).mean()
    assert 0.6 < frac < 0.9  # half turned, plus the default's own half of side views of the rest


@pytest.mark.parametrize("share", [-0.1, 1.01])
def test_bad_side_share_is_a_clear_error(share) -> None:
    with pytest.raises(ValueError, match="side_share"):
        S.SceneRenderer(side_share=share)
