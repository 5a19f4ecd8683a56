"""Anny people: labels against pixels, sides against facing, depth occlusion, the COCO/MPII mapping.

Skipped when the optional ``anny`` package is absent (CI installs no ``synth`` extra: warp-lang alone is
about 400 MB) or its one-time model cache was never built (``python -m mca.data.anny setup``).
"""

from __future__ import annotations

import numpy as np
import pytest

from mca.data.anny.body import anny_available, model_ready

pytestmark = pytest.mark.skipif(not (anny_available() and model_ready()),
                                reason="needs the optional 'anny' package (pip install -e '.[synth]') and its "
                                       "model cache (python -m mca.data.anny setup, once, a few minutes)")

SPREAD = {"l_arm_elev": 85, "r_arm_elev": 85, "l_arm_plane": 0, "r_arm_plane": 0, "l_elbow": 5, "r_elbow": 5,
          "l_hip_abd": 10, "r_hip_abd": 10, "neck_twist": 0}


@pytest.fixture(scope="module")
def sampler():
    from mca.data.anny.body import get_body_model
    from mca.data.anny.people import PersonSampler

    return PersonSampler(get_body_model(), collision_check=False)


def _plain(sampler, angles=SPREAD, seed=0):  # noqa: ANN001, ANN202
    """An adult in ``angles`` with short hair, no hair cards, no skirt, short sleeves."""
    rng = np.random.default_rng(seed)
    ph = np.array([0.5] * len(sampler.body.phenotype_labels), np.float32)
    p = sampler.make(angles, rng, phenotypes=ph)
    p.look.long_hair = False
    p.look.skirt = False
    p.look.hair_style = "short"
    keep = p.face_helper == 0
    p.faces, p.face_part, p.face_helper = p.faces[keep], p.face_part[keep], p.face_helper[keep]
    return p


def _view(p, azimuth: float, elevation: float = 0.0, size: int = 256, focus=None):  # noqa: ANN001, ANN202
    from mca.data.anny.render import orbit_camera
    from mca.data.anny.raster import Camera

    pts = p.vertices if focus is None else focus
    lo, hi = pts.min(0), pts.max(0)
    cam = orbit_camera((lo + hi) / 2, azimuth, elevation, 6.0, 1.0, (size, size))
    uv, _ = cam.project(pts)
    k = 0.8 * size / max(*(uv.max(0) - uv.min(0)))
    ctr = (uv.max(0) + uv.min(0)) / 2
    return Camera(cam.R, cam.t, cam.f * k, ((size - 1) / 2 - (ctr[0] - cam.c[0]) * k,
                                            (size - 1) / 2 - (ctr[1] - cam.c[1]) * k), (size, size))


def _part_render(monkeypatch, p, cam, props=(), supersample=1):  # noqa: ANN001, ANN202
    """The person drawn in one flat colour per body part over black (no shading), and its labels (at
    ``supersample`` 1 the picture's pixels are exactly the part colours: no anti-aliased mixtures)."""
    from mca.data.anny import looks
    from mca.data.anny.body import PARTS
    from mca.data.anny.render import draw_people, person_labels

    palette = np.array([[(i * 53) % 256, (i * 97 + 40) % 256, (i * 151 + 80) % 256] for i in range(len(PARTS))],
                       np.float32) / 255.0

    def albedo(mat, rest, part, *a, **k):  # noqa: ANN001, ANN202
        n = len(part)
        return palette[part], np.zeros(n, np.float32), np.ones(n, np.float32)

    monkeypatch.setattr(looks, "albedo", albedo)
    monkeypatch.setattr(looks, "shade", lambda col, *a, **k: col)
    w, h = cam.size
    frame = draw_people([p], cam, np.zeros((h, w, 3), np.float32), np.random.default_rng(0), supersample, None,
                        list(props))
    return frame, person_labels(p, 0, frame, cam), palette


