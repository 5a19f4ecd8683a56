"""The pose bank fitter: its kinematics match Anny's skinning, and a fit recovers a projected pose's facing.

Skipped when the optional ``anny`` package is absent or its model cache was never built (as the other
``test_anny_*`` files).
"""

from __future__ import annotations

import numpy as np
import pytest

from mca.data.anny.body import anny_available, model_ready

pytestmark = pytest.mark.skipif(not (anny_available() and model_ready()),
                                reason="needs the optional 'anny' package (pip install -e '.[synth]') and its "
                                       "model cache (python -m mca.data.anny setup, once, a few minutes)")


@pytest.fixture(scope="module")
def fk():
    from mca.data.anny.body import get_body_model
    from mca.data.anny.fit import SkeletonFK

    return SkeletonFK(get_body_model())


def test_numpy_kinematics_match_anny(fk) -> None:  # noqa: ANN001
    """The fitter's bone chain is Anny's: the same rotations put every bone head where Anny's forward does."""
    from mca.data.anny import poses as P
    from mca.data.anny.body import get_body_model

    body = get_body_model()
    rng = np.random.default_rng(3)
    for family in ("sport", "sit", "uniform"):
        _, a = P.sample_angles(rng, family)
        out = body.forward(P.to_rotations(fk.builder, a)[None], np.full((1, 6), 0.5, np.float32))
        _, H = fk.chain(a, np.eye(3), list(range(len(fk.parents))))
        assert np.abs(H - out.bone_heads[0]).max() < 2e-4, family
        # the COCO points ride rigidly on their bones: close to Anny's surface regressor (skinning blends)
        assert np.linalg.norm(fk.coco(a, np.eye(3)) - out.coco[0, :17], axis=1).max() < 0.08


def test_torch_kinematics_match_numpy(fk) -> None:  # noqa: ANN001
    import torch

    from mca.data.anny import poses as P
    from mca.data.anny.fit import TorchFK, _euler

    tfk = TorchFK(fk)
    rng = np.random.default_rng(4)
    deg, G, ref = [], [], []
    for family in ("walk", "reach", "squat", "uniform"):
        _, a = P.sample_angles(rng, family)
        g = _euler(*rng.uniform(-180, 180, 3))
        deg.append([a[k] for k in P.ANGLE_KEYS])
        G.append(g)
        ref.append(fk.coco(a, g))
    got = tfk.coco(torch.tensor(deg, dtype=torch.float64), torch.tensor(np.array(G)))
    assert np.abs(got.numpy() - np.array(ref)).max() < 1e-9


def test_fit_recovers_facing_and_reprojects(fk) -> None:  # noqa: ANN001
    """A walking adult photographed by the renderer's camera from the front (azimuth 25) and from behind (205):
    each fit reprojects within 3% of the person's size and faces the camera as the picture does (front and
    back differ only in which side of the image the left joints are on, so a fitter with the wrong side
    convention turns round).  Both are fitted in one batch."""
    from mca.data.anny import poses as P
    from mca.data.anny.fit import TorchFK, fit_people
    from mca.data.anny.render import orbit_camera

    rng = np.random.default_rng(5)
    _, a = P.sample_angles(rng, "walk")
    a.update(l_arm_elev=40.0, r_arm_elev=25.0, l_arm_plane=0.0, r_arm_plane=0.0)  # arms a little apart
    X = fk.coco(P.clip_angles(a), np.eye(3))
    azimuths = np.array([25.0, 205.0])
    uv = np.stack([orbit_camera(X.mean(0), az, 10.0, 6.0, 600.0, (256, 256)).project(X)[0] for az in azimuths])
    _, rms, fitted, _ = fit_people(TorchFK(fk), uv, np.ones((2, 17)), yaws=(0.0, 180.0), steps=60, refine=40)
    assert (rms < 0.03).all(), rms
    assert (np.abs((fitted - azimuths + 180.0) % 360.0 - 180.0) < 60.0).all(), fitted


def test_fit_command_writes_a_bank_and_rejects_bad_files(tmp_path, fk) -> None:  # noqa: ANN001
    from mca.data.anny import poses as P
    from mca.data.anny.__main__ import main
    from mca.data.anny.fit import _euler, _project
    from mca.data.anny.generate import load_pose_bank

    rng = np.random.default_rng(6)
    _, a = P.sample_angles(rng, "stand")
    uv = _project(fk.coco(a, _euler(10.0, 0.0, 0.0)), 300.0, 128.0, 128.0)
    teacher = np.concatenate([uv, np.full((17, 1), 0.9)], 1)[None].repeat(2, 0).astype(np.float32)
    teacher[1, :, 2] = 0.1  # nobody confident: skipped
    path = tmp_path / "train.npz"
    np.savez(path, teacher=teacher, sources=np.array(["vtest.avi#3", "vtest.avi#4"]))
    assert main(["fit", "--labels", str(path), "--out", str(tmp_path / "bank.npz"), "--steps", "20"]) == 0
    bank = load_pose_bank(str(tmp_path / "bank.npz"))
    assert bank.shape == (1, len(P.ANGLE_KEYS))
    lo = np.array([P.LIMITS[k[2:] if k[2:] in P.SIDED else k][0] for k in P.ANGLE_KEYS])
    hi = np.array([P.LIMITS[k[2:] if k[2:] in P.SIDED else k][1] for k in P.ANGLE_KEYS])
    assert ((bank >= lo - 1e-4) & (bank <= hi + 1e-4)).all()
    # held-out sources are never fitted, and a file without teacher keypoints is a user error
    assert main(["fit", "--labels", str(path), "--out", str(tmp_path / "b2.npz"), "--sources", "photo*"]) == 2
    np.savez(tmp_path / "bad.npz", joints=np.zeros((1, 16, 2)))
    assert main(["fit", "--labels", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "b3.npz")]) == 2
