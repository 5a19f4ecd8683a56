"""SSDLite's boxes just under its default threshold: what they are, judged by eye, and whether the pose model's own
confidence tells the people among them from the rest.

The teachers miss people, so an unmatched box need not be a false one and ``realtime.bench.detector_real`` cannot
give a precision.  This tool gives the missing half by hand:

``sheet``: every box SSDLite (FP32) scores in ``[--lo, --hi)`` on the held-out frames of ``detector_real``, one
numbered tile each (the box in yellow with half its size of context, the boxes scoring >= ``--hi`` in green), and
a list with one line per box ending in ``-> ?``.  Replace each ``?`` with a judgement: ``P`` a person no box >=
``--hi`` covers, ``D`` a second box on someone already boxed, ``M`` one box over two or more people, ``F`` no
person.  ``check``: the pose model (``mca_tiny_real``, FP32) on each judged box, as the pipeline crops it; the mean
joint confidence per judgement, and how many of each a rule "keep a box only if its mean confidence >= T" keeps::

    python tools/ssdlite_margin.py sheet --out /tmp/margin.png --list /tmp/margin.txt   # then judge the tiles
    python tools/ssdlite_margin.py check docs/ssdlite_margin_labels.txt
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("MCA_SHARED", ROOT.parent / "shared")) / "data"
LABELS = {"P": "a person no higher box covers", "D": "a second box on someone boxed", "M": "one box over 2+ people",
          "F": "no person"}
LINE = re.compile(r"^(\d+): (\S+) score ([\d.]+) box (-?\d+),(-?\d+),(-?\d+),(-?\d+) -> (\S)")


def parse_labels(text: str) -> list[dict]:
    """The judged list: one dict per box (tile number, image name, score, xyxy box, label); other lines ignored.
    An unjudged ``?`` or an unknown label is an error naming the line."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        m = LINE.match(line.strip())
        if not m:
            continue
        if m[8] not in LABELS:
            raise ValueError(f"line {n}: label {m[8]!r} is not one of {', '.join(LABELS)}")
        out.append({"tile": int(m[1]), "image": m[2], "score": float(m[3]),
                    "box": [float(m[i]) for i in range(4, 8)], "label": m[8]})
    if not out:
        raise ValueError("no judged boxes found (lines like '1: vtest.avi#596 score 0.327 box 1,2,3,4 -> P')")
    return out


def kept_by_rule(labels: list[str], confidence: list[float], thresholds: tuple[float, ...]) -> dict[float, Counter]:
    """For each threshold T: how many boxes of each label have a mean joint confidence >= T."""
    return {t: Counter(lab for lab, c in zip(labels, confidence) if c >= t) for t in thresholds}


def _detector():  # noqa: ANN202 - a PersonDetector
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model

    return PersonDetector(load_model(resolve_model("ssdlite", "detector"), backend="ort", int8="off"), conf=0.0,
                          max_persons=100)


def sheet(video: Path, frames: int, lo: float, hi: float, out: Path, cols: int, tile: tuple[int, int]) -> list[str]:
    """Write the sheet of boxes scoring in [lo, hi); one line per box, ending in '-> ?' to be judged."""
    from realtime.bench.detector_real import heldout_images
    sys.path.insert(0, str(ROOT / "tools"))
    from readme_pictures import caption, fit, grid  # the README pictures' tiles

    det = _detector()
    det.conf = lo
    tiles, lines = [], []
    for name, img in heldout_images(video, frames, []):
        d = det.detect(img)
        h, w = img.shape[:2]
        for b, sc in zip(d.boxes, d.scores):
            if sc >= hi:
                continue
            drawn = img.copy()
            for ob, osc in zip(d.boxes, d.scores):
                if osc >= hi:
                    q = [int(round(v)) for v in ob]
                    cv2.rectangle(drawn, (q[0], q[1]), (q[2], q[3]), (0, 255, 0), 1)
            x0, y0, x1, y1 = (int(round(v)) for v in b)
            cv2.rectangle(drawn, (x0, y0), (x1, y1), (0, 255, 255), 2)
            mx, my = (x1 - x0) // 2 + 8, (y1 - y0) // 2 + 8
            crop = drawn[max(0, y0 - my):min(h, y1 + my), max(0, x0 - mx):min(w, x1 + mx)]
            lines.append(f"{len(tiles) + 1}: {name} score {sc:.3f} box {x0},{y0},{x1},{y1} -> ?")
            tiles.append(caption(fit(crop, tile)[0], f"{len(tiles) + 1} {sc:.2f}"))
    if not tiles:
        raise ValueError(f"no boxes score {lo}-{hi} on these frames")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid(tiles, cols)):
        raise OSError(f"cannot write {out}")
    return lines


