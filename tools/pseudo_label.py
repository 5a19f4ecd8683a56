"""Pseudo-label real people with two teachers: SSDLite finds them, MoveNet thunder and BlazePose heavy label them.

Frames are spread through vtest.avi (never consecutive); the contiguous last quarter of the video (after a
gap) and the last two shared photos (sorted by name) are held out for evaluation, the rest is for training.
Each detected person becomes a square patch around its box (grown 1.6x, so training can jitter scale and
rotation) with the teacher's COCO-17 keypoints mapped to MPII-16 (see ``mca.data.pseudo_labels`` for the
mapping; ``head_top`` is never labelled) and keypoints scoring >= ``--min-score`` kept as visible.
Output (git-ignored): ``data/pseudo/{train,test}.npz`` and ``manifest.json``.

The second, independent teacher is BlazePose heavy (``mediapipe`` 0.10.21, model_complexity 2, static images)
run in its own interpreter (``--blazepose-python``, see ``tools/setup_blazepose.py``) on the same patches; its
BlazePose-33 landmarks are mapped to COCO-17 and then to MPII-16 the same way, a landmark with visibility >=
``--blazepose-min-score`` counting as labelled.  A BlazePose person whose labelled landmarks' median lies
outside the SSDLite box (it picked a neighbour in a crowd) is dropped for that teacher.  Both teachers' labels
are stored side by side (``load_split(path, teacher="blazepose_heavy")`` makes BlazePose the primary one).

**Flip check** (``--flip-check``, default on the training split only): MoveNet also labels the mirrored image,
and a left/right pair it names crossed there (its left ankle on the mirror lands on its right ankle here) is
marked not visible for that person (``mca.data.pseudo_labels.flip_consistent``): the teacher was guessing the
sides, and a student trained on guesses learns to guess.  Midpoints (pelvis, thorax, upper neck) stay; the
held-out labels stay the teacher's own, so agreement with MoveNet is measured against the unfiltered teacher.

Extra photos (``--extra-train``, ``--extra-test``; default the ones ``tools/real_photos.py`` copies out of
Debian's ``opencv-doc`` and PyPI's ``scikit-image``, when present) join the training or held-out split.

Needs the converted teacher (``python tools/convert_movenet.py -o peers/``), the project's runtime and, for
the second teacher, a mediapipe interpreter::

    python tools/pseudo_label.py --out data/pseudo --blazepose-python .venv-mp/bin/python
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

from mca import heatmaps as H  # noqa: E402
from mca.joints import COCO17, MPII16  # noqa: E402
from mca.data.pseudo_labels import (CONTEXT, COCO_TO_MPII, UPPER_NECK_FRACTION, PseudoLabels,  # noqa: E402
                                    blazepose_to_coco, coco_to_mpii, flip_consistent, mirror_coco, save_split,
                                    split_frames)
from realtime.types import Detections  # noqa: E402

log = logging.getLogger(__name__)

SHARED = Path(os.environ.get("MCA_SHARED", ROOT.parent / "shared")) / "data"
EXTRA = ROOT / "data" / "real-extra"  # tools/real_photos.py
EXTRA_TRAIN = ("basketball1.png", "basketball2.png", "camera.png")
EXTRA_TEST = ("astronaut.png",)

# Runs in the mediapipe interpreter: patches (.npy, N x S x S x 3 BGR) -> landmarks (.npy, N x 33 x 4, NaN if none).
_BLAZEPOSE_SCRIPT = r"""
import sys
import numpy as np
import cv2
import mediapipe as mp
src, dst, complexity = sys.argv[1], sys.argv[2], int(sys.argv[3])
patches = np.load(src)
out = np.full((len(patches), 33, 4), np.nan, np.float32)
with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=complexity, min_detection_confidence=0.3) as pose:
    for i, img in enumerate(patches):
        h, w = img.shape[:2]
        r = pose.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        if r.pose_landmarks is not None:
            out[i] = [[p.x * w - 0.5, p.y * h - 0.5, p.z * w, p.visibility] for p in r.pose_landmarks.landmark]
