"""Annotation writers for formats real tools read: COCO keypoints, YOLO detection, MPII-style json.

NumPy/OpenCV only.  Coordinates follow the project convention (pixel centres
at integers); COCO and MPII use the same, YOLO labels are normalised.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from mca.joints import get_joint_set

log = logging.getLogger(__name__)

__all__ = ["coco_keypoints_json", "yolo_label_lines", "mpii_records", "write_dataset"]


def coco_categories(joint_set: str) -> list[dict]:
    js = get_joint_set(joint_set)
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(js.names),
             "skeleton": [[a + 1, b + 1] for a, b in js.skeleton]}]


def coco_annotation(person: object, ann_id: int, image_id: int) -> dict:
    """One COCO person annotation: v = 2 visible, 1 labelled but occluded, 0 outside the frame."""
    j = np.asarray(person.joints, float)  # type: ignore[attr-defined]
    vis = np.asarray(person.visible, bool)  # type: ignore[attr-defined]
    x0, y0, x1, y1 = (float(v) for v in person.box)  # type: ignore[attr-defined]
    kps: list[float] = []
    for (x, y), v in zip(j, vis):
        inside = x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1
        flag = 2 if v else (1 if inside else 0)
        kps += [round(float(x), 2), round(float(y), 2), flag] if flag else [0.0, 0.0, 0]
    w, h = x1 - x0, y1 - y0
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [x0, y0, w, h], "area": w * h,
            "iscrowd": 0, "keypoints": kps, "num_keypoints": int(vis.sum()),
            "track_id": int(getattr(person, "track_id", 0))}


def coco_keypoints_json(images: list[dict], annotations: list[dict], joint_set: str) -> dict:
    return {"info": {"description": "mca-pose synthetic people", "version": "1"}, "licenses": [],
            "images": images, "annotations": annotations, "categories": coco_categories(joint_set)}


def yolo_label_lines(people: Iterable[object], width: int, height: int, class_id: int = 0) -> list[str]:
    """``class cx cy w h`` normalised to [0, 1], one line per person."""
    lines = []
    for p in people:
        x0, y0, x1, y1 = (float(v) for v in p.box)  # type: ignore[attr-defined]
        cx, cy, bw, bh = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
        if bw <= 0 or bh <= 0:
            continue
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


def mpii_records(image_name: str, people: Iterable[object]) -> list[dict]:
    """MPII json records exactly as the MPII loaders read them (:func:`mca.data.real.load_mpii`).

    MATLAB's 1-based pixels; ``scale`` = person height / 200; ``center`` is the hourglass
    convention's, 15 x scale above the box centre (its crop moves it back down).
    """
    recs = []
    for p in people:
        x0, y0, x1, y1 = (float(v) for v in p.box)  # type: ignore[attr-defined]
        scale = (y1 - y0) / 200.0
        recs.append({"image": image_name, "center": [(x0 + x1) / 2 + 1, (y0 + y1) / 2 + 1 - 15 * scale],
                     "scale": scale,
                     "joints": (np.asarray(p.joints, float) + 1).round(2).tolist(),  # type: ignore[attr-defined]
                     "joints_vis": np.asarray(p.visible, int).tolist(),  # type: ignore[attr-defined]
                     "track_id": int(getattr(p, "track_id", 0))})
    return recs


def write_dataset(scenes: Iterable[object], out: str | Path, joint_set: str, total: int | None = None,
                  image_ext: str = ".jpg") -> dict[str, int]:
    """Write images and all three annotation formats; returns counts."""
    from tqdm import tqdm

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    images, anns, mpii = [], [], []
    n_people = 0
    for i, scene in enumerate(tqdm(scenes, total=total, desc="rendering", unit="img")):
        name = f"{i:06d}{image_ext}"
        img = scene.image  # type: ignore[attr-defined]
        h, w = img.shape[:2]
        if not cv2.imwrite(str(out / "images" / name), img):
            raise ValueError(f"could not write {out / 'images' / name}")
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        for p in scene.people:  # type: ignore[attr-defined]
            anns.append(coco_annotation(p, len(anns) + 1, i))
        (out / "labels" / f"{i:06d}.txt").write_text("\n".join(yolo_label_lines(scene.people, w, h)) + "\n")  # type: ignore[attr-defined]
        mpii += mpii_records(name, scene.people)  # type: ignore[attr-defined]
        n_people += len(scene.people)  # type: ignore[attr-defined]
    (out / "coco_keypoints.json").write_text(json.dumps(coco_keypoints_json(images, anns, joint_set)))
    (out / "mpii.json").write_text(json.dumps(mpii))
    (out / "data.yaml").write_text(f"path: {out.resolve()}\ntrain: images\nval: images\nnames:\n  0: person\n")
    return {"images": len(images), "people": n_people}
