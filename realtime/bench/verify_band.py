"""``python -m realtime.bench.verify_band``: the pipeline with and without pose-verified boxes, on held-out real frames.

The detector's boxes scoring just under its threshold hold people it was unsure of and junk (SSDLite on
``vtest.avi``: a railing).  With ``PipelineConfig.verify_conf`` (the default for SSD detectors, 0.2) the tracker
keeps such a box when the pose model finds a person in it (``Tracker.verify_keypoints``).  This runs the default
real-footage pipeline (``ssdlite`` + ``mca_tiny_real``, FP32 so every CPU gives the same numbers) frame by frame over
the last quarter of the video, once per setting, and reports at the held-out frames of
``realtime.bench.detector_real``:

- **recall** of the people MoveNet multipose finds on the whole frame (the same matching and rule as
  ``detector_real``, on the boxes of the people the pipeline outputs);
- the **judged boxes** of ``docs/ssdlite_margin_labels.txt`` (``tools/ssdlite_margin.py``) that come out as people
  (an output box with IoU >= 0.5): how many of the people, second boxes, merged boxes and railings;
- people per frame, distinct track ids over the segment, and ms per frame of ``Pipeline.process`` (same run).

::

    python -m realtime.bench.verify_band --out docs/verify_band
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from realtime.bench.detector_real import ROOT, SHARED, _score, heldout_images, multipose_people, save_report
from realtime.tracking import iou_matrix
from realtime.types import Detections, Frame, Poses

log = logging.getLogger(__name__)

__all__ = ["judged_output", "run_segment", "main"]

LABELS_FILE = ROOT / "docs" / "ssdlite_margin_labels.txt"


def judged_output(judged: list[dict], outputs: dict[str, Poses], iou: float = 0.5) -> Counter:
    """How many judged boxes of each label have an output person's box over them (IoU >= ``iou``)."""
    got: Counter = Counter()
    for b in judged:
        poses = outputs.get(b["image"])
        if poses is not None and len(poses) and iou_matrix(np.asarray(b["box"]), poses.boxes).max() >= iou:
            got[b["label"]] += 1
    return got


def run_segment(video: Path, start: int, keep: set[int], verify: float | str | None, threads: int = 1
                ) -> tuple[dict[str, Poses], dict[str, Any]]:
    """The default real-footage pipeline on frames ``start``.. of ``video``; the poses of frames ``keep`` (named as
    ``detector_real`` names them) and the segment's counts."""
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.pose import PoseEstimator
    from realtime.sources import FileSource

    det = PersonDetector(load_model(resolve_model("ssdlite", "detector"), backend="ort", threads=threads,
                                    int8="off"))
    est = PoseEstimator(load_model(resolve_model("mca_tiny_real", "pose"), backend="ort", threads=threads,
                                   int8="off", outputs=["heatmaps"]))
    pipe = Pipeline(det, est, PipelineConfig(verify_conf=verify))
    out: dict[str, Poses] = {}
    ids: set[int] = set()
    people, frames, seconds = 0, 0, 0.0
    previous = None
    with FileSource(video) as src:
        for f in src.frames():
            if f.index < start:
                continue
            t0 = time.perf_counter()
            previous = pipe.process(Frame(f.index, f.image, f.timestamp), previous)
            seconds += time.perf_counter() - t0
            frames += 1
            people += len(previous)
            ids.update(int(i) for i in previous.track_ids if i >= 0)
            if f.index in keep:
                out[f"{video.name}#{f.index}"] = previous
    return out, {"frames": frames, "people_per_frame": round(people / max(1, frames), 3), "track_ids": len(ids),
                 "ms_per_frame": round(1000 * seconds / max(1, frames), 1),
                 "verify_conf": pipe.verify_conf}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realtime.bench.verify_band", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, default=SHARED / "real-video" / "vtest.avi")
    p.add_argument("--frames", type=int, default=50, help="held-out frames (as realtime.bench.detector_real)")
    p.add_argument("--labels", type=Path, default=LABELS_FILE, help="the judged boxes (tools/ssdlite_margin.py)")
    p.add_argument("--multipose", type=Path, default=None, help="MoveNet multipose ONNX (default peers/)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import cv2

    from engines.bench import machine_description
    from mca.data.pseudo_labels import split_frames
    from realtime.bench.peers import MoveNet, peer_path

    sys.path.insert(0, str(ROOT / "tools"))
    from ssdlite_margin import parse_labels

    mp_path = args.multipose or peer_path("multipose")
    for need, hint in ((mp_path, "python tools/convert_movenet.py -o peers/"), (args.video, "pass --video"),
                       (args.labels, "python tools/ssdlite_margin.py sheet, then judge it")):
        if not Path(need).is_file():
            print(f"error: {need} not found ({hint})", file=sys.stderr)
            return 2
    cap = cv2.VideoCapture(str(args.video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    held = sorted(int(i) for i in split_frames(n, 0, args.frames, 0.25)[1])
    start = min(held)
    judged = parse_labels(args.labels.read_text())
    multipose = MoveNet(mp_path, threads=args.threads, size=512, min_person_score=0.0)
    images = heldout_images(args.video, args.frames, [])  # as detector_real decodes them: the same people
    people = multipose_people(multipose, images, 0.3, 0.3, 6)
    rows = {}
    for name, verify in (("off", None), ("on (auto)", "auto")):
        outputs, counts = run_segment(args.video, start, set(held), verify, args.threads)
        dets = {k: Detections(v.boxes, v.box_scores) for k, v in outputs.items()}
        rec = _score(people, dets, 0.5)
        rows[name] = counts | {"recall": rec["recall"], "recall_tight": rec.get("recall_tight"),
                               "judged_output": dict(judged_output(judged, outputs))}
        log.info("verify %s: %s", name, rows[name])
    total = Counter(b["label"] for b in judged)
    res = {"command": "python -m realtime.bench.verify_band " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine_description() | {"ONNX Runtime threads per model": str(args.threads)},
           "held_out_frames": len(held), "segment_start": start, "multipose_people": len(people),
           "judged": dict(total), "rows": rows}
    lab = {"P": "people", "D": "second boxes", "M": "merged", "F": "railing"}
    lines = ["# Pose-verified boxes (SSDLite 0.2-0.35) in the default real-footage pipeline", "",
             f"Command: `{res['command']}`", "", "Machine: " + "; ".join(f"{k} {v}" for k, v in res["machine"].items()),
             "", f"`ssdlite` + `mca_tiny_real` (FP32), `Pipeline.process` on frames {start}-{n - 1} of "
                 f"`{args.video.name}`; recall over the {len(people)} MoveNet multipose people of the {len(held)} "
                 "held-out frames (as `realtime.bench.detector_real`); judged boxes: those of "
                 f"`{args.labels.name}` that come out as a person (box IoU >= 0.5).", "",
             "| verify | recall | recall, tight | " + " | ".join(f"judged {lab[k]} out ({total[k]})" for k in lab) +
             " | people/frame | track ids | ms/frame |",
             "|---|---|---|" + "---|" * len(lab) + "---|---|---|"]
    for name, r in rows.items():
        j = r["judged_output"]
        lines.append(f"| {name} | **{r['recall']:.3f}** | {r['recall_tight']:.3f} | " +
                     " | ".join(str(j.get(k, 0)) for k in lab) +
                     f" | {r['people_per_frame']} | {r['track_ids']} | {r['ms_per_frame']} |")
    save_report("\n".join(lines) + "\n", res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
