"""``python -m realtime.run``: camera, video, folder, stream or the synthetic demo in; skeletons out.

Examples::

    python -m realtime.run --source demo --output demo.mp4 --json demo.json
    python -m realtime.run --source 0 --show                      # webcam
    python -m realtime.run --source walk.mp4 --output walk_pose.mp4
    python -m realtime.run --source rtsp://camera/stream --jsonl poses.jsonl

Torch-free: numpy, OpenCV, ONNX Runtime (or TensorRT), PyAV and tqdm.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from typing import Any
from pathlib import Path

from realtime.draw import KPT_THR
from realtime.models import BUNDLED, MODELS_DIR

log = logging.getLogger("realtime.run")

DEFAULT_POSE = BUNDLED["mca_tiny_synth"].path
DEFAULT_DEMO_DETECTOR = BUNDLED["yolo_synth"].path
DEFAULT_DETECTOR = BUNDLED["ssdlite"].path
VIDEO_OUTPUTS = (".mp4", ".m4v", ".mov")


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH between 16 and 8192, like 1280x720, got {s!r}") from None
    return w, h


def _bundled_list() -> str:
    return "\n".join(f"  {n:15s} {b.role:8s} {b.filename:28s} {'ok' if b.path.exists() else 'MISSING'}  {b.about}"
                     for n, b in BUNDLED.items())


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump): 'error: ... (see --help)', exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _gpu_routes() -> str:
    from realtime.gpu_io import describe

    return describe()


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option explained in --help)."""
    p = _Parser(
        prog="python -m realtime.run",
        description="Multi-person pose estimation on a camera, video file, folder, stream or the synthetic demo: "
                    "detect people, crop, run the MCA pose model, track and smooth, and write an annotated H.264 "
                    "MP4 and keypoint JSON. Needs no PyTorch.",
        epilog="Exit codes: 0 done (also after a first Ctrl-C or SIGTERM: reading stops, the frames in flight are "
               "finished and the outputs closed and valid, within about 2 s even if the input has stalled), 2 a user "
               "error or an output that cannot be written (one 'error:' line; what was written is kept), 130 a "
               "second Ctrl-C, or an interrupt before any frame was written. Faults and what is kept: the README's "
               "fault matrix.\n\n"
               + _gpu_routes() + "\n\n"
               "Bundled models (in " + str(MODELS_DIR) + "):\n" + _bundled_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("input and output")
    io.add_argument("--source", default="demo", metavar="SRC",
                    help="'demo' (a synthetic multi-person video rendered on the fly, scored against its ground "
                         "truth at the end), a webcam index (0), a video file, a folder of images/videos, an "
                         "rtsp:// or http(s):// URL, '-' for standard input (a pipe), or a GStreamer pipeline "
                         "(contains '!', e.g. a Jetson CSI camera ending in appsink); GPU decode where the machine "
                         "has it: 'nvdec:FILE' (NVDEC, PyNvVideoCodec), 'jetson:FILE' (GStreamer nvv4l2decoder), "
                         "'csi:N' (nvarguscamerasrc). Default: demo")
    io.add_argument("--output", "-o", type=Path, metavar="OUT.mp4",
                    help="annotated video to write: H.264 MP4 (yuv420p, browser-playable) at the source frame rate")
    io.add_argument("--json", type=Path, metavar="FILE.json",
                    help="keypoints as COCO results JSON (image_id = frame index, category_id 1, "
                         "keypoints [x, y, score, ...] in frame pixels)")
    io.add_argument("--jsonl", type=Path, metavar="FILE.jsonl",
                    help="per-frame JSON Lines: frame, time, and per person track id, box, keypoints, scores")
    io.add_argument("--show", action="store_true",
                    help="show a window with FPS and latency (q or Esc quits); without a display: a warning")
    io.add_argument("--frames", type=int, metavar="N", help="stop after N frames (demo default: 250)")
    io.add_argument("--fps", type=float,
                    help="frame rate for image folders (default 10) and the demo (default 25); videos and "
                         "cameras keep their own")
    io.add_argument("--pace", action="store_true",
                    help="read a video file at its own frame rate, as a camera delivers frames, instead of as "
                         "fast as it decodes (to try a live setup on a recording; other sources ignore it)")
    io.add_argument("--no-audio", action="store_true",
                    help="do not carry the input video's sound into the output MP4 (by default it is copied, or "
                         "encoded to AAC where MP4 cannot hold its codec)")
    io.add_argument("--encoder", default="libx264", choices=["libx264", "h264_nvenc"],
                    help="H.264 encoder of the MP4: libx264 (default, CPU) or h264_nvenc (NVENC, where PyAV's "
                         "FFmpeg has it; checked when the output opens)")
    io.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no closing summary")
    m = p.add_argument_group("models")
    m.add_argument("--pose", metavar="MODEL",
                   help="pose model: an ONNX from 'python -m engines.export', a TensorRT engine, or a bundled name "
                        "(default: mca_tiny_synth for the demo, mca_tiny_real for everything else)")
    m.add_argument("--detector", metavar="MODEL",
                   help="person detector: a YOLO (Ultralytics export) or SSD (TF, tf2onnx) ONNX or engine, or a "
                        "bundled name (default: yolo_synth for the demo, ssdlite for everything else); "
                        "'ground-truth' (demo only) uses the demo's true boxes, to measure pose accuracy without "
                        "detector errors")
    m.add_argument("--backend", default="auto", choices=["auto", "ort", "trt"],
                   help="auto (default): TensorRT where a GPU and TensorRT exist, else ONNX Runtime; ort: ONNX "
                        "Runtime; trt: TensorRT (ONNX files are built into a cached engine)")
    m.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                   help="TensorRT engine precision when building from ONNX (default fp16; int8 needs a Q/DQ model "
                        "from python -m calibration.quantize)")
    m.add_argument("--int8", choices=["auto", "on", "off"],
                   help="INT8 on ONNX Runtime's CPU provider: auto (default; or the MCA_INT8 environment variable) "
                        "decides from this CPU's integer kernels (VNNI or ARM dot product: on; AVX2 without VNNI: "
                        "off, measured no faster), on runs a model's NAME.int8.onnx where one lies beside it, off "
                        "(FP32) never does; the summary says what ran and why")
    m.add_argument("--device", help="ONNX Runtime device: cpu or cuda (default: cuda where onnxruntime-gpu has it)")
    m.add_argument("--threads", type=int,
                   help="ONNX Runtime threads per model (default: half the physical cores, at least 1: the other "
                        "half decodes and encodes in the pipeline's own threads)")
    m.add_argument("--chain", action="store_true",
                   help="run detector, crop and pose as one graph chain (realtime.chain): on TensorRT frames stay on "
                        "the GPU and only boxes and keypoints come back; elsewhere ONNX Runtime runs the same "
                        "graphs (slower than the default path on a CPU: docs/gpu-chain.md)")
    m.add_argument("--list-models", action="store_true", help="list the bundled models and exit")
    t = p.add_argument_group("behaviour")
    t.add_argument("--conf", type=float,
                   help="person detection confidence threshold, 0..1 (default: the detector family's, YOLO 0.25, "
                        "SSD 0.35)")
    t.add_argument("--verify-conf", metavar="T|off",
                   help="also keep boxes scoring from T up to --conf where the pose model finds a person in them "
                        "(mean joint confidence >= 0.5): people the detector was unsure of, not railings "
                        "(default: 0.2 for SSD detectors at their own threshold, off for YOLO; 'off' keeps none)")
    t.add_argument("--max-persons", type=int, default=16,
                   help="keep at most this many people per frame, the most confident (default 16)")
    t.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="run the detector every N frames and follow people in between from the box around their "
                        "previous keypoints (default 1: every frame)")
    t.add_argument("--kpt-thr", type=float, default=KPT_THR, metavar="T",
                   help=f"draw only joints with a confidence of at least T, 0..1 (default {KPT_THR}: chosen from "
                        "the bundled model's scores on real photos, so a person cut off at the waist gets no "
                        "invented legs); the JSON outputs keep every joint with its score")
    t.add_argument("--no-smooth", action="store_true", help="turn off the One Euro keypoint smoothing")
    t.add_argument("--crop-padding", type=float, metavar="F",
                   help="crop side = F x the person box's longer side (default: the model's mca.crop_padding "
                        "metadata, else 1.25 as in training)")
    t.add_argument("--flip-test", action="store_true",
                   help="average each crop's heatmaps with its mirror image's (more accurate, 2x pose cost)")
    t.add_argument("--show-attention", nargs="?", const="holistic", choices=["holistic", "parts"],
                   help="overlay the model's CRF attention on each person: holistic (default) or parts (the "
                        "strongest joint map); needs a model exported with 'engines.export --attention'")
    d = p.add_argument_group("demo source")
    d.add_argument("--demo-people", type=int, default=4, help="people in the synthetic demo video (default 4)")
    d.add_argument("--demo-size", type=_size, default=(1280, 720), metavar="WxH",
                   help="demo frame size (default 1280x720)")
    d.add_argument("--demo-seed", type=int, default=0, help="demo video seed (default 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging (also OpenCV's and FFmpeg's)")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that would overwrite the input or each other, or are not files."""
    src = Path(args.source.strip()).expanduser()
    outs = [o.expanduser() for o in (args.output, args.json, args.jsonl) if o is not None]
    inputs: list[Path] = []
    if src.is_file():
        inputs = [src]
    elif src.is_dir():
        inputs = [f for f in src.iterdir() if f.is_file()]
    for o in outs:
        if any(o.resolve() == i.resolve() or _same_file(o, i) for i in inputs):
            raise UserError(f"refusing to overwrite the input {o} with an output")
        if o.is_dir():
            raise UserError(f"output {o} is a directory; give a file name")
    if len({o.resolve() for o in outs}) != len(outs):
        raise UserError("--output, --json and --jsonl must be different files")
    if args.output is not None and args.output.suffix.lower() not in VIDEO_OUTPUTS:
        raise UserError(f"--output must be an MP4 file ({', '.join(VIDEO_OUTPUTS)}), got {args.output}")
    from realtime.sinks import SinkError, check_output_path

    try:  # before the models load and the source opens: a device, a FIFO or an unwritable place is refused now
        for path, streams in ((args.output, False), (args.json, False), (args.jsonl, True)):
            if path is not None:
                check_output_path(path.expanduser(), streams=streams)
    except SinkError as e:
        raise UserError(str(e)) from None


def _check_numbers(args: argparse.Namespace) -> None:
    for name, v, lo in (("--detect-every", args.detect_every, 1), ("--max-persons", args.max_persons, 1),
                        ("--demo-people", args.demo_people, 0), ("--frames", args.frames, 1),
                        ("--threads", args.threads, 1)):
        if v is not None and v < lo:
            raise UserError(f"{name} must be >= {lo}, got {v}")
    if args.conf is not None and not 0 < args.conf < 1:
        raise UserError(f"--conf must be between 0 and 1, got {args.conf}")
    if not 0 <= args.kpt_thr <= 1:
        raise UserError(f"--kpt-thr must be between 0 and 1, got {args.kpt_thr}")
    from realtime.pipeline import parse_verify_conf  # here: --help stays fast without the pipeline's imports

    try:
        parse_verify_conf(args.verify_conf)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", args.device.strip()):
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.crop_padding is not None and not 0.5 <= args.crop_padding <= 3:
        raise UserError(f"--crop-padding must be between 0.5 and 3, got {args.crop_padding}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise UserError(f"--fps must be in (0, 1000], got {args.fps}")


def default_threads() -> int:
    """ONNX Runtime threads per model in the pipeline: half the physical cores (at least 1).

    Decode/render and draw/encode run in their own threads beside inference; giving
    ONNX Runtime every core makes them fight (on 2 cores, 1 thread per model was
    about 1.4x faster end to end than 2; ``python -m realtime.bench.layout`` measures the
    detector x pose thread table on real footage: docs/benchmarks_layout.md, where 1 + 1
    was again the fastest).
    """
    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 2
    except ImportError:
        cores = os.cpu_count() or 2
    return max(1, int(cores) // 2)


def _chain(args: argparse.Namespace, det_backend: Any, pose_backend: Any) -> tuple[Any, Any]:
    """``--chain``: the graph chain's detector and pose stages (TensorRT where it runs, else ONNX Runtime)."""
    import engines
    from realtime.chain import ChainConfig, GraphChain

    for flag, bad in (("--flip-test", args.flip_test), ("--show-attention", args.show_attention),
                      ("--detector ground-truth", det_backend is None)):
        if bad:
            raise UserError(f"--chain cannot be combined with {flag}")
    for b in (det_backend, pose_backend):
        if not str(b.path).lower().endswith(".onnx"):
            raise UserError(f"--chain builds its graphs from ONNX models; {Path(b.path).name} is not one")
    trt = args.backend != "ort" and engines.tensorrt_available()
    chain = GraphChain(det_backend.path, pose_backend.path, ChainConfig(
        backend="trt" if trt else "ort", device="cuda:0" if trt else "cpu", conf=args.conf,
        max_persons=args.max_persons, crop_padding=args.crop_padding, precision=args.precision,
        threads=args.threads))
    log.info("--chain on %s", "TensorRT (frames stay on the GPU)" if trt else "ONNX Runtime (host arrays)")
    return chain.detector, chain.pose


