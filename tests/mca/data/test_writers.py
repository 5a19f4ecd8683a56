"""Annotation writers: COCO keypoints JSON (read back with pycocotools), YOLO labels, MPII-style json, the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mca.data import writers as Wr
from mca.data.synthetic import Person, Scene, SceneRenderer
from mca.joints import get_joint_set

W, H = 200, 150


def _person(joints, visible, box, track_id=0) -> Person:
    return Person(np.asarray(joints, np.float32).reshape(-1, 2), np.asarray(visible, bool),
                  np.asarray(box, np.float32), track_id, 100.0)


def _in_frame(j: np.ndarray, w: int, h: int) -> np.ndarray:
    r = np.round(j.astype(np.float64))
    return (r[:, 0] >= 0) & (r[:, 0] < w) & (r[:, 1] >= 0) & (r[:, 1] < h)


# ----------------------------------------------------------------------------- unit tables
BOX = (10.0, 10.0, 50.0, 90.0)


@pytest.mark.parametrize("joint,visible,expected", [
    ((20.0, 30.0), True, [20.0, 30.0, 2]),             # visible
    ((20.0, 30.0), False, [20.0, 30.0, 1]),            # occluded inside the box: labelled, not visible
    ((20.126, 30.334), True, [20.13, 30.33, 2]),       # rounded to 2 decimals
    ((9.5, 30.0), False, [9.5, 30.0, 1]),              # 1 px tolerance around the box
    ((5.0, 30.0), False, [0.0, 0.0, 0]),               # outside the box: not labelled, zeroed
    ((30.0, 95.0), False, [0.0, 0.0, 0]),
    ((-3.0, -4.0), False, [0.0, 0.0, 0]),
])
def test_coco_annotation_keypoint_flags(joint, visible, expected) -> None:
    p = _person([joint, (30.0, 50.0)], [visible, True], BOX, track_id=7)
    a = Wr.coco_annotation(p, ann_id=3, image_id=11)
    assert a["keypoints"][:3] == pytest.approx(expected)
    assert a["keypoints"][3:] == pytest.approx([30.0, 50.0, 2])
    assert isinstance(a["keypoints"][2], int)
    assert (a["id"], a["image_id"], a["category_id"], a["iscrowd"], a["track_id"]) == (3, 11, 1, 0, 7)
    assert a["bbox"] == pytest.approx([10.0, 10.0, 40.0, 80.0])
    assert a["area"] == pytest.approx(3200.0)


@pytest.mark.parametrize("box,size,class_id,expected", [
    ((10, 20, 50, 100), (200, 100), 0, ["0 0.150000 0.600000 0.200000 0.800000"]),
    ((0, 0, 199, 99), (200, 100), 0, ["0 0.497500 0.495000 0.995000 0.990000"]),
    ((10, 20, 50, 100), (200, 100), 3, ["3 0.150000 0.600000 0.200000 0.800000"]),
    ((10, 20, 10, 100), (200, 100), 0, []),   # zero width: no label line
    ((10, 20, 50, 20), (200, 100), 0, []),    # zero height
])
def test_yolo_label_lines_table(box, size, class_id, expected) -> None:
    p = _person([(0.0, 0.0)], [False], box)
    assert Wr.yolo_label_lines([p], *size, class_id=class_id) == expected


@pytest.mark.parametrize("box,center,scale", [  # MATLAB 1-based; centre 15 x scale above the box centre
    ((10, 20, 50, 220), (31.0, 121.0 - 15.0), 1.0),
    ((0, 0, 100, 50), (51.0, 26.0 - 3.75), 0.25),
])
def test_mpii_records_table(box, center, scale) -> None:
    p = _person([(1.234, 5.678), (9.0, 10.0)], [True, False], box, track_id=4)
    (rec,) = Wr.mpii_records("000001.jpg", [p])
    assert rec["image"] == "000001.jpg"
    assert rec["center"] == pytest.approx(center) and rec["scale"] == pytest.approx(scale)
    assert rec["joints"] == [[2.23, 6.68], [10.0, 11.0]]
    assert rec["joints_vis"] == [1, 0] and all(type(v) is int for v in rec["joints_vis"])
    assert rec["track_id"] == 4
    json.dumps(rec)  # plain JSON types only


@pytest.mark.parametrize("joint_set", ["mpii16", "coco17"])
def test_coco_categories_follow_the_joint_set(joint_set) -> None:
    js = get_joint_set(joint_set)
    (cat,) = Wr.coco_categories(joint_set)
    assert cat["id"] == 1 and cat["name"] == "person"
    assert cat["keypoints"] == list(js.names)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in js.skeleton]  # COCO skeletons are 1-based
    assert min(min(e) for e in cat["skeleton"]) >= 1 and max(max(e) for e in cat["skeleton"]) <= js.num_joints


# ----------------------------------------------------------------------------- a written data set
@pytest.fixture(scope="module", params=[("mpii16", 16, ".jpg"), ("coco17", 17, ".png")],
                ids=["mpii16-jpg", "coco17-png"])
def dataset(request, tmp_path_factory):
    joint_set, k, ext = request.param
    out = tmp_path_factory.mktemp(joint_set)
    r = SceneRenderer(joint_set, (W, H), seed=3, min_people=1, max_people=4, min_height=50, max_height=260)
    scenes = [r.render(i) for i in range(5)]
    scenes.append(Scene(np.full((H, W, 3), 128, np.uint8), [], 5))  # an image with nobody in it
    stats = Wr.write_dataset(iter(scenes), out, joint_set, total=len(scenes), image_ext=ext)
    return dict(out=out, scenes=scenes, k=k, joint_set=joint_set, ext=ext, stats=stats)


def _people(ds):
    return [p for s in ds["scenes"] for p in s.people]


def test_write_dataset_writes_every_file(dataset) -> None:
    out, scenes = dataset["out"], dataset["scenes"]
    people = _people(dataset)
    assert len(people) >= 5, "the test needs people"
    assert any(not (p.visible | ~_in_frame(p.joints, W, H)).all() for p in people), "and occluded joints"
    assert dataset["stats"] == {"images": len(scenes), "people": len(people)}
    names = [f"{i:06d}{dataset['ext']}" for i in range(len(scenes))]
    assert sorted(f.name for f in (out / "images").iterdir()) == names
    assert sorted(f.name for f in (out / "labels").iterdir()) == [f"{i:06d}.txt" for i in range(len(scenes))]
    yaml = (out / "data.yaml").read_text()
    assert f"path: {out.resolve()}" in yaml and "0: person" in yaml


def test_written_images_match_the_scenes(dataset) -> None:
    for i, s in enumerate(dataset["scenes"]):
        img = cv2.imread(str(dataset["out"] / "images" / f"{i:06d}{dataset['ext']}"))
        assert img is not None and img.shape == s.image.shape
        if dataset["ext"] == ".png":
            assert np.array_equal(img, s.image)  # lossless
        else:
            assert np.abs(img.astype(int) - s.image.astype(int)).mean() < 8


def test_coco_json_loads_in_pycocotools(dataset) -> None:
    from pycocotools.coco import COCO

    k, people = dataset["k"], _people(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(dataset["out"] / "coco_keypoints.json"))
    assert sorted(coco.getImgIds()) == list(range(len(dataset["scenes"])))
    assert len(coco.getAnnIds()) == len(people)
    assert coco.getCatIds() == [1]
    assert coco.loadCats(1)[0]["keypoints"] == list(get_joint_set(dataset["joint_set"]).names)
    for i, s in enumerate(dataset["scenes"]):
        img = coco.loadImgs(i)[0]
        assert (img["width"], img["height"], img["file_name"]) == (W, H, f"{i:06d}{dataset['ext']}")
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i]))
        assert len(anns) == len(s.people)
        for a, p in zip(sorted(anns, key=lambda a: a["track_id"]), s.people):
            assert a["track_id"] == p.track_id
            assert len(a["keypoints"]) == 3 * k
            assert a["num_keypoints"] == int(p.visible.sum())
            kp = np.array(a["keypoints"], float).reshape(k, 3)
            flags = kp[:, 2]
            assert set(flags.tolist()) <= {0, 1, 2}
            np.testing.assert_array_equal(flags == 2, p.visible)
            labelled = flags > 0
            np.testing.assert_allclose(kp[labelled, :2], p.joints[labelled], atol=0.006)
            assert (kp[~labelled, :2] == 0).all()
            # 0 = not labelled only for joints outside the frame; everything in the frame is labelled
            assert labelled[_in_frame(p.joints, W, H)].all()
            x0, y0, x1, y1 = p.box
            np.testing.assert_allclose(a["bbox"], [x0, y0, x1 - x0, y1 - y0], atol=1e-4)


def _coco_eval(gt, dets, k: int):
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
        ev.params.kpt_oks_sigmas = np.full(k, SIGMA)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


SIGMA = 0.05  # one OKS sigma for every joint, so the expected similarity is one closed-form number


def test_coco_ap_of_a_known_perturbation(dataset) -> None:
    """Each person's keypoints moved so that OKS is exactly 0.72 (by hand, from the scene's own box area):
    COCOeval must see that OKS and give AP 0.5 (matches at thresholds .50-.70, none at .75-.95), AP50 1, AP75 0.
    The ground truth as detections scores AP 1. A wrong area, flag or coordinate in the file changes these."""
    from pycocotools.coco import COCO

    k, target = dataset["k"], 0.72
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(dataset["out"] / "coco_keypoints.json"))
    same, moved, expected = [], [], {}
    for i, s in enumerate(dataset["scenes"]):
        anns = {a["track_id"]: a for a in gt.loadAnns(gt.getAnnIds(imgIds=[i]))}
        for j, p in enumerate(s.people):
            kp = np.array(anns[p.track_id]["keypoints"], float).reshape(k, 3)
            x0, y0, x1, y1 = p.box.astype(float)
            area = (x1 - x0) * (y1 - y0)  # OKS scale s^2: the box area (the writer's contract)
            # exp(-d^2 / (2 s^2 (2 sigma)^2)) = target for every joint, so their mean is the target too
            d = np.sqrt(-np.log(target) * 2 * area * (2 * SIGMA) ** 2)
            m = kp.copy()
            m[:, 0] += d
            same.append({"image_id": i, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
            moved.append({"image_id": i, "category_id": 1, "keypoints": m.reshape(-1).tolist(), "score": 1.0})
            if (kp[:, 2] > 0).any():  # a person without labelled joints has no keypoint OKS
                expected.setdefault(i, []).append(j)
    assert sum(map(len, expected.values())) >= 5, "the test needs labelled people"
    assert _coco_eval(gt, same, k).stats[0] == pytest.approx(1.0)
    ev = _coco_eval(gt, moved, k)
    for i, idx in expected.items():
        ious = np.asarray(ev.ious[(i, 1)])
        np.testing.assert_allclose(np.diag(ious)[idx], target, atol=1e-6)
    assert ev.stats[0] == pytest.approx(0.5, abs=1e-6)  # AP over OKS .50:.05:.95
    assert ev.stats[1] == pytest.approx(1.0, abs=1e-6) and ev.stats[2] == pytest.approx(0.0, abs=1e-6)


def test_yolo_labels_match_the_boxes(dataset) -> None:
    for i, s in enumerate(dataset["scenes"]):
        text = (dataset["out"] / "labels" / f"{i:06d}.txt").read_text()
        rows = [ln.split() for ln in text.splitlines() if ln.strip()]
        assert len(rows) == len(s.people)
        for row, p in zip(rows, s.people):
            assert len(row) == 5 and row[0] == "0"
            cx, cy, w, h = map(float, row[1:])
            assert all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) and w > 0 and h > 0
            xyxy = [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]
            np.testing.assert_allclose(xyxy, p.box, atol=1e-3)


def test_mpii_json_round_trips(dataset) -> None:
    """What the writer writes, the MPII loader reads back: same joints, visibility, and a box around the person."""
    from mca.data.real import load_mpii

    recs = json.loads((dataset["out"] / "mpii.json").read_text())
    expected = [(f"{i:06d}{dataset['ext']}", p) for i, s in enumerate(dataset["scenes"]) for p in s.people]
    assert len(recs) == len(expected)
    if dataset["k"] != 16:
        return  # the MPII loader is for MPII-16
    loaded = load_mpii(dataset["out"] / "mpii.json")
    for r, rec, (name, p) in zip(recs, loaded, expected):
        assert r["image"] == rec.image == name and r["track_id"] == p.track_id
        np.testing.assert_allclose(rec.joints, p.joints, atol=0.006)
        assert rec.visible.tolist() == p.visible.tolist()
        x0, y0, x1, y1 = p.box
        bx0, by0, bx1, by1 = rec.box
        assert ((bx0 + bx1) / 2, (by0 + by1) / 2) == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2), abs=1e-3)
        assert by1 - by0 == pytest.approx(y1 - y0, abs=1e-3)


# ----------------------------------------------------------------------------- CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mca.data.synthetic", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("extra,joint_set,size", [
    ([], "mpii16", (160, 120)),
    (["--joint-set", "coco17", "--seed", "4", "--min-people", "1"], "coco17", (160, 120)),
    (["--video", "--people", "2", "--fps", "10"], "mpii16", (160, 120)),
    ([], "mpii16", (64, 48)),  # small frames work with the default person heights
])
def test_cli_writes_a_data_set(tmp_path: Path, extra, joint_set, size) -> None:
    from pycocotools.coco import COCO

    out = tmp_path / "ds"
    r = _cli("--out", str(out), "--num", "3", "--size", f"{size[0]}x{size[1]}", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote 3 images" in r.stdout
    assert sorted(f.name for f in (out / "images").iterdir()) == [f"{i:06d}.jpg" for i in range(3)]
    assert len(list((out / "labels").glob("*.txt"))) == 3
    for f in (out / "images").iterdir():
        assert cv2.imread(str(f)).shape == (size[1], size[0], 3)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "coco_keypoints.json"))
    assert len(coco.getImgIds()) == 3
    k = get_joint_set(joint_set).num_joints
    assert all(len(a["keypoints"]) == 3 * k for a in coco.loadAnns(coco.getAnnIds()))
    recs = json.loads((out / "mpii.json").read_text())
    assert len(recs) == len(coco.getAnnIds())
    assert (out / "data.yaml").exists()


@pytest.mark.parametrize("args,message", [
    (["--size", "big"], "640x480"),
    (["--size", "160x"], "640x480"),
    (["--size", "160x120x3"], "640x480"),
    (["--size", "16x16"], "at least 32x32"),
    (["--num", "0"], "--num must be >= 1"),
    (["--min-people", "3", "--max-people", "1"], "min_people"),
    (["--joint-set", "h36m"], "invalid choice"),
    (["--video", "--fps", "0"], "fps"),
])
def test_cli_rejects_bad_arguments_cleanly(tmp_path: Path, args, message) -> None:
    out = tmp_path / "ds"
    r = _cli("--out", str(out), "--num", str(2), *args) if "--num" not in args else _cli("--out", str(out), *args)
    text = r.stdout + r.stderr
    assert r.returncode == 2  # a user error
    assert message in text, text
    assert "Traceback" not in text
    assert not (out / "coco_keypoints.json").exists()