def _on_parts(img: np.ndarray, xy: np.ndarray, parts: tuple[str, ...], palette: np.ndarray) -> bool:
    """Whether a pixel of the 3x3 window around ``xy`` has (nearly) the flat colour of one of ``parts``."""
    from mca.data.anny.body import PART_ID

    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    win = img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, 3)
    cols = palette[[PART_ID[q] for q in parts]]
    return bool((np.abs(win[:, None] - cols[None]).max(-1) < 0.03).any())


def test_left_bones_are_the_anatomical_left(sampler) -> None:  # noqa: ANN001
    """The body faces -Y with Z up, so its left is +X: ``.L`` bones must be there, the face in front."""
    from mca.data.anny.people import mirror_check

    b = sampler.body
    assert mirror_check(b.rest_heads, b.bone_index)
    p = _plain(sampler)
    coco = p.joints3d["coco17"]
    head = b.rest_heads[b.bone_index["head"]]
    assert coco[0, 1] < head[1] - 0.05  # the nose is in front of the head bone (-Y)
    assert coco[1, 0] > 0 > coco[2, 0]  # l_eye on +X, r_eye on -X


@pytest.mark.parametrize("azimuth,left_on_right", [(0.0, True), (180.0, False), (20.0, True), (200.0, False)])
def test_side_matches_facing(sampler, azimuth: float, left_on_right: bool) -> None:  # noqa: ANN001
    """Facing the camera with arms spread: LEFT wrist (and elbow, shoulder) on the image's RIGHT; from behind,
    on the image's left; in both joint sets."""
    from mca.data.anny.render import JOINT_NAMES

    p = _plain(sampler)
    cam = _view(p, azimuth)
    uv = {js: cam.project(p.joints3d[js])[0] for js in JOINT_NAMES}
    for js, names in JOINT_NAMES.items():
        for j in ("wrist", "elbow", "shoulder", "hip", "ankle"):
            lx, rx = uv[js][names.index("l_" + j), 0], uv[js][names.index("r_" + j), 0]
            assert (lx > rx) == left_on_right, (js, j, lx, rx)


def test_visible_joints_land_on_their_own_parts(sampler, monkeypatch) -> None:  # noqa: ANN001
    """In a picture coloured by body part, every visible joint sits on a pixel of one of its own parts
    (a left wrist on the left forearm/hand, never on the right one)."""
    from mca.data.anny.people import ALLOWED_PARTS
    from mca.data.anny.render import JOINT_NAMES

    p = _plain(sampler)
    checked = 0
    for az, ss in ((0.0, 2), (0.0, 1), (35.0, 1), (90.0, 1), (160.0, 1), (270.0, 1)):
        frame, labels, palette = _part_render(monkeypatch, p, _view(p, az, 10.0), supersample=ss)
        img = frame.image
        for js, names in JOINT_NAMES.items():
            lab = labels[js]
            if az == 0.0:  # facing the camera, arms spread: every joint shows
                assert lab["visible"].all(), (js, [n for n, v in zip(names, lab["visible"]) if not v])
            assert lab["visible"].sum() >= 8, (az, js)
            for k, n in enumerate(names):
                if lab["visible"][k]:
                    assert _on_parts(img, lab["joints"][k], ALLOWED_PARTS[n], palette), (az, js, n)
                    checked += 1
    assert checked > 100


def test_far_hip_hidden_in_side_view(sampler, monkeypatch) -> None:  # noqa: ANN001
    """Seen from the person's left (azimuth 90), the right hip is behind the left hip and thigh."""
    from mca.data.anny.render import JOINT_NAMES

    p = _plain(sampler, {**SPREAD, "l_arm_elev": 10, "r_arm_elev": 10, "l_hip_abd": 0, "r_hip_abd": 0})
    frame, labels, palette = _part_render(monkeypatch, p, _view(p, 90.0))
    for js in JOINT_NAMES:
        names, lab = JOINT_NAMES[js], labels[js]
        assert lab["visible"][names.index("l_hip")] and not lab["visible"][names.index("r_hip")], js
        assert lab["in_image"][names.index("r_hip")]
        assert _on_parts(frame.image, lab["joints"][names.index("r_hip")], ("thigh.L", "hips.L", "torso.L"), palette)