np.save(dst, out)
print(mp.__version__)
"""


def blazepose_labels(python: str, patches: np.ndarray, boxes: np.ndarray, min_score: float, complexity: int = 2
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """BlazePose on every patch (patch pixels): MPII joints, visibility, raw COCO-17 output and mediapipe's version."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="blazepose-") as tmp:
        src, dst = Path(tmp) / "patches.npy", Path(tmp) / "landmarks.npy"
        np.save(src, patches)
        r = subprocess.run([python, "-c", _BLAZEPOSE_SCRIPT, str(src), str(dst), str(complexity)],
                           capture_output=True, text=True)
        if r.returncode != 0 or not dst.is_file():
            raise RuntimeError(f"BlazePose failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        lm = np.load(dst)
    kps, sc = blazepose_to_coco(lm)
    for i, b in enumerate(boxes):  # a BlazePose person outside the box is a neighbour: not this teacher's label
        ok = sc[i] >= min_score
        if ok.sum() < 3:
            continue
        mx, my = np.median(kps[i][ok], axis=0)
        if not (b[0] <= mx <= b[2] and b[1] <= my <= b[3]):
            sc[i] = 0.0
    joints, vis = coco_to_mpii(kps, sc, min_score)
    return joints.astype(np.float32), vis, np.concatenate([kps, sc[..., None]], -1).astype(np.float32), \
        r.stdout.strip().splitlines()[-1]


def label_people(image: np.ndarray, detector, teacher, source: str, args: argparse.Namespace,  # noqa: ANN001
                 flip_check: bool = False) -> list[dict]:
    """Every detected person of ``image`` that the teacher labels well enough, as patch-space records.

    ``flip_check``: the teacher also labels the mirrored image, and a left/right pair it names the other way
    round there is not kept (:func:`mca.data.pseudo_labels.flip_consistent`): the sides of that pair were a guess."""
    dets = detector.detect(image)
    out = []
    mirrored = cv2.flip(image, 1) if flip_check else None
    width = image.shape[1]
    for box, score in zip(dets.boxes, dets.scores):
        if box[3] - box[1] < args.min_height:
            continue
        poses = teacher.estimate(image, Detections(box[None], np.array([score])))
        kps, sc = poses.keypoints[0], poses.scores[0]
        joints, vis = coco_to_mpii(kps, sc, args.min_score)
        if vis.sum() < args.min_joints:
            continue  # too little of this person labelled (counted before the flip check: it only hides pairs)
        dropped = 0
        if mirrored is not None:
            mbox = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]], box.dtype)
            back = mirror_coco(teacher.estimate(mirrored, Detections(mbox[None], np.array([score]))).keypoints[0],
                               width)
            keep = flip_consistent(kps, back)
            # only the sided joints go: a midpoint (pelvis, thorax, upper neck) is the same whichever side is which
            for m, k in COCO_TO_MPII.items():
                if not keep[COCO17.index(k)] and vis[MPII16.index(m)]:
                    vis[MPII16.index(m)] = False
                    dropped += 1
        patch, m = _patch(image, box, args.patch)
        corners = H.apply_affine(m, box.reshape(2, 2).astype(np.float64)).reshape(4)
        out.append({"image": patch, "joints": H.apply_affine(m, joints), "visible": vis, "box": corners,
                    "teacher": np.concatenate([H.apply_affine(m, kps), sc[:, None]], 1), "source": source,
                    "det_score": float(score), "box_frame": [round(float(v), 1) for v in box],
                    "teacher_mean_score": float(sc.mean()), "visible_joints": int(vis.sum()),
                    "flip_dropped": dropped})
    return out


def _flip_check(args: argparse.Namespace, split: str) -> bool:
    return args.flip_check == "all" or (args.flip_check == "train" and split == "train")


