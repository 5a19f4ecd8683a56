"""Anny renderer: the NumPy rasterizer (always), and with ``anny`` installed: determinism, scenes, the datasets,
the cache (manifest, resume), the command line.  Timings are never asserted (``-m bench`` prints one)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mca.data.anny.body import anny_available, model_ready
from mca.data.anny.raster import look_at_camera, rasterize

needs_anny = pytest.mark.skipif(not (anny_available() and model_ready()),
                                reason="needs the optional 'anny' package (pip install -e '.[synth]') and its model "
                                       "cache (python -m mca.data.anny setup, once, a few minutes)")


# ----------------------------------------------------------------------------- rasterizer (NumPy only)
def test_rasterizer_depth_order_culling_and_perspective() -> None:
    cam = look_at_camera([0, -5, 0], [0, 0, 0], 100.0, (64, 64))
    # two overlapping quads (triangle pairs) facing the camera (counter-clockwise seen from -Y), at y = 0 and 1
    def quad(y: float, s: float) -> np.ndarray:
        return np.array([[-s, y, -s], [s, y, -s], [s, y, s], [-s, y, s]], float)
    v = np.concatenate([quad(1.0, 1.0), quad(0.0, 0.5)])
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    uv, z = cam.project(v)
    r = rasterize(uv, z, f, cam.size)
    c = r.face[32, 32]
    assert c in (2, 3), "the nearer quad wins the z-test"
    assert r.face[32, 20] in (0, 1) and r.face[32, 5] == -1, "the farther, larger quad shows around it"
    assert np.isclose(r.depth[32, 32], 5.0, atol=1e-3)
    # the same quads wound the other way are back faces: culled unless double-sided
    fb = f[:, ::-1]
    assert not rasterize(uv, z, fb, cam.size).mask.any()
    assert rasterize(uv, z, fb, cam.size, double_sided=np.ones(4, bool)).mask.sum() == r.mask.sum()
    # perspective-correct barycentrics: a triangle receding in depth, the interpolated 3-D point lies on it
    tri = np.array([[-1, 0, -1], [1, 4, -1], [0, 2, 1]], float)
    uv, z = cam.project(tri)
    r = rasterize(uv, z, np.array([[0, 1, 2]]), cam.size, double_sided=np.ones(1, bool))
    ys, xs = np.nonzero(r.mask)
    p3 = np.einsum("pk,kc->pc", r.bary[ys, xs], tri)
    back = cam.project(p3)[0]
    assert np.abs(back - np.stack([xs, ys], 1)).max() < 1e-3  # exact; affine barycentrics would be off


# ----------------------------------------------------------------------------- with anny
@pytest.fixture(scope="module")
def crops():
    from mca.data.anny.generate import AnnyCropRenderer

    return AnnyCropRenderer(128, seed=5, collision_check=False)


@needs_anny
def test_crop_render_is_deterministic(crops) -> None:  # noqa: ANN001
    from mca.data.anny.generate import AnnyCropRenderer

    a, b = crops.render(3), crops.render(3)
    assert np.array_equal(a.image, b.image) and len(a.people) == len(b.people) == 1
    pa, pb = a.people[0], b.people[0]
    for js in ("mpii16", "coco17"):
        for k in ("joints", "visible", "in_image"):
            assert np.array_equal(pa.labels[js][k], pb.labels[js][k])
    assert pa.joints.shape == (16, 2) and pa.labels["coco17"]["joints"].shape == (17, 2)
    assert not np.array_equal(a.image, crops.render(4).image)
    assert not np.array_equal(a.image, AnnyCropRenderer(128, seed=6, collision_check=False).render(3).image)


@needs_anny
def test_scene_people_boxes_and_yolo_lines() -> None:
    from mca.data.anny.generate import AnnySceneRenderer
    from mca.data.writers import yolo_label_lines

    r = AnnySceneRenderer((160, 120), seed=2, min_people=2, max_people=3, collision_check=False)
    s = r.render(1)
    assert s.image.shape == (120, 160, 3) and np.array_equal(s.image, r.render(1).image)
    assert 1 <= len(s.people) <= 3
    for p in s.people:
        x0, y0, x1, y1 = p.box
        assert 0 <= x0 < x1 <= 159 and 0 <= y0 < y1 <= 119
        vis = p.visible & p.labels["mpii16"]["in_image"]
        assert np.array_equal(vis, p.visible)  # visible implies inside the frame
        j = p.joints[p.visible]
        assert ((j >= p.box[:2] - 1) & (j <= p.box[2:] + 1)).all()  # visible joints inside the amodal box
    lines = yolo_label_lines(s.people, 160, 120)
    assert len(lines) == len(s.people) and all(len(x.split()) == 5 for x in lines)


@needs_anny
def test_pose_dataset_item_matches_the_synthetic_one() -> None:
    from mca.data.anny.dataset import AnnyPoseDataset
    from mca.data.datasets import SyntheticPoseDataset

    ref = SyntheticPoseDataset("mpii16", 64, 16, 4, seed=0)[0]
    ds = AnnyPoseDataset("mpii16", 64, 16, 4, seed=0, canvas=128, collision_check=False)
    it = ds[1]
    assert set(it) == set(ref)
    for k in ref:
        assert it[k].shape == ref[k].shape and it[k].dtype == ref[k].dtype, k
    assert float(it["weight"].sum()) > 0
    again = AnnyPoseDataset("mpii16", 64, 16, 4, seed=0, canvas=128, collision_check=False)[1]
    assert all(np.array_equal(it[k].numpy(), again[k].numpy()) for k in it)


@needs_anny
def test_cache_manifest_resume_and_dataset(tmp_path) -> None:  # noqa: ANN001
    from mca.data.anny.cache import write_cache
    from mca.data.anny.dataset import AnnyCachedPoseDataset
    from mca.data.anny.generate import AnnyCropRenderer

    out = tmp_path / "c"
    m = write_cache(out, 3, "anny-pose", seed=4, size=96, collision_check=False, chunk=2)
    assert m["complete"] and m["num_valid"] == 3 and m["chunks_done"] == [0, 1]
    first = (out / "images" / "0000002.jpg").read_bytes()
    (out / "meta" / "chunk_00001.npz").unlink()
    (out / "images" / "0000002.jpg").unlink()
    m2 = write_cache(out, 3, "anny-pose", seed=4, size=96, collision_check=False, chunk=2)
    assert m2["complete"] and (out / "images" / "0000002.jpg").read_bytes() == first
    assert json.loads((out / "manifest.json").read_text())["joint_names"]["coco17"][0] == "nose"
    with pytest.raises(ValueError, match="other settings"):
        write_cache(out, 3, "anny-pose", seed=5, size=96, collision_check=False, chunk=2)
    ds = AnnyCachedPoseDataset(out, "coco17", 64, 16, train=False)
    assert len(ds) == 3
    direct = AnnyCropRenderer(96, seed=4, collision_check=False).render(2).people[0].labels["coco17"]
    assert np.allclose(ds.joints[2], direct["joints"]) and np.array_equal(ds.visible[2], direct["visible"])
    it = ds[2]
    assert it["target"].shape == (17, 16, 16) and np.allclose(it["gt_joints"].numpy(), direct["joints"])
    # python -m mca.train --data anny: every k-th item validates (k = 3 items / 1), never trained on
    from mca.data.anny.dataset import cached_train_val
    from mca.train import main as train_main

    tr, va = cached_train_val(out, "mpii16", 64, 16, val_size=1)
    assert sorted(tr.index[tr.rows]) == [0, 1] and list(va.index[va.rows]) == [2]
    run = ["--config", "mca_tiny", "--epochs", "1", "--iters-per-epoch", "1", "--batch-size", "2", "--val-size", "1",
           "--workers", "0", "--out", str(tmp_path / "run"), "--data", "anny"]
    assert train_main(run) == 2  # no --anny-cache
    assert train_main([*run, "--anny-cache", str(tmp_path / "none")]) == 2
    assert train_main([*run, "--anny-cache", str(out)]) == 0
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 2


def test_cli_rejects_bad_input(tmp_path) -> None:  # noqa: ANN001
    r = subprocess.run([sys.executable, "-m", "mca.data.anny", "cache", "--out", str(tmp_path / "x"), "--num", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.bench
@needs_anny
def test_bench_command_reports_crops_per_second() -> None:
    r = subprocess.run([sys.executable, "-m", "mca.data.anny", "bench", "--num", "5", "--workers", "2"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    assert "crops/s" in r.stdout
