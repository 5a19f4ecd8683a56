"""``python -m realtime.bench.real``: this project and its peers on the same real video, same machine, same run.

On ``vtest.avi`` (a street scene, 768x576, several pedestrians; ``--video`` for another) it times:

- this project: ``realtime.pipeline.Pipeline`` with the SSDLite pedestrian detector and a bundled
  pose model (MP4 + JSON out, its four threads);
- MoveNet lightning, single pose on the whole (letterboxed) frame;
- MoveNet multipose lightning on the whole frame (long side ``--multipose-size``);
- MoveNet thunder on the SSDLite detector's person crops (detect, then one thunder run per person);
- BlazePose (``mediapipe.solutions.pose``, model_complexity 0/1/2, video mode: it tracks one person)
  in another interpreter that has mediapipe (``--blazepose-python``; see tools/setup_blazepose.py).

Every run starts from frames already decoded into memory and ends with the annotated frame
encoded (H.264 through PyAV here; BlazePose, whose interpreter has no PyAV, draws its landmarks and
encodes MPEG-4 Part 2 with OpenCV).  MoveNet and the detector run in ONNX Runtime with the same
threads per model as the pipeline.  Missing peers (``tools/convert_movenet.py`` not run, no
mediapipe interpreter) are skipped with the reason in the report.  Numbers are what this machine
measured in this run; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime.bench.stages import BenchError, end_to_end, peak_rss_mb
from realtime.models import ModelError
from realtime.types import Frame, Poses

log = logging.getLogger(__name__)

__all__ = ["main", "decode_frames", "peer_loop", "report", "blazepose_peer", "ROWS"]

ROWS = ("ours", "lightning", "multipose", "thunder", "blazepose")

HERE = Path(__file__).resolve().parent
# the project's shared data: $MCA_SHARED, else ``shared`` beside the checkout (only the project's machines)
DEFAULT_VIDEO = Path(os.environ.get("MCA_SHARED", HERE.parents[2] / "shared")) / "data" / "real-video" / "vtest.avi"


def decode_frames(video: Path, limit: int) -> list[Frame]:
    """The first ``limit`` frames of ``video`` (all when ``limit`` <= 0), decoded into memory."""
    from realtime.sources import FileSource

    src = FileSource(video)
    out: list[Frame] = []
    try:
        for f in src.frames():
            out.append(f)
            if 0 < limit <= len(out):
                break
    finally:
        src.close()
    if len(out) < 2:
        raise BenchError(f"{video}: fewer than 2 frames decoded")
    return out


def peer_loop(frames: list[Frame], step: Callable[[np.ndarray], Poses], skeleton: tuple[tuple[int, int], ...],
              out: Path, fps: float, warmup: int = 2) -> dict[str, float]:
    """``step`` -> draw -> H.264 encode over ``frames`` in one loop; frames/s and people per frame."""
    from realtime.draw import Renderer
    from realtime.sinks import Mp4Writer

    renderer = Renderer(skeleton)
    for f in frames[:warmup]:
        step(f.image)
    people = 0
    t0 = time.perf_counter()
    with Mp4Writer(out, fps) as w:
        for f in frames:
            poses = step(f.image)
            people += len(poses)
            w.write(renderer.draw(f.image, poses))
    dt = time.perf_counter() - t0
    return {"fps": len(frames) / dt, "people_per_frame": people / len(frames)}


_BLAZEPOSE_SCRIPT = r"""
import json, sys, time
import cv2
import mediapipe as mp
video, limit, complexity, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cap = cv2.VideoCapture(video)
fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
frames = []
while limit <= 0 or len(frames) < limit:
    ok, img = cap.read()
    if not ok:
        break
    frames.append(img)
h, w = frames[0].shape[:2]
writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
draw = mp.solutions.drawing_utils
with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=complexity) as pose:
    for img in frames[:2]:
        pose.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=complexity) as pose:
    infer, found = [], 0
    t0 = time.perf_counter()
    for img in frames:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        r = pose.process(rgb)
        infer.append(1000 * (time.perf_counter() - t1))
        canvas = img.copy()
        if r.pose_landmarks is not None:
            found += 1
            draw.draw_landmarks(canvas, r.pose_landmarks, mp.solutions.pose.POSE_CONNECTIONS)
        writer.write(canvas)
    dt = time.perf_counter() - t0