def _patch(image: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    from mca.data.pseudo_labels import context_patch

    return context_patch(image, box.astype(np.float64), size, CONTEXT)


def _stack(records: list[dict]) -> PseudoLabels:
    if not records:
        raise RuntimeError("no person was labelled; check the detector, teacher and --min-joints")
    return PseudoLabels(np.stack([r["image"] for r in records]), np.stack([r["joints"] for r in records]).astype(np.float32),
                        np.stack([r["visible"] for r in records]), np.stack([r["box"] for r in records]).astype(np.float32),
                        np.stack([r["teacher"] for r in records]).astype(np.float32), [r["source"] for r in records])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Pseudo-label real people (SSDLite + MoveNet thunder, COCO-17 -> MPII-16).")
    p.add_argument("--video", type=Path, default=SHARED / "real-video" / "vtest.avi")
    p.add_argument("--photos", type=Path, nargs="*", default=None, help="photos (default: shared real-people/*.jpg)")
    p.add_argument("--test-photos", type=int, default=2, help="the last N photos (by name) are held out")
    p.add_argument("--train-frames", type=int, default=160, help="frames spread over the first 75%% of the video")
    p.add_argument("--test-frames", type=int, default=50, help="frames spread over the held-out last 25%%")
    p.add_argument("--holdout", type=float, default=0.25, help="held-out fraction at the end of the video")
    p.add_argument("--gap", type=int, default=20, help="frames before the held-out part used by neither split")
    p.add_argument("--detector", default="ssdlite", help="person detector: bundled name or ONNX")
    p.add_argument("--teacher", type=Path, default=None, help="MoveNet thunder ONNX (default peers/movenet_thunder.onnx)")
    p.add_argument("--min-score", type=float, default=0.3, help="teacher score for a keypoint to count as visible")
    p.add_argument("--min-joints", type=int, default=8, help="visible MPII joints for a person to be kept")
    p.add_argument("--min-height", type=float, default=40.0, help="smallest person box height (pixels)")
    p.add_argument("--patch", type=int, default=256, help="stored patch size (pixels)")
    p.add_argument("--extra-train", type=Path, nargs="*", default=None,
                   help="more training photos (default: tools/real_photos.py's basketball1/2 and camera, if there)")
    p.add_argument("--extra-test", type=Path, nargs="*", default=None,
                   help="more held-out photos (default: tools/real_photos.py's astronaut, if there)")
    p.add_argument("--blazepose-python", help="an interpreter with mediapipe: label with BlazePose heavy as well")
    p.add_argument("--blazepose-min-score", type=float, default=0.5, help="BlazePose visibility that counts")
    p.add_argument("--flip-check", choices=("train", "all", "off"), default="train",
                   help="also label the mirrored image and drop the left/right pairs the teacher names the other way "
                        "round there: on the training split (default; held-out labels stay the teacher's own), "
                        "on both, or off")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per model")
    p.add_argument("--out", type=Path, default=ROOT / "data" / "pseudo", help="output folder (git-ignored)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from realtime.detectors import PersonDetector
    from realtime.models import ModelError, load_model, resolve_model
    from realtime.bench.peers import MoveNet, peer_path

    try:
        teacher_path = args.teacher or peer_path("thunder")
        if not teacher_path.is_file():
            raise FileNotFoundError(f"teacher {teacher_path} not found (python tools/convert_movenet.py -o peers/)")
        if not args.video.is_file():
            raise FileNotFoundError(f"video {args.video} not found (pass --video)")
        photos = sorted(args.photos if args.photos is not None else (SHARED / "real-people").glob("*.jpg"))
        det_path = resolve_model(args.detector, "detector")
        # int8="off": the file named in the manifest is the one that runs (on a VNNI CPU the automatic choice
        # would swap in its INT8 twin, which finds fewer people), so the labels do not depend on the CPU
        detector = PersonDetector(load_model(det_path, backend="ort", threads=args.threads, int8="off"))
        teacher = MoveNet(teacher_path, threads=args.threads)
    except (FileNotFoundError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cap = cv2.VideoCapture(str(args.video))
    n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    train_idx, test_idx = split_frames(n_frames, args.train_frames, args.test_frames, args.holdout, args.gap)
    want = {int(i): "train" for i in train_idx} | {int(i): "test" for i in test_idx}
    records: dict[str, list[dict]] = {"train": [], "test": []}
    i = 0
    while want and i <= max(want):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            records[want[i]] += label_people(frame, detector, teacher, f"{args.video.name}#{i}", args,
                                             _flip_check(args, want[i]))
        i += 1
    cap.release()
    n_test_photos = min(args.test_photos, len(photos))
    extra_train = [p for p in (args.extra_train if args.extra_train is not None else
                               [EXTRA / n for n in EXTRA_TRAIN if (EXTRA / n).is_file()])]
    extra_test = [p for p in (args.extra_test if args.extra_test is not None else
                              [EXTRA / n for n in EXTRA_TEST if (EXTRA / n).is_file()])]
    todo = [(ph, "test" if k >= len(photos) - n_test_photos else "train") for k, ph in enumerate(photos)]
    todo += [(ph, "train") for ph in extra_train] + [(ph, "test") for ph in extra_test]
    for photo, split in todo:
        img = cv2.imread(str(photo))
        if img is None:
            print(f"error: cannot read {photo}", file=sys.stderr)
            return 2
        records[split] += label_people(img, detector, teacher, photo.name, args, _flip_check(args, split))
    try:
        splits = {s: _stack(r) for s, r in records.items()}
        mp_version = None
        if args.blazepose_python:
            for s, lb in list(splits.items()):
                j2, v2, t2, mp_version = blazepose_labels(args.blazepose_python, lb.images, lb.boxes,
                                                          args.blazepose_min_score)
                splits[s] = PseudoLabels(lb.images, lb.joints, lb.visible, lb.boxes, lb.teacher, lb.sources, j2, v2, t2,
                                         ("movenet_thunder", "blazepose_heavy"))
                log.info("%s: BlazePose labels %d of %d people", s, int((v2.sum(1) >= args.min_joints).sum()), len(lb))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for s, lb in splits.items():
        save_split(args.out / f"{s}.npz", lb)
    manifest = {
        "teacher": {"model": teacher_path.name, "source": teacher.backend.metadata.get("mca.source", "?"),
                    "licence": teacher.backend.metadata.get("mca.licence", "?")},
        "detector": det_path.name,
        "video": args.video.name, "video_frames": n_frames,
        "split": {"train_frames": [int(v) for v in train_idx], "test_frames": [int(v) for v in test_idx],
                  "holdout": args.holdout, "gap": args.gap,
                  "test_photos": [p.name for p in photos[len(photos) - n_test_photos:]],
                  "train_photos": [p.name for p in photos[:len(photos) - n_test_photos]]},
        "mapping": {"copied": COCO_TO_MPII, "pelvis": "mid hips", "thorax": "mid shoulders",
                    "upper_neck": f"mid shoulders + {UPPER_NECK_FRACTION} x (nose - mid shoulders)",
                    "head_top": "not mapped (always invisible, weight 0)"},
        "second_teacher": (None if not args.blazepose_python else
                           {"model": "BlazePose heavy (mediapipe.solutions.pose, model_complexity=2, static images)",
                            "mediapipe": mp_version, "licence": "Apache-2.0 (mediapipe; models from npm @mediapipe/pose)",
                            "min_score": args.blazepose_min_score,
                            "labelled_people": {s: int((lb.alt_visible.sum(1) >= args.min_joints).sum())
                                                for s, lb in splits.items()}}),
        "extra_photos": {"train": [p.name for p in extra_train], "test": [p.name for p in extra_test],
                         "provenance": "tools/real_photos.py (Debian opencv-doc; PyPI scikit-image)"},
        "flip_check": {"splits": args.flip_check,
                       "dropped_keypoints": {s: int(sum(r["flip_dropped"] for r in rs)) for s, rs in records.items()}},
        "min_score": args.min_score, "min_joints": args.min_joints, "min_height": args.min_height,
        "patch": args.patch, "context": CONTEXT,
        "counts": {s: len(lb) for s, lb in splits.items()},
        "items": {s: [{k: v for k, v in r.items() if k in ("source", "det_score", "box_frame", "teacher_mean_score",
                                                           "visible_joints", "flip_dropped")} for r in rs]
                  for s, rs in records.items()},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {args.out}: " + ", ".join(f"{s} {len(lb)} people" for s, lb in splits.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
