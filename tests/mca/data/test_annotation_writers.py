"""COCO keypoints JSON (pycocotools), YOLO labels, MPII-style json, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mca.data.synthetic import SceneRenderer
from mca.data.writers import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    r = SceneRenderer("coco17", (160, 120), seed=0, min_people=1, max_people=3)
    scenes = [r.render(i) for i in range(4)]
    write_dataset(scenes, out, "coco17", total=4)
    return out, scenes


def test_coco_json_loads_in_pycocotools(dataset) -> None:
    from pycocotools.coco import COCO

    out, scenes = dataset
    coco = COCO(str(out / "coco_keypoints.json"))
    people = [p for s in scenes for p in s.people]
    assert len(coco.getAnnIds()) == len(people) and len(coco.getImgIds()) == 4
    anns = coco.loadAnns(coco.getAnnIds())
    for a, p in zip(anns, people):
        kp = np.array(a["keypoints"]).reshape(17, 3)
        assert set(kp[:, 2].tolist()) <= {0, 1, 2}
        np.testing.assert_array_equal(kp[:, 2] == 2, p.visible)
        np.testing.assert_allclose(kp[p.visible, :2], p.joints[p.visible], atol=0.01)
        assert a["num_keypoints"] == int(p.visible.sum())


def test_yolo_labels_match_boxes(dataset) -> None:
    out, scenes = dataset
    for i, s in enumerate(scenes):
        lines = (out / "labels" / f"{i:06d}.txt").read_text().split("\n")
        rows = [list(map(float, ln.split())) for ln in lines if ln.strip()]
        assert len(rows) == len(s.people)
        for row, p in zip(rows, s.people):
            c, cx, cy, w, h = row
            assert c == 0 and all(0 <= v <= 1 for v in (cx, cy, w, h))
            np.testing.assert_allclose([cx * 160 - w * 80, cy * 120 - h * 60], p.box[:2], atol=0.01)


def test_mpii_json_round_trips(dataset) -> None:
    out, scenes = dataset
    recs = json.loads((out / "mpii.json").read_text())
    people = [p for s in scenes for p in s.people]
    assert len(recs) == len(people)
    for r, p in zip(recs, people):
        np.testing.assert_allclose(np.array(r["joints"]) - 1, p.joints, atol=0.01)  # MATLAB 1-based
        assert r["joints_vis"] == p.visible.astype(int).tolist()
        assert r["scale"] == pytest.approx((p.box[3] - p.box[1]) / 200)


def test_cli(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "mca.data.synthetic", "--out", str(tmp_path), "--num", "2",
                        "--size", "96x80"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "coco_keypoints.json").exists() and len(list((tmp_path / "images").iterdir())) == 2
    bad = subprocess.run([sys.executable, "-m", "mca.data.synthetic", "--out", str(tmp_path), "--size", "big"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "640x480" in bad.stderr and "Traceback" not in bad.stderr
