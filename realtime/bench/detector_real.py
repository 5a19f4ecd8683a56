"""``python -m realtime.bench.detector_real``: person detectors on held-out real people, judged by teachers.

The real footage has no human boxes, so each detector is judged by where teachers put a person's keypoints:

- **people**: two sets.  *Independent*: MoveNet multipose run on the whole frame (no detector involved), a person
  kept when its box score is >= ``--person-score`` and at least ``--min-keypoints`` of its COCO-17 keypoints
  score >= ``--kpt-score``.  *Pseudo labels* (``tools/pseudo_label.py``'s held-out split, when it is there):
  MoveNet thunder and BlazePose heavy on the people **SSDLite** found; recall on them is circular for SSDLite
  (they are its own boxes), so only their coverage is telling.
- **matching** (per image, one box per person): the person/box pairs are taken greedily, most keypoints
  covered first (ties: the box closer to the keypoints' own box, by IoU), each box and each person once.  A box
  that merges two people is one person's box; the other is missed, as the pose model would draw one skeleton.
- **coverage** of a person = the fraction of its confident keypoints inside its matched box (0 when no box is
  left); reported as the mean over people and the fraction of people with every keypoint covered.
- **recall** = the fraction of people whose matched box covers *most* (more than ``--found``, default half) of
  their keypoints.  Loose boxes would cover everything: ``box/keypoint area`` (median over found people) says
  how much bigger the box is than the keypoints' own box.
- **AP50 on held-out synthetic scenes**: :func:`realtime.bench.evaluate_detector.evaluate_detector` (seed 777).

Held-out real images are those of ``tools/pseudo_label.py``'s test split: ``--frames`` frames spread over the
last quarter of ``vtest.avi``, the last two shared photos (by name) and ``astronaut.png`` of
``tools/real_photos.py``.  Detectors run as the pipeline runs them (their family's default threshold)::

    python -m realtime.bench.detector_real --out docs/detector_real
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.tracking import iou_matrix
from realtime.types import Detections

log = logging.getLogger(__name__)

__all__ = ["keypoints_inside", "coverage_matrix", "match_people", "summarize", "Person", "heldout_images",
           "multipose_people", "pseudo_label_people", "evaluate", "save_report", "main"]

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MCA_SHARED", ROOT.parent / "shared")) / "data"
EXTRA = ROOT / "data" / "real-extra"  # tools/real_photos.py
EXTRA_TEST = ("astronaut.png",)
DETECTORS = ("ssdlite", "ssdlite-int8", "yolo_synth")
MAX_PERSONS = 16  # the pipeline's default --max-persons
TIGHT_IOU = 0.3  # "found, tight": the box also overlaps the keypoints' own box by at least this IoU
SMALL = 100.0  # px: a person whose keypoints span less than this in height counts as small


# -- metrics (numpy only) ---------------------------------------------------------------------------------------
def keypoints_inside(kps: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Which keypoints (..., 2) lie inside the xyxy ``box`` (edges included)."""
    k = np.asarray(kps, np.float64)
    x0, y0, x1, y1 = np.asarray(box, np.float64).reshape(4)
    return (k[..., 0] >= x0) & (k[..., 0] <= x1) & (k[..., 1] >= y0) & (k[..., 1] <= y1)


