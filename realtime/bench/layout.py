"""``python -m realtime.bench.layout``: ONNX Runtime threads per model, measured on real footage.

The pipeline runs four threads (reader: decode; detector; the main thread: crop, pose,
track; writer: draw, H.264, JSON).  What is left to choose is how many intra-op threads
each model's ONNX Runtime session gets.  This runs the whole pipeline on the first
``--frames`` frames of a real video (MP4 + JSON Lines out) for each (detector, pose) pair of
thread counts and reports end-to-end frames/s, the per-frame stage times measured inside the
run, and the pipeline efficiency: frames/s over the slowest stage's rate (1000 / its ms; the
stages are timed while they overlap, so this is the efficiency against the stage as it ran,
not standing alone)::

    python -m realtime.bench.layout --threads 1 2 --out docs/benchmarks_layout.md

Frames/s are this machine's in this run (compare the rows of one run).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from realtime.bench.detect_every import run_once
from realtime.bench.real import DEFAULT_VIDEO
from realtime.bench.stages import BenchError, peak_rss_mb
from realtime.models import ModelError

log = logging.getLogger(__name__)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m realtime.bench.layout", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="real video (default: shared vtest.avi)")
    ap.add_argument("--frames", type=int, default=300, help="frames from the start (default 300)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts to try")
    ap.add_argument("--pose", default="mca_tiny_real", help="pose model (bundled name or ONNX)")
    ap.add_argument("--detector", default="ssdlite", help="detector (bundled name or ONNX)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per layout (the best is kept)")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) and a .json beside it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, argv)
    except (BenchError, ModelError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from engines.bench import machine_description
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model
    from realtime.pose import PoseEstimator

    if not args.video.is_file():
        raise BenchError(f"video {args.video} not found (pass --video)")
    pose_path, det_path = resolve_model(args.pose, "pose"), resolve_model(args.detector, "detector")
    work = Path(tempfile.mkdtemp(prefix="bench-layout-"))
    rows: list[dict[str, Any]] = []
    for td, tp in itertools.product(args.threads, args.threads):
        det = PersonDetector(load_model(det_path, backend="ort", threads=td))
        pose = PoseEstimator(load_model(pose_path, backend="ort", threads=tp, outputs=["heatmaps"]))
        best = None
        for _ in range(max(1, args.repeat)):
            s, _people = run_once(args.video, 1, pose, det, work / "o.jsonl", args.frames, work / "o.mp4")
            if best is None or s.fps > best.fps:
                best = s
        if best is None:  # pragma: no cover - repeat >= 1
            raise BenchError("no run")
        slow_name, slow_ms = max(best.stage_ms.items(), key=lambda kv: kv[1])
        rows.append({"detector_threads": td, "pose_threads": tp, "fps": best.fps,
                     "people_per_frame": best.persons / max(1, best.frames_out),
                     "stage_ms": {k: round(v, 2) for k, v in best.stage_ms.items()}, "slowest": slow_name,
                     "efficiency": best.fps * slow_ms / 1000})
        log.warning("detector %d, pose %d threads: %.1f frames/s", td, tp, best.fps)
    top = max(rows, key=lambda r: r["fps"])
    lines = [f"Command: `python -m realtime.bench.layout {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             "Machine: " + "; ".join(f"{k} {v}" for k, v in machine_description().items()), "",
             f"Video `{args.video.name}`, first {args.frames} frames; pipeline threads: reader, detector, pose "
             f"(+ crop, track), writer (draw, H.264, JSON). Peak RSS of the process: {peak_rss_mb():.0f} MB.", "",
             "| detector threads | pose threads | end-to-end frames/s | stage ms per frame (in the run) | "
             "people/frame | efficiency (vs slowest stage) |", "|---|---|---|---|---|---|"]
    for r in rows:
        st = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items())
        mark = " (best)" if r is top else ""
        lines.append(f"| {r['detector_threads']} | {r['pose_threads']}{mark} | {r['fps']:.1f} | {st} | "
                     f"{r['people_per_frame']:.2f} | {r['efficiency']:.2f} ({r['slowest']}) |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
