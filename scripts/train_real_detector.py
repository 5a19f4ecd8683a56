"""Train a person detector for real footage: synthetic scenes plus pseudo-boxed real frames (issue 16, item 5).

The real half is the *training* part of ``vtest.avi`` (the frames before ``tools/pseudo_label.py``'s held-out
quarter and its gap; the held-out frames are never read) and the photos ``realtime.bench.detector_real`` does not
hold out. Its boxes are pseudo-boxes from two sources: MoveNet multipose people (their keypoints' box, grown to
cover the head and feet) and the bundled SSDLite's confident boxes that overlap no multipose person (multipose has
six slots and misses small pedestrians; without them those people would be taught as background). The synthetic
half is ``scripts/train_demo_detector.py``'s renderer. A YOLOv8n is trained from its yaml for a wall-time budget,
exported to ONNX with the project's detector metadata, and is then compared with SSDLite by
``python -m realtime.bench.detector_real --detectors ssdlite yolo_synth OUT.onnx``.

Note what the comparison then measures: recall against multipose people on held-out frames of the *same camera*
the detector was trained on, with boxes partly taught by multipose itself.

Needs the optional ``yolo`` extra (see ``scripts/train_demo_detector.py``)::

    YOLO_OFFLINE=1 PYTHONPATH=. .venv-yolo/bin/python scripts/train_real_detector.py --hours 0.75
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

log = logging.getLogger("train_real_detector")


def keypoint_box(kps: np.ndarray, ok: np.ndarray, frame_wh: tuple[int, int]) -> np.ndarray:
    """A whole-body box from a person's confident COCO keypoints: the keypoints reach from the eyes to the ankles,
    so the box grows up for the head top, down for the feet and sideways for the arms' width."""
    x, y = kps[ok, 0], kps[ok, 1]
    h = max(float(y.max() - y.min()), 1.0)
    w = max(float(x.max() - x.min()), 0.25 * h)
    x0, x1 = float(x.min()) - 0.15 * w, float(x.max()) + 0.15 * w
    y0, y1 = float(y.min()) - 0.15 * h, float(y.max()) + 0.07 * h
    return np.array([max(0.0, x0), max(0.0, y0), min(frame_wh[0] - 1.0, x1), min(frame_wh[1] - 1.0, y1)])


def pseudo_boxes(image: np.ndarray, multipose, ssdlite, person_score: float, kpt_score: float,
                 min_keypoints: int, ssd_conf: float, overlap: float) -> tuple[np.ndarray, int, int]:
    """Pseudo-boxes for one real image: multipose people, then SSDLite boxes overlapping none of them."""
    from realtime.tracking import iou_matrix

    wh = (image.shape[1], image.shape[0])
    poses = multipose.estimate(image)
    mp = [keypoint_box(k, s >= kpt_score, wh) for k, s, bs in zip(poses.keypoints, poses.scores, poses.box_scores)
          if bs >= person_score and (s >= kpt_score).sum() >= min_keypoints]
    mp_boxes = np.array(mp).reshape(-1, 4)
    det = ssdlite.detect(image)
    ssd = det.boxes[det.scores >= ssd_conf].reshape(-1, 4)
    extra = ssd[iou_matrix(ssd, mp_boxes).max(axis=1, initial=0.0) < overlap] if len(ssd) else ssd
    return np.concatenate([mp_boxes, extra]), len(mp_boxes), len(extra)


def real_images(video: Path, stride: int, photos: list[Path]) -> list[tuple[str, np.ndarray]]:
    """The training part of ``video`` (every ``stride``-th frame before the held-out quarter and its gap), then
    the photos."""
    from mca.data.pseudo_labels import split_frames

    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    test = split_frames(n, 0, 1, 0.25)[1]
    stop = int(test[0]) - 20  # split_frames' gap
    out = []
    for i in range(stop):
        ok, img = cap.read()
        if not ok:
            break
        if i % stride == 0:
            out.append((f"vtest_{i:04d}", img))
    cap.release()
    for p in photos:
        img = cv2.imread(str(p))
        if img is None:
            raise FileNotFoundError(f"cannot read {p}")
        out.append((p.stem, img))
    return out


