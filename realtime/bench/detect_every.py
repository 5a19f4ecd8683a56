"""``python -m realtime.bench.detect_every``: detect every N frames on real footage — speed against recall.

The pipeline runs the detector every ``N`` frames and follows people in between from the
box around their previous keypoints (``--detect-every``).  This runs the whole pipeline on
a real video for each N (decode in its reader thread, detect, pose, track, JSON Lines out)
and reports, per N: end-to-end frames/s, the per-frame stage times, the recall of
teacher-labelled people (helper "sides"' ``tools/pseudo_label.py`` manifest: MoveNet-thunder
labels on the SSDLite boxes of held-out ``vtest.avi`` frames; a person counts as found when
a posed person's box overlaps the labelled box by IoU >= 0.5), and the keypoint change
against N = 1 on the people both runs found.  The default N is the largest whose recall is
within 1 point of N = 1 (the issue's rule); the table says which that was::

    python -m realtime.bench.detect_every --labels ../sides/data/pseudo/manifest.json --every 1 2 3 4

Frames/s are this machine's in this run (a shared machine: compare the rows of one run).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from realtime.bench.real import DEFAULT_VIDEO
from realtime.bench.stages import BenchError
from realtime.models import ModelError

log = logging.getLogger(__name__)

__all__ = ["teacher_boxes", "recall", "keypoint_change", "main"]


def teacher_boxes(manifest: Path, split: str = "test") -> dict[int, np.ndarray]:
    """Frame index -> (K, 4) x1 y1 x2 y2 boxes of the labelled people of ``split`` (video frames only)."""
    m = json.loads(Path(manifest).read_text())
    out: dict[int, list[list[float]]] = {}
    for it in m["items"][split]:
        src = str(it["source"])
        if "#" not in src:
            continue  # a still photo, not a video frame
        out.setdefault(int(src.rsplit("#", 1)[1]), []).append([float(v) for v in it["box_frame"]])
    if not out:
        raise BenchError(f"{manifest}: no labelled video frames in split {split!r}")
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def recall(labels: dict[int, np.ndarray], frames: dict[int, list[dict[str, Any]]], iou: float = 0.5) -> float:
    """Share of labelled people with a posed person's box at IoU >= ``iou`` (one-to-one, greedy by IoU)."""
    found = total = 0
    for f, gt in labels.items():
        boxes = np.asarray([p["box"] for p in frames.get(f, [])], np.float64).reshape(-1, 4)
        m = _iou(gt, boxes)
        total += len(gt)
        while m.size and m.max() >= iou:
            i, j = np.unravel_index(np.argmax(m), m.shape)
            found += 1
            m[i, :] = -1
            m[:, j] = -1
    return found / max(1, total)


def keypoint_change(ref: dict[int, list[dict[str, Any]]], run: dict[int, list[dict[str, Any]]],
                    iou: float = 0.5) -> tuple[float, float]:
    """Mean and 95th percentile keypoint distance (frame px) between the people two runs both posed."""
    d: list[np.ndarray] = []
    for f, people in ref.items():
        other = run.get(f, [])
        if not people or not other:
            continue
        m = _iou(np.asarray([p["box"] for p in people]), np.asarray([p["box"] for p in other]))
        while m.size and m.max() >= iou:
            i, j = np.unravel_index(np.argmax(m), m.shape)
            a, b = np.asarray(people[i]["keypoints"]), np.asarray(other[j]["keypoints"])
            d.append(np.linalg.norm(a[:, :2] - b[:, :2], axis=1))
            m[i, :] = -1
            m[:, j] = -1
    if not d:
        return float("nan"), float("nan")
    x = np.concatenate(d)
    return float(x.mean()), float(np.percentile(x, 95))


def _read_jsonl(path: Path) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "frame" in row:
            out[int(row["frame"])] = row["people"]
    return out


