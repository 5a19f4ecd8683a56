"""Left/right: labels agree with what is drawn, flips swap sides, and the cues that tell front from back exist."""

from __future__ import annotations

import numpy as np
import pytest

from mca import heatmaps as H
from mca.data import cues
from mca.data import synthetic as S
from mca.data.augment import make_sample
from mca.joints import MPII16

RED, BLUE = (0, 0, 255), (255, 0, 0)


@pytest.mark.parametrize("seed", range(12))
def test_a_mirrored_crop_swaps_left_and_right_labels(seed) -> None:
    """The mirror is read from the crop transform's determinant, not from the labels: a mirrored crop must
    put the *left* wrist label on the dot that was the person's *right* wrist (and the other way round)."""
    img = np.zeros((300, 300, 3), np.uint8)
    joints = np.zeros((16, 2))
    vis = np.zeros(16, bool)
    lw, rw = MPII16.index("l_wrist"), MPII16.index("r_wrist")
    joints[lw], joints[rw] = (200.0, 150.0), (100.0, 140.0)
    vis[[lw, rw]] = True
    img[148:153, 198:203] = RED  # the person's left wrist
    img[138:143, 98:103] = BLUE  # the person's right wrist
    s = make_sample(img, joints, vis, np.array([60, 60, 240, 240]), 128, 32, MPII16.flip_index,
                    np.random.default_rng(seed))
    mirrored = np.linalg.det(s.frame_to_input[:, :2]) < 0
    at = H.apply_affine(H.heatmap_to_input_matrix((32, 32), (128, 128)), s.joints_hm)
    for j, want in ((lw, BLUE if mirrored else RED), (rw, RED if mirrored else BLUE)):
        x, y = (int(round(v)) for v in at[j])
        if not (2 <= x < 126 and 2 <= y < 126):
            continue
        px = s.crop[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int).max(0)
        assert px[np.argmax(want)] > 120 and px[np.argmin(want)] < 60, (seed, mirrored, MPII16.names[j], px)


def test_flip_probability_gives_both_mirrored_and_plain_crops() -> None:
    dets = [np.linalg.det(make_sample(np.zeros((64, 64, 3), np.uint8), np.zeros((16, 2)), np.zeros(16, bool),
                                      np.array([10, 10, 50, 50]), 32, 8, MPII16.flip_index,
                                      np.random.default_rng(s)).frame_to_input[:, :2]) for s in range(20)]
    assert min(dets) < 0 < max(dets)


def _figure(yaw: float, look_seed: int = 0) -> S._Figure:
    pose = S.Pose(yaw=yaw, arm_abd=(80.0, 80.0), elbow=(0.0, 0.0), hip_abd=(15.0, 15.0))
    pts = S.place(pose, S.Build(), (120.0, 230.0), 200.0)
    look = S._look(np.random.default_rng(look_seed))
    look["yaw"] = np.array([yaw])
    return S._Figure(pts, 200.0, look, 1.0, 0, 0)


def _render(fig: S._Figure):
    cv = S._Canvas(np.full((240, 240, 3), 128, np.uint8))
    S._draw_figure(cv, fig, 1)
    joints, vis = S._labels_for(fig.pts, fig.height, cv.label, 1, S._SET_MAP["mpii16"], (240, 240))
    return cv, joints, vis


@pytest.mark.parametrize("yaw, left_on_image_right", [(0.0, True), (20.0, True), (-25.0, True), (180.0, False),
                                                      (160.0, False), (-150.0, False)])
def test_left_side_sits_where_the_facing_says(yaw, left_on_image_right) -> None:
    """Facing the camera (its face drawn), a person's left wrist is on the image's right; from behind, mirrored."""
    cv, joints, _ = _render(_figure(yaw))
    for a, b in (("l_wrist", "r_wrist"), ("l_shoulder", "r_shoulder"), ("l_ankle", "r_ankle")):
        assert (joints[MPII16.index(a), 0] > joints[MPII16.index(b), 0]) == left_on_image_right, (yaw, a)
    # and the drawn head agrees: eye whites only on a face that looks at the camera
    c = _figure(yaw).pts[S.J["head_center"], :2]
    head = cv.image[int(c[1]) - 12:int(c[1]) + 12, int(c[0]) - 12:int(c[0]) + 12].reshape(-1, 3).astype(int)
    whites = int((head.min(1) > 215).sum())
    assert (whites > 0) == left_on_image_right, (yaw, whites)


@pytest.mark.parametrize("look_seed", range(8))
def test_front_and_back_look_different_at_the_128px_input(look_seed) -> None:
    """The same body from the front and from behind has the same outline; the surface cues must still make the
    two 128-px crops clearly different (the first renderer's were not, on dark skin under dark hair)."""
    crops = []
    for yaw in (0.0, 180.0):
        fig = _figure(yaw, look_seed)
        cv, joints, vis = _render(fig)
        box = np.array([fig.pts[:, 0].min() - 10, fig.pts[:, 1].min() - 15, fig.pts[:, 0].max() + 10,
                        fig.pts[:, 1].max() + 10])
        crops.append(make_sample(cv.image, joints, vis, box, 128, 32, MPII16.flip_index).crop.astype(float))
    # compare the back view with the front view mirrored (that is what the outline alone cannot tell apart)
    diff = np.abs(crops[0][:, ::-1] - crops[1]).max(2)
    assert (diff > 40).sum() > 150, (diff > 40).sum()


def test_hair_contrasts_with_skin_whatever_the_tone() -> None:
    rng = np.random.default_rng(0)
    for skin in S.SKIN_TONES:
        hair = cues.contrasting_hair(rng, skin, S.HAIR)
        assert abs(cues.luminance(hair) - cues.luminance(skin)) >= 40 or \
            max(abs(cues.luminance(h) - cues.luminance(skin)) for h in S.HAIR * 1.15) < 40


@pytest.mark.parametrize("yaw, z_sign", [(0.0, 1), (180.0, -1), (30.0, 1), (-140.0, -1)])
def test_body_forward_points_where_the_nose_does(yaw, z_sign) -> None:
    P = S.place(S.Pose(yaw=yaw, head_yaw=0.0), S.Build(), (0.0, 0.0), 100.0)
    f = cues.body_forward(P[S.J["l_shoulder"]], P[S.J["r_shoulder"]], P[S.J["pelvis"]], P[S.J["thorax"]])
    nose = P[S.J["nose"]] - P[S.J["head_center"]]
    assert np.sign(f[2]) == z_sign and np.dot(f[[0, 2]], nose[[0, 2]]) > 0