def write_real(out: Path, images: list[tuple[str, np.ndarray]], args: argparse.Namespace) -> dict[str, int]:
    """Write the real images with YOLO labels of their pseudo-boxes; returns counts."""
    from realtime.bench.peers import MoveNet, peer_path
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model

    multipose = MoveNet(peer_path("multipose"), threads=2, size=512, min_person_score=0.0)
    ssdlite = PersonDetector(load_model(resolve_model("ssdlite", "detector"), backend="ort", threads=2), conf=0.1)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    counts = {"images": 0, "multipose_boxes": 0, "ssdlite_boxes": 0}
    for name, img in images:
        boxes, n_mp, n_ssd = pseudo_boxes(img, multipose, ssdlite, 0.3, 0.3, 6, args.ssd_conf, 0.3)
        h, w = img.shape[:2]
        lines = [f"0 {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                 f"{(b[3] - b[1]) / h:.6f}" for b in boxes if b[2] > b[0] and b[3] > b[1]]
        cv2.imwrite(str(out / "images" / f"{name}.jpg"), img)
        (out / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        counts["images"] += 1
        counts["multipose_boxes"] += n_mp
        counts["ssdlite_boxes"] += n_ssd
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "detector_real", help="work directory")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "detector_real" / "person_yolo_real.onnx")
    p.add_argument("--video", type=Path,
                   default=Path(os.environ.get("MCA_SHARED", ROOT.parent / "shared")) / "data/real-video/vtest.avi")
    p.add_argument("--stride", type=int, default=2, help="every STRIDE-th training frame of the video")
    p.add_argument("--real-repeat", type=int, default=2, help="times each real image is listed per epoch")
    p.add_argument("--ssd-conf", type=float, default=0.35, help="SSDLite score for an extra pseudo-box")
    p.add_argument("--train-images", type=int, default=1200, help="synthetic stills")
    p.add_argument("--video-frames", type=int, default=300, help="synthetic video frames")
    p.add_argument("--hours", type=float, default=0.75, help="training wall-time budget (ultralytics 'time')")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        print("error: ultralytics is not installed (the 'yolo' extra; see scripts/train_demo_detector.py)",
              file=sys.stderr)
        return 2
    from realtime.bench.detector_real import EXTRA, EXTRA_TEST, SHARED
    from train_demo_detector import render, stamp

    if not args.video.is_file():
        print(f"error: video {args.video} not found (pass --video)", file=sys.stderr)
        return 2
    shared = sorted((SHARED / "real-people").glob("*.jpg"))
    photos = shared[:-2] + sorted(q for q in EXTRA.glob("*.png") if q.name not in EXTRA_TEST)
    syn, val, real = args.work / "synthetic", args.work / "val", args.work / "real"
    if not (syn / "coco_keypoints.json").exists():
        render(syn, args.train_images, args.video_frames, seed=21, size=(640, 384))
    if not (val / "coco_keypoints.json").exists():
        render(val, 200, 100, seed=12345, size=(640, 384))
    if not (real / "labels").is_dir():
        counts = write_real(real, real_images(args.video, args.stride, photos), args)
        log.info("real images: %s", counts)
    listing = sorted(str(q) for q in (syn / "images").glob("*.jpg"))
    listing += sorted(str(q) for q in (real / "images").glob("*.jpg")) * args.real_repeat
    (args.work / "train.txt").write_text("\n".join(listing) + "\n")
    data_yaml = args.work / "data.yaml"
    data_yaml.write_text(f"path: {args.work.resolve()}\ntrain: train.txt\nval: val/images\nnames:\n  0: person\n")
    t0 = time.time()
    YOLO("yolov8n.yaml").train(data=str(data_yaml), time=args.hours, imgsz=args.imgsz, batch=args.batch,
                               device="cpu", workers=1, project=str(args.work), name="yolo", exist_ok=True,
                               pretrained=False, amp=False, plots=False, verbose=False, mosaic=1.0, close_mosaic=2,
                               patience=100)
    train_s = time.time() - t0
    onnx_path = YOLO(str(args.work / "yolo" / "weights" / "last.pt")).export(
        format="onnx", imgsz=args.imgsz, dynamic=False, simplify=False, opset=17)
    stamp(Path(onnx_path), args.out, args.imgsz, domain="real+synthetic", train_s=train_s,
          source=f"scripts/train_real_detector.py (yolov8n.yaml from scratch on synthetic scenes and pseudo-boxed "
                 f"vtest.avi training frames, {args.hours} h, imgsz {args.imgsz})")
    print(f"wrote {args.out}; training took {train_s / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