def _load(spec: str | None, role: str, demo: bool, args: argparse.Namespace):  # noqa: ANN202 - a Backend
    from realtime.models import ModelError, load_model, resolve_model

    if spec is not None and Path(spec).expanduser().is_dir():
        raise UserError(f"--{role} {spec} is a directory; give a model file (.onnx, or a TensorRT .engine)")
    try:
        path = resolve_model(spec, role, demo)
        # the pose model's attention outputs are computed only when they are drawn
        outputs = ["heatmaps"] if role == "pose" and not args.show_attention and path.suffix == ".onnx" else None
        opts = dict(backend=args.backend, device=args.device, threads=args.threads or default_threads(),
                    int8=args.int8, outputs=outputs)
        try:
            backend = load_model(path, precision=args.precision, **opts)
        except ModelError as e:
            if args.precision is None:
                raise
            try:  # e.g. a third-party detector graph that cannot be converted to FP16
                backend = load_model(path, **opts)
            except ModelError:
                raise e from None
            log.warning("--precision %s cannot be applied to the %s model %s; it runs as it is (%s)",
                        args.precision, role, Path(path).name, str(e)[:160])
    except ModelError as e:
        raise UserError(f"{role} model: {e}") from None
    want = (args.device or "").strip()
    got = getattr(backend, "device", None)
    if want.startswith("cuda") and got != "cuda":
        raise UserError(f"--device {want}: the {role} model would run on the {got or 'CPU'}, not on a CUDA GPU "
                        "(this machine or ONNX Runtime build has no CUDA: install onnxruntime-gpu on a GPU machine, "
                        "or use --device cpu)")
    return backend