def coverage_matrix(kps: np.ndarray, valid: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(P, D): the fraction of person p's valid keypoints (P, K, 2) inside box d (D, 4)."""
    kps, valid = np.asarray(kps, np.float64), np.asarray(valid, bool)
    n = valid.sum(1)
    if np.any(n == 0):
        raise ValueError("every person needs at least one valid keypoint")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((len(kps), len(boxes)))
    for d, b in enumerate(boxes):
        out[:, d] = (keypoints_inside(kps, b) & valid).sum(1) / n
    return out


def _keypoint_boxes(kps: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.array([[*k[v].min(0), *k[v].max(0)] for k, v in zip(np.asarray(kps, np.float64), valid)]).reshape(-1, 4)


def match_people(kps: np.ndarray, valid: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One box per person, greedily by coverage (ties: IoU with the keypoints' box): matched box (-1: none) and
    coverage (0 when unmatched) per person."""
    p = len(kps)
    match, cov = np.full(p, -1, np.int64), np.zeros(p)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if p == 0 or len(boxes) == 0:
        return match, cov
    c = coverage_matrix(kps, valid, boxes)
    tie = iou_matrix(_keypoint_boxes(kps, np.asarray(valid, bool)), boxes)
    order = np.lexsort((-tie.ravel(), -c.ravel()))  # coverage first, then IoU
    used = np.zeros(len(boxes), bool)
    for flat in order:
        i, d = divmod(int(flat), len(boxes))
        if c[i, d] <= 0:
            break
        if match[i] < 0 and not used[d]:
            match[i], cov[i], used[d] = d, c[i, d], True
    return match, cov


def summarize(coverage: np.ndarray, found: float = 0.5, area_ratio: np.ndarray | None = None,
              iou: np.ndarray | None = None) -> dict[str, Any]:
    """Mean coverage, the fraction of people fully covered and recall (coverage > ``found``) over people; with
    the matched boxes' ``area_ratio`` to the keypoints' box, its median over found people, and with their ``iou``
    to it, the recall of boxes that are also tight (IoU >= :data:`TIGHT_IOU`): a box around a whole crowd covers
    a person's keypoints but is no use to the pose model."""
    cov = np.asarray(coverage, np.float64)
    if cov.size == 0:
        return {"people": 0, "mean_coverage": None, "all_covered": None, "recall": None, "recall_tight": None}
    hit = cov > found
    out: dict[str, Any] = {"people": int(cov.size), "mean_coverage": round(float(cov.mean()), 4),
                           "all_covered": round(float((cov >= 1.0).mean()), 4), "recall": round(float(hit.mean()), 4)}
    if iou is not None:
        out["recall_tight"] = round(float((hit & (np.asarray(iou) >= TIGHT_IOU)).mean()), 4)
    if area_ratio is not None and hit.any():
        out["box_over_keypoint_area"] = round(float(np.median(np.asarray(area_ratio)[hit])), 2)
    return out


# -- people and images --------------------------------------------------------------------------------------------
@dataclass
class Person:
    """One teacher's person on one image: COCO-17 keypoints (frame pixels) and which are confident."""

    image: str
    keypoints: np.ndarray
    valid: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> float:
        y = self.keypoints[self.valid, 1]
        return float(y.max() - y.min())


def heldout_images(video: Path, frames: int, photos: list[Path], holdout: float = 0.25) -> list[tuple[str, np.ndarray]]:
    """The held-out real images: ``frames`` frames of the last ``holdout`` of ``video`` (as
    ``tools/pseudo_label.py`` picks its test frames) named ``video#index``, then the photos."""
    from mca.data.pseudo_labels import split_frames

    out: list[tuple[str, np.ndarray]] = []
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    want = set(int(i) for i in split_frames(n, 0, frames, holdout)[1])
    i = 0
    while want and i <= max(want):
        ok, img = cap.read()
        if not ok:
            break
        if i in want:
            out.append((f"{video.name}#{i}", img))
        i += 1
    cap.release()
    for p in photos:
        photo = cv2.imread(str(p))
        if photo is None:
            raise FileNotFoundError(f"cannot read {p}")
        out.append((p.name, photo))
    return out


def multipose_people(model: Any, images: list[tuple[str, np.ndarray]], person_score: float, kpt_score: float,
                     min_keypoints: int) -> list[Person]:
    """The independent teacher: MoveNet multipose on each whole image (``model`` is a ``MoveNet``)."""
    people = []
    for name, img in images:
        poses = model.estimate(img)
        for k, s, bs in zip(poses.keypoints, poses.scores, poses.box_scores):
            ok = s >= kpt_score
            if bs >= person_score and ok.sum() >= min_keypoints:
                people.append(Person(name, k.astype(np.float64), ok, {"score": float(bs)}))
    return people


def pseudo_label_people(folder: Path, min_keypoints: int) -> dict[str, list[Person]]:
    """The held-out split of ``tools/pseudo_label.py`` in frame pixels, per teacher (its own visibility rule)."""
    from mca.data.pseudo_labels import CONTEXT, load_split, read_manifest
    from mca.heatmaps import CropTransform, apply_affine

    lb = load_split(folder / "test.npz")
    man = read_manifest(folder)
    items = man["items"]["test"]
    if len(items) != len(lb):
        raise ValueError(f"{folder}: manifest lists {len(items)} held-out people, test.npz has {len(lb)}")
    size = int(man.get("patch") or len(lb.images[0]))
    teachers: dict[str, tuple[np.ndarray, float]] = {lb.teacher_names[0]: (lb.teacher, float(man.get("min_score", 0.3)))}
    if lb.alt_teacher is not None:
        second = man.get("second_teacher") or {}
        teachers[lb.teacher_names[1]] = (lb.alt_teacher, float(second.get("min_score", 0.5)))
    out: dict[str, list[Person]] = {}
    for name, (raw, thr) in teachers.items():
        people = []
        for it, t in zip(items, raw):
            to_frame = CropTransform.from_box([float(v) for v in it["box_frame"]], (size, size), (size, size),
                                              float(man.get("context", CONTEXT))).input_to_frame
            ok = t[:, 2] >= thr
            if ok.sum() >= min_keypoints:
                people.append(Person(it["source"], apply_affine(to_frame, t[:, :2].astype(np.float64)), ok,
                                     {"ssdlite_box": it["box_frame"]}))
        out[name] = people
    return out


# -- evaluation -------------------------------------------------------------------------------------------------
def _score(people: list[Person], dets: dict[str, Any], found: float) -> dict[str, Any]:
    """Match each image's people to its boxes; coverage/recall overall, by size and by source kind."""
    cov, ratio, tight, small, video = [], [], [], [], []
    by_image: dict[str, list[Person]] = {}
    for p in people:
        by_image.setdefault(p.image, []).append(p)
    for name, ps in by_image.items():
        boxes = dets[name].boxes
        kps, valid = np.stack([p.keypoints for p in ps]), np.stack([p.valid for p in ps])
        m, c = match_people(kps, valid, boxes)
        kb = _keypoint_boxes(kps, valid)
        kb_area = np.maximum((kb[:, 2] - kb[:, 0]) * (kb[:, 3] - kb[:, 1]), 1.0)
        for i, p in enumerate(ps):
            b = boxes[m[i]] if m[i] >= 0 else np.zeros(4)
            cov.append(c[i])
            ratio.append(float((b[2] - b[0]) * (b[3] - b[1]) / kb_area[i]))
            tight.append(float(iou_matrix(kb[i], b)[0, 0]) if m[i] >= 0 else 0.0)
            small.append(p.height < SMALL)
            video.append("#" in name)
    cov_a, ratio_a, tight_a = np.asarray(cov), np.asarray(ratio), np.asarray(tight)
    small_a, video_a = np.asarray(small, bool), np.asarray(video, bool)
    res = summarize(cov_a, found, ratio_a, tight_a)
    for label, m in (("small", small_a), ("large", ~small_a), ("video", video_a), ("photos", ~video_a)):
        res[label] = summarize(cov_a[m], found, ratio_a[m], tight_a[m])
    return res


def detector_paths(names: list[str]) -> dict[str, Path]:
    """Bundled names (``NAME-int8`` = the bundled INT8 twin) or ONNX files -> paths."""
    from realtime.models import resolve_model

    out = {}
    for n in names:
        if n.endswith("-int8"):
            p = resolve_model(n[:-5], "detector")
            q = p.with_name(p.name[:-len(".onnx")] + ".int8.onnx")
            if not q.is_file():
                raise FileNotFoundError(f"no INT8 twin {q} (scripts/make_int8_models.sh makes it)")
            out[n] = q
        else:
            out[n] = resolve_model(n, "detector")
    return out


def above(det: Detections, conf: float, max_persons: int = MAX_PERSONS) -> Detections:
    """The boxes a detector run at ``conf`` would give, from a run at a lower threshold: greedy NMS lets a box be
    suppressed only by a higher-scoring one, so thresholding after it keeps the same boxes."""
    keep = det.scores >= conf
    return Detections(det.boxes[keep], det.scores[keep]).top(max_persons)


def _sweep_point(raw: dict[str, Detections], conf: float, people: dict[str, list[Person]], found: float
                 ) -> dict[str, Any]:
    """Recall on every people set and boxes per image, had the detector run at ``conf``."""
    dets = {n: above(d, conf) for n, d in raw.items()}
    return {"recall": {k: _score(v, dets, found)["recall"] for k, v in people.items()},
            "boxes_per_image": round(float(np.mean([len(d) for d in dets.values()])), 2)}


def evaluate(detectors: dict[str, Path], images: list[tuple[str, np.ndarray]], people: dict[str, list[Person]],
             found: float = 0.5, threads: int = 1, sweep: tuple[float, ...] = ()) -> dict[str, Any]:
    """Every detector on every image (FP32 files as FP32, INT8 files as INT8) at its family's default threshold,
    scored against every people set; ``sweep``: recall on each set at other thresholds too."""
    from realtime.detectors import PersonDetector
    from realtime.models import load_model

    out: dict[str, Any] = {}
    for name, path in detectors.items():
        det = PersonDetector(load_model(path, backend="ort", threads=threads, int8="off"))
        conf = det.conf
        det.conf, det.max_persons = min((conf, *sweep)), 100
        t0 = time.perf_counter()
        raw = {n: det.detect(img) for n, img in images}
        sec = time.perf_counter() - t0
        dets = {n: above(d, conf) for n, d in raw.items()}
        out[name] = {"file": path.name, "family": det.family, "conf": conf,
                     "boxes_per_image": round(float(np.mean([len(d) for d in dets.values()])), 2),
                     "ms_per_image": round(1000 * sec / max(1, len(images)), 1),
                     "people_sets": {k: _score(v, dets, found) for k, v in people.items()},
                     "sweep": {str(t): _sweep_point(raw, t, people, found) for t in sweep}}
        log.info("%s: %s", name, {k: v["recall"] for k, v in out[name]["people_sets"].items()})
    return out


def report(res: dict[str, Any]) -> str:
    """The markdown report of :func:`main`'s results."""
    a = res["args"]
    lines = ["# Person detectors on held-out real people (teacher keypoints) and synthetic scenes", "",
             f"Command: `{res['command']}`", "",
             "Machine: " + "; ".join(f"{k} {v}" for k, v in res["machine"].items()), "",
             f"Images: {res['images']['video_frames']} held-out frames of `vtest.avi` (last quarter) and "
             f"{len(res['images']['photos'])} photos ({', '.join(res['images']['photos']) or 'none'}). Found = the "
             f"matched box covers more than {a['found']:.0%} of the person's confident keypoints; coverage = the "
             "fraction covered (mean over people) and the share of people with every keypoint covered. "
             f"Small = keypoints span < {SMALL:.0f} px in height.", "",
             "People sets: " + "; ".join(f"**{k}** {v}" for k, v in res["people_sets"].items()) +
             f". Multipose has six slots and kept six people on {res['multipose_full_images']} of the "
             f"{len(res['images']['photos']) + res['images']['video_frames']} images (those may hold more).", "",
             f"Tight = also IoU >= {TIGHT_IOU} with the keypoints' own box (a box around a crowd is not). "
             "Box/keypoint area: median over found people of the box's area over the keypoints' box's.", "",
             "| detector | people set | people | recall | recall, tight | mean coverage | all covered | "
             "recall small / large (people) | recall video / photos | box/keypoint area | boxes/image | ms/image |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for d, r in res["detectors"].items():
        for s, m in r["people_sets"].items():
            lines.append(f"| {d} (`{r['file']}`, conf {r['conf']}) | {s} | {m['people']} | **{f(m['recall'])}** | "
                         f"{f(m.get('recall_tight'))} | {f(m['mean_coverage'])} | {f(m['all_covered'])} | "
                         f"{f(m['small']['recall'])} ({m['small']['people']}) / {f(m['large']['recall'])} "
                         f"({m['large']['people']}) | {f(m['video']['recall'])} / {f(m['photos']['recall'])} | "
                         f"{m.get('box_over_keypoint_area', '-')} | {r['boxes_per_image']} | {r['ms_per_image']} |")
    first: dict[str, Any] = next(iter(res["detectors"].values()), {})
    sweep = list(first.get("sweep", {}))
    if sweep:
        lines += ["", "Recall at other score thresholds (the same runs, boxes under the threshold dropped; the "
                      "precision at each is not measured: the teachers miss people, so an unmatched box need not "
                      "be a false one):", "",
                  "| detector | people set | " + " | ".join(f"conf {t}" for t in sweep) + " |",
                  "|---|---|" + "---|" * len(sweep)]
        for d, r in res["detectors"].items():
            for s in r["people_sets"]:
                lines.append(f"| {d} | {s} | " + " | ".join(f(r["sweep"][t]["recall"][s]) for t in sweep) + " |")
            lines.append(f"| {d} | boxes per image | " + " | ".join(str(r["sweep"][t]["boxes_per_image"])
                                                             for t in sweep) + " |")
    if res.get("synthetic"):
        lines += ["", f"AP50 on held-out synthetic scenes (`realtime.bench.evaluate_detector`, seed "
                      f"{a['synthetic_seed']}, {a['synthetic']} frames 1280x720, people under 32 px ignored):", "",
                  "| detector | AP50 | people |", "|---|---|---|"]
        for d, s in res["synthetic"].items():
            lines.append(f"| {d} | **{s['AP50']:.3f}** | {int(s['people'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realtime.bench.detector_real", description=__doc__.split("\n\n")[0])
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS),
                   help="bundled names (NAME-int8: its INT8 twin) or ONNX files (default: %(default)s)")
    p.add_argument("--video", type=Path, default=SHARED / "real-video" / "vtest.avi")
    p.add_argument("--frames", type=int, default=50, help="held-out frames of the video's last quarter")
    p.add_argument("--photos", type=Path, nargs="*", default=None,
                   help="held-out photos (default: the last 2 shared photos by name and data/real-extra/astronaut.png)")
    p.add_argument("--multipose", type=Path, default=None, help="MoveNet multipose ONNX (default peers/)")
    p.add_argument("--multipose-size", type=int, default=512, help="multipose input: long side (multiple of 32)")
    p.add_argument("--person-score", type=float, default=0.3, help="multipose person score to keep a person")
    p.add_argument("--kpt-score", type=float, default=0.3, help="multipose keypoint score that counts")
    p.add_argument("--min-keypoints", type=int, default=6, help="confident keypoints a person needs")
    p.add_argument("--pseudo", type=Path, default=ROOT / "data" / "pseudo",
                   help="tools/pseudo_label.py output (its test split); skipped when absent")
    p.add_argument("--found", type=float, default=0.5, help="a person is found when coverage exceeds this")
    p.add_argument("--sweep", type=float, nargs="*", default=[0.1, 0.2, 0.3, 0.5],
                   help="also report recall at these detector score thresholds")
    p.add_argument("--synthetic", type=int, default=300, help="held-out synthetic frames for AP50 (0: skip)")
    p.add_argument("--synthetic-seed", type=int, default=777)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from engines.bench import machine_description
    from realtime.bench.evaluate_detector import evaluate_detector
    from realtime.bench.peers import MoveNet, peer_path
    from realtime.models import ModelError

    try:
        dets = detector_paths(args.detectors)
        mp_path = args.multipose or peer_path("multipose")
        if not mp_path.is_file():
            raise FileNotFoundError(f"{mp_path} not found (python tools/convert_movenet.py -o peers/)")
        if not args.video.is_file():
            raise FileNotFoundError(f"video {args.video} not found (pass --video)")
        shared = sorted((SHARED / "real-people").glob("*.jpg"))
        photos = args.photos if args.photos is not None else shared[-2:] + [EXTRA / n for n in EXTRA_TEST
                                                                             if (EXTRA / n).is_file()]
        images = heldout_images(args.video, args.frames, photos)
        multipose = MoveNet(mp_path, threads=args.threads, size=args.multipose_size, min_person_score=0.0)
    except (FileNotFoundError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    people = {"multipose": multipose_people(multipose, images, args.person_score, args.kpt_score,
                                            args.min_keypoints)}
    sets = {"multipose": f"MoveNet multipose lightning on the whole image (long side {args.multipose_size}), "
                         f"person score >= {args.person_score}, >= {args.min_keypoints} keypoints scoring >= "
                         f"{args.kpt_score}; independent of every detector"}
    names = {n for n, _ in images}
    if (args.pseudo / "test.npz").is_file():
        for t, ps in pseudo_label_people(args.pseudo, args.min_keypoints).items():
            people[t] = [q for q in ps if q.image in names]
            sets[t] = (f"{t} on the people SSDLite found (tools/pseudo_label.py held-out split): coverage is "
                       "telling, recall is circular for SSDLite")
    else:
        log.warning("%s/test.npz not found: only the independent people set (tools/pseudo_label.py makes it)",
                    args.pseudo)
    res: dict[str, Any] = {
        "command": "python -m realtime.bench.detector_real " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_description() | {"ONNX Runtime threads per model": str(args.threads)},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("photos", "detectors")},
        "images": {"video_frames": sum("#" in n for n in names), "photos": [q.name for q in photos]},
        "people_sets": sets, "people": {k: len(v) for k, v in people.items()},
        # multipose has six slots: an image where it kept six may hold more people than the set has
        "multipose_full_images": sum(c >= 6 for c in Counter(q.image for q in people["multipose"]).values()),
        "detectors": evaluate(dets, images, people, args.found, args.threads, tuple(args.sweep))}
    if args.synthetic:
        res["synthetic"] = {n: evaluate_detector(pth, args.synthetic, args.synthetic_seed, int8="off")
                            for n, pth in dets.items()}
    save_report(report(res), res, args.out)
    return 0


def save_report(text: str, res: dict[str, Any], out: Path | None) -> None:
    """Print the markdown report; with ``out``, also write OUT.md and the results as OUT.json."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
