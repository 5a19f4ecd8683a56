"""``python -m realtime.run``: live camera or video in, people's skeletons out.

Examples::

    python -m realtime.run --source demo --output demo.mp4 --json demo.json
    python -m realtime.run --source 0 --show                      # webcam
    python -m realtime.run --source walk.mp4 --output walk_pose.mp4
    python -m realtime.run --source rtsp://camera/stream --jsonl poses.jsonl
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

log = logging.getLogger("realtime.run")

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_POSE = MODELS / "pose_mca_tiny_synth.onnx"
DEFAULT_DEMO_DETECTOR = MODELS / "person_yolo_synth.onnx"
DEFAULT_DETECTOR = MODELS / "person_ssdlite.onnx"


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
        if w < 16 or h < 16:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH like 1280x720, got {s!r}") from None
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m realtime.run",
        description="Multi-person pose estimation on a camera, video file, folder, stream or the synthetic demo: "
                    "detect people, crop, run the MCA pose model, track and smooth, and write an annotated H.264 "
                    "MP4 and keypoint JSON.",
        epilog="Exit codes: 0 done, 2 a user error (bad source, model or option), 130 interrupted before any frame.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("input and output")
    io.add_argument("--source", default="demo",
                    help="'demo' (synthetic people with ground truth), a webcam index (0), a video file, a folder of "
                         "images/videos, an rtsp:// or http:// URL, or a GStreamer pipeline (contains '!'). "
                         "Default: demo")
    io.add_argument("--output", "-o", type=Path, help="annotated video to write (H.264 MP4, browser-playable)")
    io.add_argument("--json", type=Path, help="keypoints as COCO results JSON (image_id = frame index)")
    io.add_argument("--jsonl", type=Path, help="per-frame JSON Lines with track ids, boxes, keypoints, scores")
    io.add_argument("--show", action="store_true", help="show a window with an FPS overlay (q or Esc quits)")
    io.add_argument("--frames", type=int, help="stop after this many frames (demo default: 250)")
    io.add_argument("--fps", type=float, help="frame rate for image folders and the demo (videos keep their own)")
    io.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    m = p.add_argument_group("models")
    m.add_argument("--pose", help=f"pose model: an ONNX from engines.export or a TensorRT engine "
                                  f"(default: the bundled {DEFAULT_POSE.name})")
    m.add_argument("--detector", help=f"person detector: YOLO or SSD ONNX/engine (default: {DEFAULT_DETECTOR.name} "
                                      f"for real footage, {DEFAULT_DEMO_DETECTOR.name} for the demo)")
    m.add_argument("--backend", default="auto", choices=["auto", "ort", "trt"],
                   help="auto: TensorRT where a GPU and TensorRT exist, else ONNX Runtime")
    m.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="TensorRT engine precision (default fp16)")
    m.add_argument("--device", help="device for ONNX Runtime: cpu or cuda (default: best available)")
    m.add_argument("--threads", type=int, help="ONNX Runtime threads per model (default: physical cores)")
    t = p.add_argument_group("behaviour")
    t.add_argument("--conf", type=float, default=0.35, help="person detection confidence threshold (default 0.35)")
    t.add_argument("--max-persons", type=int, default=16, help="keep at most this many people per frame, most "
                                                               "confident first (default 16)")
    t.add_argument("--detect-every", type=int, default=1,
                   help="run the detector every N frames and follow people from their keypoints in between "
                        "(default 1: every frame)")
    t.add_argument("--no-smooth", action="store_true", help="turn off One Euro keypoint smoothing")
    t.add_argument("--flip-test", action="store_true", help="average with the mirrored crop (2x pose cost)")
    t.add_argument("--show-attention", action="store_true",
                   help="overlay the model's holistic CRF attention map on each person (needs a model exported "
                        "with --attention)")
    d = p.add_argument_group("demo source")
    d.add_argument("--demo-people", type=int, default=4, help="people in the synthetic demo video (default 4)")
    d.add_argument("--demo-size", type=_size, default=(1280, 720), help="demo frame size WxH (default 1280x720)")
    d.add_argument("--demo-seed", type=int, default=0, help="demo video seed (default 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


def _check_outputs(args: argparse.Namespace) -> None:
    src = Path(args.source).expanduser()
    outs = [o for o in (args.output, args.json, args.jsonl) if o is not None]
    for o in outs:
        if src.exists() and src.is_file() and o.expanduser().resolve() == src.resolve():
            raise UserError(f"refusing to overwrite the input {src} with an output")
        if o.expanduser().is_dir():
            raise UserError(f"output {o} is a directory; give a file name")
    if len({o.expanduser().resolve() for o in outs}) != len(outs):
        raise UserError("--output, --json and --jsonl must be different files")
    if args.output is not None and args.output.suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv"):
        raise UserError(f"--output must be a video file (.mp4), got {args.output}")


def _load(path: Path, role: str, args: argparse.Namespace):  # noqa: ANN202 - engines.Backend
    import engines
    from engines.base import ModelError

    if not path.exists():
        hint = ""
        if path == DEFAULT_POSE:
            hint = " (make it with scripts/train_demo_pose.sh)"
        elif path == DEFAULT_DEMO_DETECTOR:
            hint = (" (make it with scripts/train_demo_detector.py, or pass --detector "
                    f"{DEFAULT_DETECTOR.relative_to(MODELS.parent.parent)} for real footage)")
        raise UserError(f"{role} model not found: {path}{hint}")
    opts = {"threads": args.threads} if args.threads and args.backend != "trt" else {}
    try:
        return engines.load(path, backend=args.backend, precision=args.precision, device=args.device, **opts)
    except ModelError as e:
        raise UserError(f"{role} model: {e}") from None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engines.base import ModelError
    from realtime.detectors import PersonDetector
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.pose import PoseEstimator
    from realtime.sinks import SinkError
    from realtime.sources import SourceError, open_source

    for name, v, lo in (("--detect-every", args.detect_every, 1), ("--max-persons", args.max_persons, 1),
                        ("--demo-people", args.demo_people, 0), ("--frames", args.frames or 1, 1)):
        if v < lo:
            raise UserError(f"{name} must be >= {lo}")
    if not 0 < args.conf < 1:
        raise UserError("--conf must be between 0 and 1")
    _check_outputs(args)
    demo = args.source.strip() == "demo"
    pose_path = Path(args.pose) if args.pose else DEFAULT_POSE
    det_path = Path(args.detector) if args.detector else (DEFAULT_DEMO_DETECTOR if demo else DEFAULT_DETECTOR)
    pose_backend = _load(pose_path, "pose", args)
    det_backend = _load(det_path, "detector", args)
    try:
        estimator = PoseEstimator(pose_backend, flip_test=args.flip_test)
        detector = PersonDetector(det_backend, conf=args.conf, max_persons=args.max_persons)
    except ModelError as e:
        raise UserError(str(e)) from None
    if args.show_attention and estimator.info.attention_index is None:
        raise UserError(f"--show-attention needs a pose model exported with attention outputs "
                        f"(python -m engines.export ... --attention); {pose_path.name} has none")
    if args.show and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform != "linux"):
        log.warning("--show: no display here; running without a window")
        args.show = False
    try:
        source = open_source(args.source, max_frames=args.frames, demo_people=args.demo_people,
                             demo_size=args.demo_size, demo_seed=args.demo_seed, fps=args.fps,
                             joint_set=estimator.info.joint_set)
    except SourceError as e:
        raise UserError(str(e)) from None
    cfg = PipelineConfig(detect_every=args.detect_every, max_persons=args.max_persons, smooth=not args.no_smooth,
                         show=args.show, show_attention=args.show_attention, output=args.output,
                         json_path=args.json, jsonl_path=args.jsonl)
    bar = None if args.quiet else tqdm(total=source.total, unit="frame", desc=Path(source.name).name[:24],
                                       dynamic_ncols=True, disable=None)
    pipeline = Pipeline(detector, estimator, cfg, progress=bar.update if bar else None)

    interrupted = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if interrupted.is_set():  # a second Ctrl-C: stop waiting
            raise KeyboardInterrupt
        interrupted.set()
        log.warning("%s: stopping; finishing frames in flight and closing outputs",
                    signal.Signals(signum).name)
        pipeline.stop()
        source.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with source:
            summary = pipeline.run(source)
    except (SourceError, SinkError) as e:
        raise UserError(str(e)) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if bar:
            bar.close()
    summary.interrupted = summary.interrupted or interrupted.is_set()
    if not args.quiet:
        print(summary.text())
        for label, path in (("video", args.output), ("json", args.json), ("jsonl", args.jsonl)):
            if path:
                print(f"{label}: {path}")
    if summary.frames_out == 0 and not summary.interrupted:
        raise UserError(f"no frames could be read from {args.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