def run_once(video: Path, every: int, pose: Any, detector: Any, out: Path, max_frames: int | None = None,
             mp4: Path | None = None) -> tuple[Any, dict[int, list]]:
    """One pipeline run over ``video`` (``max_frames`` or all) with ``--detect-every every``, JSON Lines to ``out``
    (and an annotated H.264 MP4 to ``mp4``); returns (summary, frame -> people)."""
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.sources import open_source

    cfg = PipelineConfig(detect_every=every, jsonl_path=out, output=mp4)
    with open_source(str(video), max_frames=max_frames) as src:
        summary = Pipeline(detector, pose, cfg).run(src)
    return summary, _read_jsonl(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m realtime.bench.detect_every", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="real video (default: shared vtest.avi)")
    ap.add_argument("--labels", type=Path,
                    help="tools/pseudo_label.py's manifest.json for the video (without: no recall column)")
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 4], help="values of N (default 1 2 3 4)")
    ap.add_argument("--pose", default="mca_tiny_real", help="pose model (bundled name or ONNX)")
    ap.add_argument("--detector", default="ssdlite", help="detector (bundled name or ONNX)")
    ap.add_argument("--threads", type=int, help="ONNX Runtime threads per model (default as realtime.run)")
    ap.add_argument("--frames", type=int, help="only the first N frames (default: the whole video)")
    ap.add_argument("--int8", choices=["auto", "on", "off"], default="auto",
                    help="as realtime.run --int8; when INT8 runs, an FP32 run at N = 1 is added and every row's "
                         "keypoint change against it reported")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) and a .json beside it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, argv)
    except (BenchError, ModelError, OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from engines.bench import machine_description
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, precision_note, resolve_model
    from realtime.pose import PoseEstimator
    from realtime.run import default_threads

    if not args.video.is_file():
        raise BenchError(f"video {args.video} not found (pass --video)")
    if any(n < 1 for n in args.every) or 1 not in args.every:
        raise BenchError("--every needs positive values including 1 (the reference)")
    labels = teacher_boxes(args.labels) if args.labels else {}
    if args.frames and labels:
        labels = {k: v for k, v in labels.items() if k < args.frames}
        if not labels:
            raise BenchError(f"no labelled frame among the first {args.frames}")
    threads = args.threads or default_threads()
    pose_path, det_path = resolve_model(args.pose, "pose"), resolve_model(args.detector, "detector")
    pose = PoseEstimator(load_model(pose_path, backend="ort", threads=threads, outputs=["heatmaps"], int8=args.int8))
    detector = PersonDetector(load_model(det_path, backend="ort", threads=threads, int8=args.int8))
    notes = f"pose {precision_note(pose.backend)}; detector {precision_note(detector.backend)}"
    work = Path(tempfile.mkdtemp(prefix="bench-every-"))
    results: dict[int, dict[str, Any]] = {}
    people: dict[int, dict[int, list]] = {}
    fp32_ref = None
    if "INT8" in notes:
        ref_pose = PoseEstimator(load_model(pose_path, backend="ort", threads=threads, outputs=["heatmaps"],
                                            int8="off"))
        ref_det = PersonDetector(load_model(det_path, backend="ort", threads=threads, int8="off"))
        _, fp32_ref = run_once(args.video, 1, ref_pose, ref_det, work / "fp32.jsonl", args.frames)
    for n in sorted(set(args.every)):
        summary, people[n] = run_once(args.video, n, pose, detector, work / f"every{n}.jsonl", args.frames)
        results[n] = {"every": n, "fps": summary.fps, "frames": summary.frames_out,
                      "people_per_frame": summary.persons / max(1, summary.frames_out),
                      "stage_ms": {k: round(v, 2) for k, v in summary.stage_ms.items()},
                      "recall": recall(labels, people[n]) if labels else float("nan")}
        log.warning("every %d: %.1f frames/s, recall %.3f", n, summary.fps, results[n]["recall"])
    for n, r in results.items():
        r["kp_change_mean_px"], r["kp_change_p95_px"] = keypoint_change(people[1], people[n])
        if fp32_ref is not None:
            r["kp_change_vs_fp32_mean_px"], r["kp_change_vs_fp32_p95_px"] = keypoint_change(fp32_ref, people[n])
    base = results[1]["recall"]
    ok = [n for n, r in results.items() if r["recall"] >= base - 0.01]
    pick = max(ok) if labels else 1
    labelled = sum(len(v) for v in labels.values())
    lines = [f"Command: `python -m realtime.bench.detect_every {' '.join(argv if argv is not None else sys.argv[1:])}`",
             "", "Machine: " + "; ".join(f"{k} {v}" for k, v in machine_description().items()), "",
             f"Video `{args.video.name}` ({f'first {args.frames}' if args.frames else 'all'} frames, decoded in the "
             f"pipeline's reader thread); recall over {labelled} teacher-labelled people on {len(labels)} held-out "
             f"frames ({args.labels.name if args.labels else 'no labels given'}). Precision: {notes}.", "",
             "| detect every N | end-to-end frames/s | x vs N=1 | stage ms per frame | people/frame | recall | "
             "keypoint change vs N=1 (px, mean / p95) |", "|---|---|---|---|---|---|---|"]
    for n, r in results.items():
        st = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items())
        lines.append(f"| {n}{' (chosen)' if labels and n == pick else ''} | {r['fps']:.1f} | x{r['fps'] / results[1]['fps']:.2f} "
                     f"| {st} | {r['people_per_frame']:.2f} | {100 * r['recall']:.1f} % "
                     f"| {r['kp_change_mean_px']:.2f} / {r['kp_change_p95_px']:.2f} |")
    if fp32_ref is not None:
        lines += ["", "Keypoint change against an FP32 run at N = 1 (px, mean / p95): " + "; ".join(
            f"N = {n}: {r['kp_change_vs_fp32_mean_px']:.2f} / {r['kp_change_vs_fp32_p95_px']:.2f}"
            for n, r in results.items())]
    if labels:
        lines += ["", f"Rule: the largest N with recall within 1 point of N = 1 ({100 * base:.1f} %): **N = {pick}**."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"rows": list(results.values()), "chosen": pick}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
