"""``python -m realtime.bench.evaluate_detector MODEL``: person AP50 on held-out synthetic scenes.

Runs the detector through the realtime pipeline's own pre-processing, decode and
NMS (:class:`~realtime.detectors.PersonDetector`) on scenes rendered with seeds the
training never used, and computes average precision at IoU 0.5 (all-point
interpolated precision/recall curve, as in PASCAL VOC 2010+).  People whose box is
under ``--min-height`` pixels tall are "ignore" regions: detections on them are
neither true nor false positives.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from realtime.tracking import iou_matrix

log = logging.getLogger(__name__)

__all__ = ["average_precision", "evaluate_detector", "main"]


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP from per-detection scores and true-positive flags."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.asarray(is_tp, float)[order]
    fp = 1 - tp
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def match_frame(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, ignore: np.ndarray,
                iou_thr: float = 0.5) -> tuple[list[float], list[bool]]:
    """Greedy matching by score; detections on ignored people are dropped."""
    scores, flags = [], []
    used = np.zeros(len(gt_boxes), bool)
    iou = iou_matrix(det_boxes, gt_boxes) if len(gt_boxes) and len(det_boxes) else np.zeros((len(det_boxes), 0))
    for d in np.argsort(-det_scores, kind="stable"):
        j = int(np.argmax(iou[d])) if iou.shape[1] else -1
        if j >= 0 and iou[d, j] >= iou_thr:
            if ignore[j]:
                continue
            if not used[j]:
                used[j] = True
                scores.append(float(det_scores[d]))
                flags.append(True)
                continue
        scores.append(float(det_scores[d]))
        flags.append(False)
    return scores, flags


def evaluate_detector(model: str | Path, num: int = 300, seed: int = 777, min_height: float = 32.0,
                      size: tuple[int, int] = (1280, 720), int8: str | None = None) -> dict[str, float]:
    """AP50 of ``model`` on ``num`` held-out scenes; ``int8`` as :func:`realtime.models.load_model` takes it
    (``"off"``: an FP32 file runs as FP32 on every CPU, so FP32 and INT8 twins can be compared)."""
    from mca.data.synthetic import SceneRenderer, VideoRenderer
    from realtime.detectors import PersonDetector
    from realtime.models import load_model

    det = PersonDetector(load_model(model, backend="ort", int8=int8), conf=0.01, max_persons=100)
    scenes = SceneRenderer("mpii16", size, seed=seed, min_people=0, max_people=7, min_height=40,
                           max_height=size[1] * 1.1)
    videos = [VideoRenderer("mpii16", size, 25.0, 1 + k % 5, seed=seed + k) for k in range(5)]
    all_scores: list[float] = []
    all_flags: list[bool] = []
    n_gt = 0
    for i in range(num):
        s = scenes.render(i) if i % 2 == 0 else videos[(i // 2) % 5].frame(i * 3)
        gt = np.stack([p.box for p in s.people]) if s.people else np.zeros((0, 4), np.float32)
        ignore = (gt[:, 3] - gt[:, 1]) < min_height if len(gt) else np.zeros(0, bool)
        n_gt += int((~ignore).sum())
        d = det.detect(s.image)
        sc, fl = match_frame(d.boxes, d.scores, gt, ignore)
        all_scores += sc
        all_flags += fl
    ap = average_precision(np.array(all_scores), np.array(all_flags, bool), n_gt)
    return {"AP50": ap, "images": float(num), "people": float(n_gt)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realtime.bench.evaluate_detector", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="detector ONNX (YOLO or SSD family)")
    p.add_argument("--num", type=int, default=300, help="held-out frames (default 300)")
    p.add_argument("--seed", type=int, default=777, help="scene seed (never used in training)")
    p.add_argument("--min-height", type=float, default=32.0, help="people smaller than this (px) are ignored")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from realtime.models import ModelError

    try:
        res = evaluate_detector(args.model, args.num, args.seed, args.min_height)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"AP50 {res['AP50']:.4f} over {int(res['people'])} people in {int(res['images'])} held-out frames")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
