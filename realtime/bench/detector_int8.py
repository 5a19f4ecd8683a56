"""``python -m realtime.bench.detector_int8``: does INT8 pay for each bundled detector on this CPU?

For each detector it loads the FP32 file and its ``NAME.int8.onnx`` twin (weights as
:func:`engines.cpu.int8_plan` asks for this CPU), runs both on the same decoded frames of a
real video, alternating frame by frame so that a busy neighbour slows both alike, and reports
the median milliseconds per frame, the ratio, the people each found and how many of FP32's
people INT8 also finds (box IoU >= 0.5).  The numbers behind
:data:`realtime.models.INT8_NOT_FASTER` (which detectors ``--int8 auto`` keeps in FP32)::

    python -m realtime.bench.detector_int8 --out docs/benchmarks_detector_int8.md

Frames/s are this machine's in this run; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from realtime.bench.real import DEFAULT_VIDEO, decode_frames
from realtime.bench.stages import BenchError
from realtime.models import ModelError

log = logging.getLogger(__name__)

__all__ = ["matched", "compare", "main"]


def matched(reference: np.ndarray, other: np.ndarray, thr: float = 0.5) -> int:
    """How many ``reference`` boxes (x1 y1 x2 y2) have a box of ``other`` at IoU >= ``thr`` (greedy, one-to-one)."""
    if len(reference) == 0 or len(other) == 0:
        return 0
    from realtime.tracking import iou_matrix

    m = iou_matrix(np.asarray(reference, np.float32), np.asarray(other, np.float32))
    hits = 0
    while m.size and m.max() >= thr:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        hits += 1
        m[i, :] = -1.0
        m[:, j] = -1.0
    return hits


def compare(name: str, frames: list[Any], threads: int, warmup: int = 3) -> dict[str, Any]:
    """FP32 against INT8 for one bundled detector on ``frames``: median ms, people, FP32 people INT8 finds."""
    from realtime.detectors import PersonDetector
    from realtime.models import int8_variant, load_model, precision_note, resolve_model

    path = resolve_model(name, "detector")
    if int8_variant(path) is None:
        raise BenchError(f"{path.name} has no INT8 twin beside it (scripts/make_int8_models.sh makes one)")
    dets = {mode: PersonDetector(load_model(path, backend="ort", threads=threads, int8=mode))
            for mode in ("off", "on")}
    for f in frames[:warmup]:
        for d in dets.values():
            d.detect(f.image)
    ms: dict[str, list[float]] = {m: [] for m in dets}
    people = {m: 0 for m in dets}
    kept = 0
    for f in frames:
        boxes = {}
        for mode, d in dets.items():
            t0 = time.perf_counter()
            det = d.detect(f.image)
            ms[mode].append(1000 * (time.perf_counter() - t0))
            boxes[mode] = det.boxes
            people[mode] += len(det.boxes)
        kept += matched(boxes["off"], boxes["on"])
    fp32, int8 = statistics.median(ms["off"]), statistics.median(ms["on"])
    return {"detector": path.stem, "fp32_ms": fp32, "int8_ms": int8, "speedup": fp32 / int8,
            "fp32_people": people["off"], "int8_people": people["on"],
            "int8_finds_of_fp32": kept / max(1, people["off"]), "frames": len(frames),
            "int8_precision": precision_note(dets["on"].backend)}


def report(rows: list[dict[str, Any]], machine: dict[str, str], command: str, video: str) -> str:
    """The markdown table."""
    out = ["# INT8 against FP32 per bundled detector", "", f"Command: `{command}`", "",
           "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()), "",
           f"Video `{video}`, {rows[0]['frames'] if rows else 0} frames decoded into memory; both precisions run on "
           "each frame in turn (median ms per frame, ONNX Runtime CPU). 'Kept' = FP32's people that INT8 also "
           "finds (box IoU >= 0.5).", "",
           "| detector | FP32 ms | INT8 ms | INT8 speed-up | people FP32 / INT8 | kept | INT8 run as |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['detector']} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | x{r['speedup']:.2f} | "
                   f"{r['fp32_people']} / {r['int8_people']} | {100 * r['int8_finds_of_fp32']:.1f} % | "
                   f"{r['int8_precision']} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from engines.bench import machine_description
    from realtime.run import default_threads

    ap = argparse.ArgumentParser(prog="python -m realtime.bench.detector_int8",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="a real video (default: shared vtest.avi)")
    ap.add_argument("--frames", type=int, default=150, help="frames from the start")
    ap.add_argument("--detectors", nargs="+", default=["ssdlite", "yolo_synth"], help="bundled detector names")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default as realtime.run)")
    ap.add_argument("--out", type=Path, help="markdown report (+ .json)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not args.video.is_file():
            raise BenchError(f"video {args.video} not found (pass --video)")
        if args.frames < 1:
            raise BenchError("--frames must be >= 1")
        threads = args.threads or default_threads()
        frames = decode_frames(args.video, args.frames)
        rows = [compare(n, frames, threads) for n in args.detectors]
    except (BenchError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    machine = machine_description() | {"ONNX Runtime threads": str(threads)}
    command = "python -m realtime.bench.detector_int8 " + " ".join(sys.argv[1:] if argv is None else argv)
    text = report(rows, machine, command.strip(), args.video.name)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
