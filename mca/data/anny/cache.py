"""Generated caches of Anny renders: resumable, deterministic per seed, with a manifest.

Layout of a cache directory::

    manifest.json            kind ("anny-pose" | "anny-scenes"), settings, joint names, chunks done, counts
    images/0000000.jpg       the pictures (JPEG quality 95), named by item index
    labels/0000000.txt       scenes only: YOLO person boxes (class cx cy w h, normalised)
    meta/chunk_00000.npz     labels of a chunk of items (written atomically, so a chunk is done or absent)
    meta/chunk_00000.json    per-item metadata (age, pose family, camera azimuth, ...)
    coco_keypoints.json, data.yaml   scenes only, written when every chunk is done

Item ``i`` depends only on (seed, i), so chunks can be rendered by several processes in any order and an
interrupted run resumes where it stopped (finished chunks are skipped) with the same result.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["write_cache", "CACHE_VERSION"]

CACHE_VERSION = 1
_STATE: dict = {}


def _renderer(kind: str, settings: dict):  # noqa: ANN202
    key = (kind, json.dumps(settings, sort_keys=True), os.getpid())
    if _STATE.get("key") != key:
        from mca.data.anny.generate import AnnyCropRenderer, AnnySceneRenderer

        if kind == "anny-pose":
            r = AnnyCropRenderer(settings["size"], "mpii16", settings["seed"], settings["supersample"],
                                 collision_check=settings["collision_check"], pose_bank=settings["pose_bank"])
        else:
            r = AnnySceneRenderer(tuple(settings["scene_size"]), "mpii16", settings["seed"],
                                  settings["min_people"], settings["max_people"], settings["supersample"],
                                  collision_check=settings["collision_check"], pose_bank=settings["pose_bank"])
        _STATE.update(key=key, renderer=r)
    return _STATE["renderer"]


def _pose_chunk(root: Path, c: int, lo: int, hi: int, settings: dict) -> int:
    r = _renderer("anny-pose", settings)
    cols: dict[str, list] = {k: [] for k in ("index", "valid", "box", "mpii16_joints", "mpii16_visible",
                                             "mpii16_in_image", "coco17_joints", "coco17_visible",
                                             "coco17_in_image")}
    metas = []
    for i in range(lo, hi):
        s = r.render(i)
        cv2.imwrite(str(root / "images" / f"{i:07d}.jpg"), s.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cols["index"].append(i)
        cols["valid"].append(bool(s.people))
        if s.people:
            p = s.people[0]
            cols["box"].append(p.box)
            for js in ("mpii16", "coco17"):
                for k in ("joints", "visible", "in_image"):
                    cols[f"{js}_{k}"].append(p.labels[js][k])
            metas.append({"index": i, **{k: v for k, v in p.meta.items() if k != "phenotypes"},
                          "phenotypes": [round(float(x), 4) for x in p.meta.get("phenotypes", [])]})
        else:
            cols["box"].append(np.zeros(4, np.float32))
            for js, k in (("mpii16", 16), ("coco17", 17)):
                cols[f"{js}_joints"].append(np.zeros((k, 2), np.float32))
                cols[f"{js}_visible"].append(np.zeros(k, bool))
                cols[f"{js}_in_image"].append(np.zeros(k, bool))
            metas.append({"index": i, "valid": False})
    _save_chunk(root, c, {k: np.asarray(v) for k, v in cols.items()}, metas)
    return hi - lo


def _scene_chunk(root: Path, c: int, lo: int, hi: int, settings: dict) -> int:
    from mca.data.writers import yolo_label_lines

    r = _renderer("anny-scenes", settings)
    rows: dict[str, list] = {k: [] for k in ("image", "track", "box", "height_px", "mpii16_joints",
                                             "mpii16_visible", "mpii16_in_image", "coco17_joints",
                                             "coco17_visible", "coco17_in_image")}
    metas = []
    for i in range(lo, hi):
        s = r.render(i)
        h, w = s.image.shape[:2]
        cv2.imwrite(str(root / "images" / f"{i:07d}.jpg"), s.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (root / "labels" / f"{i:07d}.txt").write_text("\n".join(yolo_label_lines(s.people, w, h)) + "\n")
        for p in s.people:
            rows["image"].append(i)
            rows["track"].append(p.track_id)
            rows["box"].append(p.box)
            rows["height_px"].append(p.height_px)
            for js in ("mpii16", "coco17"):
                for k in ("joints", "visible", "in_image"):
                    rows[f"{js}_{k}"].append(p.labels[js][k])
        metas.append({"index": i, "width": w, "height": h, "people": [
            {k: v for k, v in p.meta.items() if k != "phenotypes"} for p in s.people]})
    arr = {k: np.asarray(v) for k, v in rows.items()}
    if not rows["image"]:  # a chunk without people still needs well-shaped columns
        arr = {"image": np.zeros(0, np.int64), "track": np.zeros(0, np.int64), "box": np.zeros((0, 4), np.float32),
               "height_px": np.zeros(0, np.float32)}
        for js, k in (("mpii16", 16), ("coco17", 17)):
            arr[f"{js}_joints"] = np.zeros((0, k, 2), np.float32)
            arr[f"{js}_visible"] = arr[f"{js}_in_image"] = np.zeros((0, k), bool)
    _save_chunk(root, c, arr, metas)
    return hi - lo


def _save_chunk(root: Path, c: int, arrays: dict[str, np.ndarray], metas: list[dict]) -> None:
    tmp = root / "meta" / f".chunk_{c:05d}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    (root / "meta" / f"chunk_{c:05d}.json").write_text(json.dumps(metas))
    os.replace(tmp, root / "meta" / f"chunk_{c:05d}.npz")


def _work(args: tuple) -> tuple[int, int]:
    kind, root, c, lo, hi, settings = args
    fn = _pose_chunk if kind == "anny-pose" else _scene_chunk
    return c, fn(Path(root), c, lo, hi, settings)


def _finish_scenes(root: Path, manifest: dict) -> None:
    """COCO keypoints json (MPII-16 and COCO-17 variants) and the YOLO data.yaml once every chunk is done."""
    from types import SimpleNamespace

    from mca.data.writers import coco_annotation, coco_keypoints_json

    images, anns = {}, {"mpii16": [], "coco17": []}
    for c in sorted(manifest["chunks_done"]):
        with np.load(root / "meta" / f"chunk_{c:05d}.npz", allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        for m in json.loads((root / "meta" / f"chunk_{c:05d}.json").read_text()):
            images[m["index"]] = {"id": m["index"], "file_name": f"{m['index']:07d}.jpg", "width": m["width"],
                                  "height": m["height"]}
        for k in range(len(d["image"])):
            for js in anns:
                p = SimpleNamespace(joints=d[f"{js}_joints"][k], visible=d[f"{js}_visible"][k], box=d["box"][k],
                                    track_id=int(d["track"][k]))
                anns[js].append(coco_annotation(p, len(anns[js]) + 1, int(d["image"][k])))
    imgs = [images[i] for i in sorted(images)]
    for js in anns:
        (root / f"coco_keypoints_{js}.json").write_text(json.dumps(coco_keypoints_json(imgs, anns[js], js)))
    (root / "data.yaml").write_text(f"path: {root.resolve()}\ntrain: images\nval: images\nnames:\n  0: person\n")


def write_cache(out: str | Path, num: int, kind: str = "anny-pose", seed: int = 0, size: int = 256,
                scene_size: tuple[int, int] = (640, 480), min_people: int = 1, max_people: int = 6,
                supersample: int = 2, collision_check: bool = True, pose_bank: str | None = None,
                workers: int = 1, chunk: int = 250, command: str = "") -> dict:
    """Render (or resume) a cache of ``num`` items into ``out``; returns the manifest."""
    from tqdm import tqdm

    from mca.data.anny.body import ANNY_VERSION
    from mca.data.anny.render import JOINT_NAMES

    root = Path(out)
    for d in ("images", "meta") + (("labels",) if kind == "anny-scenes" else ()):
        (root / d).mkdir(parents=True, exist_ok=True)
    settings = {"seed": int(seed), "size": int(size), "scene_size": list(scene_size), "min_people": min_people,
                "max_people": max_people, "supersample": supersample, "collision_check": bool(collision_check),
                "pose_bank": str(pose_bank) if pose_bank else None}
    mpath = root / "manifest.json"
    manifest = {"kind": kind, "version": CACHE_VERSION, "anny": ANNY_VERSION, "num": int(num), "chunk": chunk,
                "settings": settings, "joint_names": {k: list(v) for k, v in JOINT_NAMES.items()},
                "chunks_done": [], "complete": False, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": command}
    if mpath.is_file():
        old = json.loads(mpath.read_text())
        same = {k: old.get(k) for k in ("kind", "version", "settings", "chunk")}
        if same != {k: manifest[k] for k in same}:
            raise ValueError(f"{root} holds a cache made with other settings ({same}); use another --out")
        manifest["created"] = old.get("created", manifest["created"])
    n_chunks = (num + chunk - 1) // chunk
    done = {c for c in range(n_chunks) if (root / "meta" / f"chunk_{c:05d}.npz").is_file()}
    manifest["chunks_done"] = sorted(done)
    mpath.write_text(json.dumps(manifest, indent=1))
    todo = [(kind, str(root), c, c * chunk, min(num, (c + 1) * chunk), settings) for c in range(n_chunks)
            if c not in done]
    bar = tqdm(total=num, initial=sum(min(num, (c + 1) * chunk) - c * chunk for c in done),
               desc=f"anny {kind.split('-')[1]}", unit="img")
    t0 = time.time()
    if workers <= 1:
        results = map(_work, todo)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(workers)
        results = pool.imap_unordered(_work, todo)
    try:
        for c, n in results:
            done.add(c)
            manifest["chunks_done"] = sorted(done)
            mpath.write_text(json.dumps(manifest, indent=1))
            bar.update(n)
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    manifest["complete"] = len(done) == n_chunks
    manifest["seconds_this_run"] = round(time.time() - t0, 1)
    if kind == "anny-pose":
        from mca.data.anny.dataset import load_cache_labels

        _, labels = load_cache_labels(root) if done else ({}, {"valid": np.zeros(0, bool)})
        manifest["num_valid"] = int(np.asarray(labels["valid"]).sum())
    elif manifest["complete"]:
        _finish_scenes(root, manifest)
    mpath.write_text(json.dumps(manifest, indent=1))
    return manifest