def _quiet_native_logs() -> None:
    """OpenCV and FFmpeg print their own warnings for a camera or stream that does not open; keep one line."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # pragma: no cover - very old OpenCV builds
        pass


def run(args: argparse.Namespace) -> int:
    """Run the pipeline for parsed ``args``; raises :class:`UserError` for anything the user can fix."""
    if args.list_models:
        print(_bundled_list())
        return 0
    _check_numbers(args)
    _check_outputs(args)
    if not args.verbose:
        _quiet_native_logs()
    from tqdm import tqdm

    from realtime.detectors import GroundTruthDetector, PersonDetector
    from realtime.models import ModelError
    from realtime.pipeline import Pipeline, PipelineConfig, parse_verify_conf
    from realtime.pose import PoseEstimator
    from realtime.sinks import SinkError
    from realtime.sources import SourceError, open_source

    demo = args.source.strip() == "demo"
    pose_backend = _load(args.pose, "pose", demo, args)
    oracle = (args.detector or "").strip() == "ground-truth"
    if oracle and not demo:
        raise UserError("--detector ground-truth needs --source demo (only the demo has ground truth)")
    det_backend = None if oracle else _load(args.detector, "detector", demo, args)
    try:
        estimator = PoseEstimator(pose_backend, flip_test=args.flip_test)
        detector = (GroundTruthDetector(max_persons=args.max_persons) if det_backend is None
                    else PersonDetector(det_backend, conf=args.conf, max_persons=args.max_persons))
        if args.chain:
            detector, estimator = _chain(args, det_backend, pose_backend)  # type: ignore[assignment]
    except ModelError as e:
        raise UserError(str(e)) from None
    info = estimator.info
    if args.show_attention == "holistic" and info.attention_index is None or \
            args.show_attention == "parts" and info.part_attention_index is None:
        what = "holistic_attention" if args.show_attention == "holistic" else "part_attention"
        raise UserError(f"--show-attention {args.show_attention} needs a pose model with a '{what}' output "
                        f"(python -m engines.export ... --attention); {Path(pose_backend.path).name} has none")
    if args.show and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                               or os.environ.get("WAYLAND_DISPLAY")):
        log.warning("--show: no display here (DISPLAY is not set); running without a window")
        args.show = False
    try:
        source = open_source(args.source, max_frames=args.frames, demo_people=args.demo_people,
                             demo_size=args.demo_size, demo_seed=args.demo_seed, fps=args.fps,
                             joint_set=info.joint_set, pace=args.pace)
    except SourceError as e:
        raise UserError(str(e)) from None
    if not (args.output or args.json or args.jsonl or args.show):
        log.warning("no output asked for (-o OUT.mp4, --json, --jsonl or --show): poses are computed and "
                    "counted, and nothing is written")
    cfg = PipelineConfig(detect_every=args.detect_every, max_persons=args.max_persons, smooth=not args.no_smooth,
                         crop_padding=args.crop_padding, kpt_thr=args.kpt_thr, audio=not args.no_audio,
                         show=args.show, show_attention=args.show_attention, output=args.output,
                         json_path=args.json, jsonl_path=args.jsonl, encoder=args.encoder,
                         verify_conf=parse_verify_conf(args.verify_conf))
    bar = None
    if not args.quiet:
        bar = tqdm(total=source.total, unit="frame", desc=Path(source.name).name[:24] or "stream",
                   dynamic_ncols=True, disable=None)
    # `is not None`: a tqdm bar without a total (a camera, a pipe, a folder holding videos) has no truth value
    pipeline = Pipeline(detector, estimator, cfg, progress=bar.update if bar is not None else None)

    interrupted = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if interrupted.is_set():  # a second Ctrl-C: stop waiting for the frames in flight
            raise KeyboardInterrupt
        interrupted.set()
        log.warning("%s: stopping; finishing frames in flight and closing outputs", signal.Signals(signum).name)
        pipeline.stop()
        source.stop()

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with source:
            summary = pipeline.run(source)
    except (SourceError, SinkError, ModelError) as e:
        raise UserError(str(e)) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if bar is not None:
            bar.close()
    summary.interrupted = summary.interrupted or interrupted.is_set()
    if not args.quiet:
        print(summary.text())
        from realtime.models import precision_note

        notes = {role: precision_note(b) for role, b in (("pose", pose_backend), ("detector", det_backend))
                 if b is not None and precision_note(b)}
        if len(notes) == 2 and len(set(notes.values())) == 1:
            notes = {"pose and detector": notes["pose"]}
        if notes:
            print("precision: " + "; ".join(f"{k} {v}" for k, v in notes.items()))
        for label, path in (("video", args.output), ("json", args.json), ("jsonl", args.jsonl)):
            if path:
                print(f"{label}: {path}")
    if summary.frames_out == 0:
        if summary.interrupted:
            return 130
        raise UserError(f"no frames could be read from {args.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn user errors into one 'error:' line and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while finishing: the user does not want to wait
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
