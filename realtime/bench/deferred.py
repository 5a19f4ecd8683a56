"""``python -m realtime.bench.deferred``: deferred posing against posing every box, frame by frame on real footage.

The detector reports boxes down to ``PipelineConfig.track_low_score`` for the tracker's second pass.  By default
(``PipelineConfig.skip_unreachable``) a box under the verify band is posed only when a track the first pass left over
can reach it (``Tracker.update(deferred=...)``): the others cannot change the output whatever their pose.  This runs
the default real-footage pipeline (``ssdlite`` + ``mca_tiny_real``, FP32, so every CPU gives the same numbers) both
ways over the same frames, one frame of each in turn, and reports:

- **frames that differ**: any difference in the people, their track ids, keypoints or keypoint scores;
- boxes seen and boxes posed by each, people per frame;
- ms per frame of ``Pipeline.process`` for each (same run, interleaved; one thread per model).

::

    python -m realtime.bench.deferred --out docs/deferred_posing
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from realtime.bench.detector_real import SHARED, save_report
from realtime.types import Frame, Poses

log = logging.getLogger(__name__)

__all__ = ["same_output", "compare", "main"]


def same_output(a: Poses, b: Poses) -> bool:
    """Whether two frames' outputs are identical: the same people in the same order, with the same ids, boxes,
    keypoints and keypoint scores."""
    if len(a) != len(b):
        return False
    return (np.array_equal(a.track_ids, b.track_ids) and np.array_equal(a.boxes, b.boxes)
            and np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.scores, b.scores))


def _pipeline(skip: bool, threads: int) -> Any:
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.pose import PoseEstimator

    det = PersonDetector(load_model(resolve_model("ssdlite", "detector"), backend="ort", threads=threads,
                                    int8="off"))
    est = PoseEstimator(load_model(resolve_model("mca_tiny_real", "pose"), backend="ort", threads=threads,
                                   int8="off", outputs=["heatmaps"]))
    return Pipeline(det, est, PipelineConfig(skip_unreachable=skip))


def compare(video: Path, frames: int | None, threads: int = 1, progress: bool = True) -> dict[str, Any]:
    """Both pipelines over the first ``frames`` frames of ``video`` (all when ``None``); the counts of each."""
    from realtime.sources import FileSource

    pipes = {"every box posed": _pipeline(False, threads), "deferred (default)": _pipeline(True, threads)}
    last: dict[str, Poses | None] = dict.fromkeys(pipes)
    seconds = dict.fromkeys(pipes, 0.0)
    people = dict.fromkeys(pipes, 0)
    n = differ = 0
    first_differing: int | None = None
    bar = None
    with FileSource(video, max_frames=frames) as src:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=src.total, unit="frame", desc="deferred vs every box", file=sys.stderr)
        for f in src.frames():
            for name, pipe in pipes.items():
                t0 = time.perf_counter()
                last[name] = pipe.process(Frame(f.index, f.image, f.timestamp), last[name])
                seconds[name] += time.perf_counter() - t0
                people[name] += len(last[name])
            a, b = last["every box posed"], last["deferred (default)"]
            if a is None or b is None or not same_output(a, b):
                differ += 1
                first_differing = f.index if first_differing is None else first_differing
            n += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    rows = {name: {"boxes_seen": p.boxes_seen, "boxes_posed": p.boxes_posed, "people": people[name],
                   "people_per_frame": round(people[name] / max(1, n), 3),
                   "ms_per_frame": round(1000 * seconds[name] / max(1, n), 1)} for name, p in pipes.items()}
    return {"frames": n, "frames_differing": differ, "first_differing_frame": first_differing, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realtime.bench.deferred", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, default=SHARED / "real-video" / "vtest.avi")
    p.add_argument("--frames", type=int, default=None, help="first N frames (default: the whole video)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per model (default 1)")
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.video.is_file():
        print(f"error: {args.video} not found (pass --video)", file=sys.stderr)
        return 2
    if args.frames is not None and args.frames < 1:
        print("error: --frames must be >= 1", file=sys.stderr)
        return 2
    from engines.bench import machine_description

    res = compare(args.video, args.frames, args.threads)
    res = {"command": "python -m realtime.bench.deferred " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine_description() | {"ONNX Runtime threads per model": str(args.threads)},
           "video": args.video.name} | res
    every, lazy = res["rows"]["every box posed"], res["rows"]["deferred (default)"]
    lines = ["# Deferred posing against posing every box", "", f"Command: `{res['command']}`", "",
             "Machine: " + "; ".join(f"{k} {v}" for k, v in res["machine"].items()), "",
             f"`ssdlite` + `mca_tiny_real` (FP32), `Pipeline.process` on the first {res['frames']} frames of "
             f"`{args.video.name}`, both pipelines frame by frame in turn.", "",
             f"**Frames whose output differs: {res['frames_differing']} of {res['frames']}** (people, ids, boxes, "
             "keypoints and keypoint scores compared exactly).", "",
             "| pipeline | boxes seen | boxes posed | people | people/frame | ms/frame |", "|---|---|---|---|---|---|"]
    for name, r in res["rows"].items():
        lines.append(f"| {name} | {r['boxes_seen']} | {r['boxes_posed']} | {r['people']} | {r['people_per_frame']}"
                     f" | {r['ms_per_frame']} |")
    if every["boxes_posed"]:
        lines += ["", f"Crops posed: {lazy['boxes_posed']} / {every['boxes_posed']} = "
                      f"{lazy['boxes_posed'] / every['boxes_posed']:.3f}; ms per frame, deferred over every box "
                      f"(same run): {lazy['ms_per_frame'] / max(every['ms_per_frame'], 1e-9):.3f}."]
    save_report("\n".join(lines) + "\n", res, args.out)
    return 0 if res["frames_differing"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