def check(labels_path: Path, video: Path, frames: int, thresholds: tuple[float, ...]) -> list[str]:
    """The pose model on each judged box; per label the mean joint confidence, and what each rule keeps."""
    from realtime.bench.detector_real import heldout_images
    from realtime.models import load_model, resolve_model
    from realtime.pose import Cropper, PoseEstimator
    from realtime.types import Detections

    boxes = parse_labels(labels_path.read_text())
    images = dict(heldout_images(video, frames, []))
    est = PoseEstimator(load_model(resolve_model("mca_tiny_real", "pose"), backend="ort", int8="off",
                                   outputs=["heatmaps"]))
    info = est.info
    cropper = Cropper(info.input_size, info.heatmap_size, info.crop_padding)
    conf = []
    for b in boxes:
        if b["image"] not in images:
            raise ValueError(f"tile {b['tile']}: {b['image']} is not among the {frames} held-out frames")
        det = Detections(np.array([b["box"]], np.float32), np.array([b["score"]], np.float32))
        conf.append(float(est.estimate(cropper.crop(images[b["image"]], det)).scores[0].mean()))
    labels = [b["label"] for b in boxes]
    out = [f"{len(boxes)} judged boxes, scores {min(b['score'] for b in boxes):.3f}-{max(b['score'] for b in boxes):.3f}"]
    for lab, what in LABELS.items():
        c = np.array([x for x, y in zip(conf, labels) if y == lab])
        if len(c):
            out.append(f"{lab} ({what}): {len(c)}; mean joint confidence min {c.min():.2f}, median "
                       f"{np.median(c):.2f}, max {c.max():.2f}")
    total = Counter(labels)
    for t, kept in kept_by_rule(labels, conf, thresholds).items():
        out.append(f"keep if mean confidence >= {t}: " + ", ".join(f"{lab} {kept[lab]}/{total[lab]}" for lab in LABELS
                                                                   if total[lab]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheet", help="the boxes scoring in [--lo, --hi), one tile each, and a list to judge")
    s.add_argument("--lo", type=float, default=0.2)
    s.add_argument("--hi", type=float, default=0.35, help="SSDLite's default threshold")
    s.add_argument("--out", type=Path, default=Path("ssdlite_margin.png"))
    s.add_argument("--list", type=Path, help="write the list here (default: print it)")
    s.add_argument("--cols", type=int, default=10)
    s.add_argument("--tile", default="128x192", help="tile size WxH")
    c = sub.add_parser("check", help="the pose model's confidence on each judged box")
    c.add_argument("labels", type=Path, help="the sheet's list with each '?' replaced by P, D, M or F")
    c.add_argument("--thresholds", type=float, nargs="+", default=[0.45, 0.5, 0.55])
    for q in (s, c):
        q.add_argument("--video", type=Path, default=SHARED / "real-video" / "vtest.avi")
        q.add_argument("--frames", type=int, default=50, help="held-out frames (as realtime.bench.detector_real)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "sheet":
            w, h = (int(v) for v in args.tile.lower().split("x"))
            lines = sheet(args.video, args.frames, args.lo, args.hi, args.out, args.cols, (w, h))
            if args.list:
                args.list.write_text("\n".join(lines) + "\n")
            else:
                print("\n".join(lines))
            print(f"wrote {args.out} ({len(lines)} boxes)", file=sys.stderr)
        else:
            print("\n".join(check(args.labels, args.video, args.frames, tuple(args.thresholds))))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