def test_raised_thigh_hides_the_hip_behind_it(sampler, monkeypatch) -> None:  # noqa: ANN001
    """The left thigh raised level towards the camera (seen from the front, a little above): it covers the left
    hip, 25 cm behind its front; the right hip stays visible."""
    from mca.data.anny.render import JOINT_NAMES

    p = _plain(sampler, {**SPREAD, "l_hip_flex": 95, "l_knee": 100})
    _, labels, _ = _part_render(monkeypatch, p, _view(p, 0.0, 8.0))
    names, lab = JOINT_NAMES["mpii16"], labels["mpii16"]
    assert not lab["visible"][names.index("l_hip")] and lab["visible"][names.index("r_hip")]


def test_back_view_hides_the_face(sampler, monkeypatch) -> None:  # noqa: ANN001
    from mca.data.anny.render import JOINT_NAMES

    p = _plain(sampler)
    names = JOINT_NAMES["coco17"]
    face = [names.index(n) for n in ("nose", "l_eye", "r_eye")]
    front = _part_render(monkeypatch, p, _view(p, 0.0))[1]["coco17"]["visible"]
    back = _part_render(monkeypatch, p, _view(p, 180.0))[1]["coco17"]["visible"]
    assert front[face].all() and not back[face].any()


def test_prop_in_front_hides_the_joint(sampler, monkeypatch) -> None:  # noqa: ANN001
    from mca.data.anny.render import JOINT_NAMES, box_prop

    p = _plain(sampler)
    cam = _view(p, 0.0)
    names = JOINT_NAMES["mpii16"]
    before = _part_render(monkeypatch, p, cam)[1]["mpii16"]["visible"]
    knee = p.joints3d["mpii16"][names.index("l_knee")]
    box = box_prop(knee + [-0.05, -0.4, -0.05], knee + [0.05, -0.3, 0.05], np.array([0.5, 0.5, 0.5]))
    after = _part_render(monkeypatch, p, cam, [box])[1]["mpii16"]["visible"]
    k = names.index("l_knee")
    assert before[k] and not after[k]
    assert after.sum() == before.sum() - 1


def test_joints_outside_the_picture(sampler, monkeypatch) -> None:  # noqa: ANN001
    """An upper-body shot: the ankles are outside the picture, flagged so, and not visible."""
    from mca.data.anny.render import JOINT_NAMES

    p = _plain(sampler)
    upper = p.vertices[p.attrs[:, 5] > 0.3]
    _, labels, _ = _part_render(monkeypatch, p, _view(p, 0.0, 0.0, focus=upper))
    for js, names in JOINT_NAMES.items():
        lab = labels[js]
        for n in ("l_ankle", "r_ankle"):
            assert not lab["in_image"][names.index(n)] and not lab["visible"][names.index(n)]
        assert lab["visible"][names.index("l_shoulder")]


def test_coco_and_mpii_agree_joint_for_joint(sampler) -> None:  # noqa: ANN001
    """COCO-17 (Anny's surface regressor) and MPII-16 (bone heads) name the same body joints on the same side:
    each shared joint is close to its namesake and farther from the other side's."""
    from mca.data.anny.render import JOINT_NAMES

    rng = np.random.default_rng(3)
    for _ in range(3):
        p = sampler.sample(rng, allow_lying=False)
        m, c = p.joints3d["mpii16"], p.joints3d["coco17"]
        mi, ci = JOINT_NAMES["mpii16"], JOINT_NAMES["coco17"]
        for side, other in (("l_", "r_"), ("r_", "l_")):
            for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
                a = c[ci.index(side + j)]
                own, swapped = np.linalg.norm(a - m[mi.index(side + j)]), np.linalg.norm(a - m[mi.index(other + j)])
                assert own < 0.09 * p.body_scale + 0.02, (j, own)
                assert own < swapped, (side + j, own, swapped)
