"""Real data set loaders (MPII .mat/.h5/json, COCO, LSP) on small fixtures written in each real format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mca import heatmaps as H
from mca.data.real import AnnotationError, RealPoseDataset, load_coco, load_lsp, load_mpii, load_records
from mca.joints import get_joint_set

W_, H_ = 220, 180
DOT = (131.0, 77.0)  # the marked joint (right wrist), frame pixels, 0-based
MPII = get_joint_set("mpii16")
# a standing person ~130 px tall, MPII-16 order; the right wrist sits on the dot
LAYOUT = np.array([[95, 160], [97, 130], [100, 100], [120, 100], [122, 130], [125, 160], [110, 100], [110, 60],
                   [110, 50], [110, 32], DOT, [105, 80], [98, 62], [122, 62], [128, 82], [135, 100]], np.float32)


def _image(tmp_path, name: str = "img.jpg") -> str:
    img = np.full((H_, W_, 3), 40, np.uint8)
    cv2.circle(img, (int(DOT[0]), int(DOT[1])), 3, (255, 255, 255), -1)
    cv2.imwrite(str(tmp_path / name), img, [cv2.IMWRITE_JPEG_QUALITY, 98])
    return name


def _mpii_mat(tmp_path):
    import scipy.io

    name = _image(tmp_path)
    points = [{"id": j, "x": float(x + 1), "y": float(y + 1), "is_visible": 1} for j, (x, y) in enumerate(LAYOUT)]
    rect = {"x1": 101.0, "y1": 23.0, "x2": 121.0, "y2": 51.0, "scale": 0.65, "objpos": {"x": 111.0, "y": 91.0},
            "annopoints": {"point": points}}
    release = {"annolist": {"image": {"name": name}, "annorect": rect}, "img_train": np.array([1])}
    scipy.io.savemat(str(tmp_path / "mpii.mat"), {"RELEASE": release})
    return load_mpii(tmp_path / "mpii.mat"), "mpii16"


def _mpii_h5(tmp_path):
    h5py = pytest.importorskip("h5py", reason="annot.h5 needs h5py")
    name = _image(tmp_path)
    with h5py.File(tmp_path / "annot.h5", "w") as f:
        f["imgname"] = np.array([name.encode()], dtype="S16")
        f["center"] = np.array([[111.0, 91.0]])
        f["scale"] = np.array([0.65])
        f["part"] = (LAYOUT + 1)[None].astype(np.float64)
        f["visible"] = np.ones((1, 16))
        f["normalize"] = np.array([20.4])
    return load_mpii(tmp_path / "annot.h5"), "mpii16"


def _mpii_json(tmp_path):
    name = _image(tmp_path)
    (tmp_path / "mpii.json").write_text(json.dumps([{"image": name, "center": [111.0, 91.0], "scale": 0.65,
                                                     "joints": (LAYOUT + 1).tolist(), "joints_vis": [1] * 16}]))
    return load_mpii(tmp_path / "mpii.json"), "mpii16"


def _coco(tmp_path):
    pytest.importorskip("pycocotools", reason="COCO needs pycocotools")
    name = _image(tmp_path)
    coco = get_joint_set("coco17")
    kp = np.zeros((17, 3))
    mp = dict(zip(MPII.names, LAYOUT))
    for j, n in enumerate(coco.names):
        x, y = mp.get(n, (110 + (j % 3) * 3, 35 + j))
        kp[j] = (x, y, 2)
    gt = {"images": [{"id": 7, "file_name": name, "width": W_, "height": H_}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                           "num_keypoints": 17, "bbox": [90, 25, 50, 140], "area": 5000.0, "iscrowd": 0},
                          {"id": 2, "image_id": 7, "category_id": 1, "keypoints": [0] * 51, "num_keypoints": 0,
                           "bbox": [0, 0, 5, 5], "area": 25.0, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "person", "keypoints": list(coco.names), "skeleton": []}]}
    (tmp_path / "coco.json").write_text(json.dumps(gt))
    return load_coco(tmp_path / "coco.json"), "coco17"


def _lsp(tmp_path):
    import scipy.io

    _image(tmp_path, "im0001.jpg")
    lsp = np.array([LAYOUT[m] for m in (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9)]) + 1  # (14, 2), 1-based
    joints = np.concatenate([lsp, np.zeros((14, 1))], 1).T[:, :, None]  # (3, 14, 1), original LSP layout
    scipy.io.savemat(str(tmp_path / "joints.mat"), {"joints": joints})
    return load_lsp(tmp_path / "joints.mat"), "mpii16"


FORMATS = {"mpii .mat": _mpii_mat, "mpii .h5": _mpii_h5, "mpii json": _mpii_json, "coco": _coco, "lsp": _lsp}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_loader_parses_the_fixture(tmp_path, fmt) -> None:
    recs, js = FORMATS[fmt](tmp_path)
    assert len(recs) == 1  # COCO's person without keypoints is skipped
    r = recs[0]
    names = get_joint_set(js).names
    w = names.index("r_wrist")
    np.testing.assert_allclose(r.joints[w], DOT, atol=1e-4)
    assert r.visible[w]
    x0, y0, x1, y1 = r.box
    assert x0 < DOT[0] < x1 and y0 < DOT[1] < y1
    if fmt == "lsp":  # LSP has no pelvis or thorax
        assert not r.visible[names.index("pelvis")] and not r.visible[names.index("thorax")]
        assert r.visible.sum() == 14
    if fmt == "mpii .mat":
        np.testing.assert_allclose(r.head_box, [100, 22, 120, 50])


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_augmented_samples_keep_joints_on_their_pixels(tmp_path, fmt, seed) -> None:
    recs, js = FORMATS[fmt](tmp_path)
    ds = RealPoseDataset(recs, tmp_path, js, 64, 16, train=True, seed=seed)
    s = ds.sample(0)
    names = get_joint_set(js).names
    # the marked pixel lands where the transform says, and a right or left wrist label (flip) sits on it
    p = H.apply_affine(s.frame_to_input, np.array([DOT]))[0]
    if 2 <= p[0] < 62 and 2 <= p[1] < 62:
        assert s.crop[int(round(p[1])), int(round(p[0]))].mean() > 120
        to_in = H.heatmap_to_input_matrix((16, 16), (64, 64))
        labels = H.apply_affine(to_in, s.joints_hm)
        near = [names[j] for j in np.nonzero(np.linalg.norm(labels - p, axis=1) < 1.0)[0]]
        assert near and set(near) <= {"r_wrist", "l_wrist"}
    # the heatmap targets decode back to the labels
    coords, _ = H.decode_heatmaps(s.target[None], refine="gaussian")
    ok = s.weight > 0
    assert ok.sum() >= 8
    np.testing.assert_allclose(coords[0][ok], s.joints_hm[ok], atol=0.3)


@pytest.mark.parametrize("kind,suffix", [("mpii", ".mat"), ("mpii", ".h5"), ("mpii", ".json"), ("coco", ".json"),
                                         ("lsp", ".mat")])
def test_corrupt_annotations_are_clear_errors(tmp_path, kind, suffix) -> None:
    if suffix == ".h5":
        pytest.importorskip("h5py", reason="annot.h5 needs h5py")
    if kind == "coco":
        pytest.importorskip("pycocotools", reason="COCO needs pycocotools")
    p = tmp_path / f"bad{suffix}"
    p.write_bytes(b"\x00garbage" * 40)
    with pytest.raises(AnnotationError):
        load_records(kind, p)
    with pytest.raises(AnnotationError, match="not found"):
        load_records(kind, tmp_path / f"missing{suffix}")


def test_missing_image_and_unknown_set(tmp_path) -> None:
    recs, js = _mpii_json(tmp_path)
    (tmp_path / "img.jpg").unlink()
    with pytest.raises(AnnotationError, match="image not found"):
        RealPoseDataset(recs, tmp_path, js, 64, 16).sample(0)
    with pytest.raises(AnnotationError, match="unknown data set"):
        load_records("h36m", tmp_path / "x")
    with pytest.raises(AnnotationError, match="joints"):
        RealPoseDataset(recs, tmp_path, "coco17", 64, 16)


def _people_json(tmp_path, n: int = 6) -> None:
    """n copies of the fixture person (enough to hold some out), MPII json."""
    name = _image(tmp_path)
    items = [{"image": name, "center": [111.0, 91.0], "scale": 0.65, "joints": (LAYOUT + 1).tolist(),
              "joints_vis": [1] * 16}] * n
    (tmp_path / "mpii.json").write_text(json.dumps(items))


def test_train_and_evaluate_on_a_real_format(tmp_path, capsys) -> None:
    pytest.importorskip("torch", reason="training needs PyTorch")
    from mca.evaluate import main as eval_main
    from mca.train import main as train_main

    _people_json(tmp_path)
    common = ["--annotations", str(tmp_path / "mpii.json"), "--images", str(tmp_path)]
    assert train_main(["--config", "mca_tiny", "--data", "mpii", *common, "--epochs", "1", "--iters-per-epoch", "2",
                       "--batch-size", "2", "--workers", "0", "--out", str(tmp_path / "run")]) == 0
    assert eval_main(["--checkpoint", str(tmp_path / "run" / "last.pt"), "--data", "mpii", *common,
                      "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["people"] == 6 and 0.0 <= m["pckh@0.5"] <= 1.0 and "pckh@0.5 r_wrist" in m
    capsys.readouterr()
    # a COCO-17 data set on an MPII-16 config, or a missing --images, is one clear line
    assert train_main(["--config", "mca_tiny", "--data", "coco", *common, "--out", str(tmp_path / "x")]) == 2
    assert "coco17" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(tmp_path / "run" / "last.pt"), "--data", "lsp"]) == 2
    assert "needs --annotations and --images" in capsys.readouterr().err


def test_coco_oks_ap_of_a_perfect_model_is_one(tmp_path) -> None:
    from mca.evaluate import evaluate_real

    recs, js = _coco(tmp_path)
    ds = RealPoseDataset(recs, tmp_path, js, 256, 64, train=False)  # fine heatmaps: decoding costs < 1 px
    targets = np.stack([ds.sample(i).target for i in range(len(ds))])
    flip = get_joint_set(js).flip_index
    perfect = evaluate_real(lambda crops: targets[: len(crops)], recs, tmp_path, "coco", js, 256, 64, flip,
                            coco_annotations=tmp_path / "coco.json")
    assert perfect["oks AP"] == pytest.approx(1.0) and perfect["pck@0.2"] == pytest.approx(1.0)
    shifted = evaluate_real(lambda crops: np.roll(targets[: len(crops)], 3, axis=-1), recs, tmp_path, "coco", js,
                            256, 64, flip, coco_annotations=tmp_path / "coco.json")
    assert shifted["oks AP"] < 1.0