writer.release()
infer.sort()
print(json.dumps({"frames": len(frames), "fps": len(frames) / dt, "model_ms": infer[len(infer) // 2],
                  "people_per_frame": found / len(frames), "mediapipe": mp.__version__}))
"""


def blazepose_peer(python: str, video: Path, frames: int, complexity: int, out: Path) -> dict[str, float]:
    """BlazePose in an interpreter with mediapipe (it has its own OpenCV/numpy, so never imported here)."""
    r = subprocess.run([python, "-c", _BLAZEPOSE_SCRIPT, str(video), str(frames), str(complexity), str(out)],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise BenchError(f"BlazePose (complexity {complexity}) failed: "
                         f"{(r.stderr.strip().splitlines() or ['?'])[-1][:200]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _ours_row(frames: list[Frame], detector: Any, pose: Any, work: Path, detect_every: int, every_box: bool,
              pose_path: Path, det_path: Path) -> dict[str, Any]:
    """This project's row: the pipeline end to end over ``frames``."""
    from realtime.models import precision_note

    summary = end_to_end(frames, detector, pose, work, detect_every=detect_every, pose_every_box=every_box)
    slow_name, slow_ms = max(summary.stage_ms.items(), key=lambda kv: kv[1])
    every = f", detector every {detect_every} frames" if detect_every > 1 else ""
    every += ", every low-score box posed" if every_box else ""
    row = {"name": f"this project: {pose_path.stem} + {det_path.stem}{every}", "ours": True, "every_box": every_box,
           "runs": "SSDLite detector (300x300), then the pose model on each person crop "
                   f"({pose.info.input_size}x{pose.info.input_size}, batched); pipeline threads",
           "keypoints": "MPII-16", "fps": summary.fps,
           "model_ms": summary.stage_ms.get("detect", float("nan")) + summary.stage_ms.get("pose", float("nan")),
           "people_per_frame": summary.persons / max(1, summary.frames_out),
           "stage_ms": summary.stage_ms, "slowest": slow_name, "efficiency": summary.fps * slow_ms / 1000,
           "precision": precision_note(pose.backend)}
    log.info("%s: %.1f frames/s", row["name"], summary.fps)
    return row


def report(rows: list[dict[str, Any]], skipped: dict[str, str], command: str, machine: dict[str, str],
           video: str, frames: int) -> str:
    """The markdown results page (rows: name, runs, keypoints, fps, model_ms, people_per_frame)."""
    lines = ["# Real footage: this project and its peers", "", f"Command: `{command}`", "",
             "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()), "",
             f"Video: `{video}`, first {frames} frames, decoded into memory before each run. End-to-end "
             "frames/s = infer + draw + encode the annotated frame, over all frames. Model ms = median "
             "milliseconds of the model runs of one frame (detector + pose where both run). People/frame: "
             "how many each found (vtest shows about 3 to 8 pedestrians).", "",
             "| method | what runs on each frame | keypoints | end-to-end frames/s | model ms/frame | people/frame "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        rss = r.get("peak_rss_mb")
        lines.append(f"| {r['name']} | {r['runs']} | {r['keypoints']} | **{r['fps']:.1f}** | {r['model_ms']:.1f} | "
                     f"{r['people_per_frame']:.1f} | {'-' if rss is None else f'{rss:.0f}'} |")
    ours = [r for r in rows if r.get("ours")]
    peers = [r for r in rows if not r.get("ours")]
    if ours and peers:
        lines += ["", "Ratios (this project's frames/s over each peer's, same run):", ""]
        for o in ours:
            lines.append(f"- {o['name']}: " + "; ".join(f"x{o['fps'] / p['fps']:.2f} {p['name']}" for p in peers))
        for o in ours:
            if o.get("efficiency") is not None:
                lines.append(f"- {o['name']}: pipeline efficiency {o['efficiency']:.2f} (frames/s over the slowest "
                             f"stage's rate as timed in the run: {o['slowest']})")
    base = [o for o in ours if o.get("every_box")]
    for o in ours if base else []:
        if not o.get("every_box"):
            lines.append(f"\nDeferred posing (the default) over every low-score box posed, same run: "
                         f"x{o['fps'] / base[0]['fps']:.2f} frames/s")
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- {k}: {v}" for k, v in skipped.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m realtime.bench.real", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="the real video (default: shared vtest.avi)")
    ap.add_argument("--frames", type=int, default=300, help="frames from the start (0 = all)")
    ap.add_argument("--pose", nargs="+", default=["mca_tiny_real"],
                    help="this project's pose models: bundled names or ONNX files (each a row)")
    ap.add_argument("--detector", default="ssdlite", help="person detector: bundled name or ONNX")
    ap.add_argument("--peers-dir", type=Path, default=None, help="folder of tools/convert_movenet.py's ONNX files "
                    "(default: peers/ in the checkout, or $MCA_PEERS)")
    ap.add_argument("--multipose-size", type=int, default=256, help="multipose input long side (multiple of 32)")
    ap.add_argument("--blazepose-python", help="an interpreter with mediapipe (tools/setup_blazepose.py)")
    ap.add_argument("--blazepose-complexity", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per model (default as "
                    "realtime.run: half the physical cores)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks_real.md"), help="markdown report (+ .json)")
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS),
                    help="which rows to run (default all): ours (this project), lightning, multipose, thunder, "
                         "blazepose")
    ap.add_argument("--separate", action="store_true",
                    help="run each row in its own interpreter, so each row's peak RSS is its own")
    ap.add_argument("--detect-every", type=int, default=1, help="this project's --detect-every (default 1)")
    ap.add_argument("--pose-every-box", action="store_true",
                    help="add a row of this project posing every low-score box, also those no track can take "
                         "(the pipeline before its deferred posing), for an A/B in the same run")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, argv)
    except (BenchError, FileNotFoundError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _separate(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Each row in its own interpreter (this module with ``--rows ROW``); their JSON rows merged into one report."""
    from engines.bench import machine_description

    base = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--separate"]
    if "--rows" in base:  # drop the --rows list: one row per child
        i = base.index("--rows")
        j = i + 1
        while j < len(base) and not base[j].startswith("-"):
            j += 1
        base = base[:i] + base[j:]
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    machine: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.rows:
            out = Path(tmp) / f"{row}.md"
            r = subprocess.run([sys.executable, "-m", "realtime.bench.real", *base, "--rows", row, "--out", str(out)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                skipped[row] = (r.stderr.strip().splitlines() or ["failed"])[-1][:200]
                continue
            data = json.loads(out.with_suffix(".json").read_text())
            for x in data["rows"]:
                x["peak_rss_mb"] = data["peak_rss_mb"]
            rows += data["rows"]
            skipped.update(data["skipped"])
            machine = data["machine"]
    command = ("python -m realtime.bench.real " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    n = args.frames
    text = report(rows, skipped, command, machine or machine_description(), args.video.name, n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "video": args.video.name, "frames": n,
                                                         "rows": rows, "skipped": skipped, "command": command},
                                                        indent=1))
    print(text)
    return 0


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.separate:
        return _separate(args, argv)
    from engines.bench import machine_description
    from mca.joints import COCO17
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model
    from realtime.bench.peers import MoveNet, peer_path
    from realtime.pose import PoseEstimator
    from realtime.run import default_threads

    if not args.video.is_file():
        raise BenchError(f"video {args.video} not found (pass --video)")
    threads = args.threads or default_threads()
    machine = machine_description() | {"ONNX Runtime threads per model": str(threads)}
    frames = decode_frames(args.video, args.frames)
    n = len(frames)
    step_s = frames[1].timestamp - frames[0].timestamp
    fps_in = 1.0 / step_s if step_s > 0 else 25.0  # the output videos keep the source's rate
    work = Path(tempfile.mkdtemp(prefix="bench-real-"))
    det_path = resolve_model(args.detector, "detector")
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}

    # this project: the pipeline (detector thread | crop, pose, track | draw, encode), per pose model
    detector = PersonDetector(load_model(det_path, backend="ort", threads=threads))
    for spec in args.pose if "ours" in args.rows else []:
        pose_path = resolve_model(spec, "pose")
        pose = PoseEstimator(load_model(pose_path, backend="ort", threads=threads, outputs=["heatmaps"]))
        end_to_end(frames[:2], detector, pose, work)  # warm-up
        for every_box in (False, True) if args.pose_every_box else (False,):
            rows.append(_ours_row(frames, detector, pose, work, args.detect_every, every_box, pose_path, det_path))

    peers_dir = args.peers_dir
    movenet = {}
    for name in [r for r in ("lightning", "multipose", "thunder") if r in args.rows]:
        path = peer_path(name, peers_dir)
        if path.is_file():
            movenet[name] = MoveNet(path, threads=threads, size=args.multipose_size if name == "multipose" else None)
        else:
            skipped[f"MoveNet {name}"] = f"{path} is absent (make it with 'python tools/convert_movenet.py -o peers/')"
    specs: list[tuple[str, str, str, Callable[[np.ndarray], Poses], Callable[[], float]]] = []
    if "lightning" in movenet:
        m = movenet["lightning"]
        specs.append(("MoveNet lightning (single pose)", "lightning (192x192) on the whole letterboxed frame: "
                      "one person", "lightning", m.estimate, lambda m=m: _median(m.infer_ms)))
    if "multipose" in movenet:
        m = movenet["multipose"]
        specs.append(("MoveNet multipose lightning", f"multipose on the whole frame (long side {m.size}), up to 6 people",
                      "multipose", m.estimate, lambda m=m: _median(m.infer_ms)))
    if "thunder" in movenet:
        m = movenet["thunder"]
        det_ms: list[float] = []
        per_frame: list[float] = []

        def thunder_step(img: np.ndarray, m: MoveNet = m) -> Poses:
            t0 = time.perf_counter()
            d = detector.detect(img)
            det_ms.append(1000 * (time.perf_counter() - t0))
            k = len(m.infer_ms)
            p = m.estimate(img, d)
            per_frame.append(det_ms[-1] + sum(m.infer_ms[k:]))
            return p

        specs.append(("MoveNet thunder on SSDLite crops", "SSDLite detector, then thunder (256x256) once per person "
                      "crop; one thread of work", "thunder", thunder_step, lambda: _median(per_frame)))
    for label, runs, key, step, model_ms in specs:
        movenet[key].infer_ms.clear()
        res = peer_loop(frames, step, COCO17.skeleton, work / f"{key}.mp4", fps_in)
        rows.append({"name": label, "runs": runs, "keypoints": "COCO-17", "fps": res["fps"], "model_ms": model_ms(),
                     "people_per_frame": res["people_per_frame"]})
        log.info("%s: %.1f frames/s", label, res["fps"])

    if "blazepose" in args.rows and not args.blazepose_python:
        skipped["BlazePose"] = "no --blazepose-python given (an interpreter with mediapipe; tools/setup_blazepose.py)"
    elif "blazepose" in args.rows:
        for c in args.blazepose_complexity:
            try:
                r = blazepose_peer(args.blazepose_python, args.video, n, c, work / f"blazepose{c}.mp4")
            except (BenchError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                skipped[f"BlazePose complexity {c}"] = str(e).splitlines()[0]
                continue
            machine.setdefault("mediapipe (BlazePose interpreter)", r.get("mediapipe", "?"))
            rows.append({"name": f"BlazePose, model_complexity {c} ({('lite', 'full', 'heavy')[c]})",
                         "runs": "mediapipe Pose in video mode: person detector when tracking is lost, "
                                 "landmarks on the tracked person (TFLite, its own threads)",
                         "keypoints": "BlazePose-33", "fps": r["fps"], "model_ms": r["model_ms"],
                         "people_per_frame": r["people_per_frame"]})

    video_label = args.video.name
    command = ("python -m realtime.bench.real " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = report(rows, skipped, command, machine, video_label, n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"machine": machine, "video": video_label, "frames": n, "rows": rows, "skipped": skipped,
         "peak_rss_mb": peak_rss_mb(), "command": command}, indent=1))
    print(text)
    log.info("annotated videos in %s", work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
