"""``python -m realtime.bench``: per-stage latency, end-to-end frames/s, efficiency, roofline, peers, memory.

On generated H.264 videos (synthetic people, 720p and 1080p, 1/4/16 people) it
measures, in one run on one machine:

- every stage standing alone (decode, detect, crop, pose inference, heatmap decode,
  track + smooth, draw, encode), in milliseconds per frame;
- the whole pipeline end to end (``realtime.pipeline.Pipeline`` with MP4 + JSON
  output), frames/s, and its *efficiency*: end-to-end frames/s divided by the
  slowest stage's stand-alone frames/s (1.0 = the threads overlap perfectly);
- each pose backend (PyTorch eager, ONNX Runtime FP32 and INT8, TensorRT where
  present) and its achieved GFLOP/s against a matmul peak measured in the same run;
- peers on the same video: Ultralytics YOLO-pose (``yolov8n-pose`` from its yaml,
  random weights: speed only) through ONNX Runtime here and through Ultralytics'
  own ``predict`` in an interpreter that has ultralytics (``--peer-python``);
- memory: peak RSS, and with ``--soak N`` the RSS growth over an N-frame run.

Results go to a markdown file with the machine description and a PNG plot of
frames/s against people per frame.  Numbers are what this machine measured in
this run; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from realtime.bench.backends import TorchPoseBackend, pose_backends
from realtime.bench.errors import BenchError
from realtime.bench.yolo_peer import yolo_pose_peer_ort, yolo_pose_peer_ultralytics
from realtime.models import MODELS_DIR
from realtime.sources import VideoSource
from realtime.types import Frame

log = logging.getLogger(__name__)

__all__ = ["make_video", "stage_times", "end_to_end", "soak", "main", "BenchRow", "BenchError", "pose_backends",
           "TorchPoseBackend", "yolo_pose_peer_ort", "yolo_pose_peer_ultralytics"]

STAGES = ("decode", "detect", "crop", "pose", "heatmap decode", "track", "draw", "encode")
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


@dataclass
class BenchRow:
    """One (size, people, backend, batch) measurement."""

    size: str
    people: int
    pose: str
    backend: str
    batch: int
    gmacs: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    e2e_fps: float = 0.0
    persons_per_frame: float = 0.0
    gflops: float = 0.0

    @property
    def slowest(self) -> tuple[str, float]:
        name = max(self.stage_ms, key=self.stage_ms.get)  # type: ignore[arg-type]
        return name, self.stage_ms[name]

    @property
    def efficiency(self) -> float:
        return self.e2e_fps / (1000.0 / self.slowest[1]) if self.stage_ms else 0.0


# ----------------------------------------------------------------------------- inputs
def make_video(path: Path, size: tuple[int, int], people: int, frames: int, fps: float = 25.0, seed: int = 0) -> Path:
    """A synthetic multi-person H.264 video (cached: rendered once per parameters)."""
    from mca.data.synthetic import VideoRenderer
    from realtime.sinks import Mp4Writer

    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".part.mp4")
    renderer = VideoRenderer("mpii16", size, fps, people, seed)
    with Mp4Writer(tmp, fps) as w:
        for i in range(frames):
            w.write(renderer.frame(i).image)
    tmp.replace(path)
    return path


def _decoded(video: Path) -> list[Frame]:
    from realtime.sources import FileSource

    src = FileSource(video)
    try:
        return list(src.frames())
    finally:
        src.close()


class _ListSource(VideoSource):
    """Frames from memory, optionally cycled (soak runs), read like a file (lossless, in order)."""

    def __init__(self, frames: list[Frame], total: int, fps: float = 25.0,
                 on_frame: Callable[[int], None] | None = None) -> None:
        super().__init__("bench")
        self._frames, self.total, self.fps, self.on_frame = frames, total, fps, on_frame
        h, w = frames[0].image.shape[:2]
        self.size = (w, h)

    def frames(self) -> Iterator[Frame]:
        n = len(self._frames)
        for i in range(self.total or 0):
            if self._stop.is_set():
                return
            if self.on_frame is not None:
                self.on_frame(i)
            yield Frame(i, self._frames[i % n].image, i / self.fps)


# ----------------------------------------------------------------------------- measurements
def _ms(fn: Callable[[], Any], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000 * (time.perf_counter() - t0) / reps


def stage_times(video: Path, frames: list[Frame], detector: Any, pose: Any, out_dir: Path) -> dict[str, float]:
    """Milliseconds per frame of each stage run alone over ``frames`` (the stage's stand-alone speed)."""
    from realtime.draw import Renderer
    from realtime.pose import Cropper
    from realtime.sinks import Mp4Writer
    from realtime.tracking import Smoother, Tracker

    n = len(frames)
    ms: dict[str, float] = {}
    ms["decode"] = _ms(lambda: _decoded(video), 1) / n
    info = pose.info
    cropper = Cropper(info.input_size, info.heatmap_size, info.crop_padding)
    pose.attention = False
    detector.detect(frames[0].image)  # warm-up (first-run allocations)
    t0 = time.perf_counter()
    dets = [detector.detect(f.image) for f in frames]
    ms["detect"] = 1000 * (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    crops = [cropper.crop(f.image, d) for f, d in zip(frames, dets)]
    ms["crop"] = 1000 * (time.perf_counter() - t0) / n
    b = pose.max_batch
    pose.backend.run(crops[0].images[:b]) if len(crops[0]) else None
    heat: list[np.ndarray] = []
    t0 = time.perf_counter()
    for c in crops:
        parts = [pose.backend.run(c.images[i:i + b])[info.heatmap_index] for i in range(0, len(c), b)]
        heat.append(np.concatenate(parts) if parts else np.zeros((0, info.num_joints, 1, 1), np.float32))
    ms["pose"] = 1000 * (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    poses = [pose.estimate_from_heatmaps(c, h) for c, h in zip(crops, heat)]
    ms["heatmap decode"] = 1000 * (time.perf_counter() - t0) / n
    tracker, smoother = Tracker(), Smoother()
    t0 = time.perf_counter()
    for i, p in enumerate(poses):
        smoother.smooth(tracker.update(p), i / 25.0)
    ms["track"] = 1000 * (time.perf_counter() - t0) / n
    renderer = Renderer(info.skeleton)
    t0 = time.perf_counter()
    drawn = [renderer.draw(f.image, p) for f, p in zip(frames, poses)]
    ms["draw"] = 1000 * (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    with Mp4Writer(out_dir / "encode_only.mp4", 25.0) as w:
        for img in drawn:
            w.write(img)
    ms["encode"] = 1000 * (time.perf_counter() - t0) / n
    return ms


def end_to_end(frames: list[Frame], detector: Any, pose: Any, out_dir: Path, total: int | None = None,
               on_frame: Callable[[int], None] | None = None, detect_every: int = 1, pose_every_box: bool = False
               ) -> Any:
    """The whole pipeline (four threads, MP4 + JSON out) over ``frames``; returns its Summary (``pose_every_box``:
    also the low-score boxes no track can take, as before the deferred posing)."""
    from realtime.pipeline import Pipeline, PipelineConfig

    src = _ListSource(frames, total or len(frames), on_frame=on_frame)
    cfg = PipelineConfig(output=out_dir / "e2e.mp4", json_path=out_dir / "e2e.json", detect_every=detect_every,
                         skip_unreachable=not pose_every_box)
    return Pipeline(detector, pose, cfg).run(src)  # type: ignore[arg-type]


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def soak(frames: list[Frame], detector: Any, pose: Any, out_dir: Path, total: int,
         every: int = 1000) -> dict[str, Any]:
    """RSS every ``every`` frames over a ``total``-frame pipeline run (frames cycled)."""
    samples: list[tuple[int, float]] = []

    def on_frame(i: int) -> None:
        if i % every == 0:
            samples.append((i, rss_mb()))
            log.info("soak frame %d, RSS %.1f MB", i, samples[-1][1])

    t0 = time.perf_counter()
    summary = end_to_end(frames, detector, pose, out_dir, total, on_frame)
    samples.append((total, rss_mb()))
    base = next((r for i, r in samples if i >= min(every, total // 10)), samples[0][1])  # after warm-up
    return {"frames": summary.frames_out, "seconds": time.perf_counter() - t0, "fps": summary.fps,
            "rss_start_mb": samples[0][1], "rss_after_warmup_mb": base, "rss_end_mb": samples[-1][1],
            "growth_mb": samples[-1][1] - base, "samples": samples}


# ----------------------------------------------------------------------------- report
def plot_fps(rows: list[BenchRow], path: Path) -> None:
    """frames/s against people per frame, one line per (size, backend): drawn with OpenCV (no matplotlib)."""
    import cv2

    W, H, m = 900, 560, 70
    img = np.full((H, W, 3), 255, np.uint8)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        series.setdefault(f"{r.size} {r.pose} {r.backend} b{r.batch}", []).append((r.people, r.e2e_fps))
    people = sorted({r.people for r in rows})
    ymax = max([r.e2e_fps for r in rows] + [30.0]) * 1.1
    xs = {p: m + (W - 2 * m) * (i / max(1, len(people) - 1)) for i, p in enumerate(people)}

    def y(v: float) -> int:
        return int(H - m - (H - 2 * m) * v / ymax)

    cv2.line(img, (m, H - m), (W - m, H - m), (0, 0, 0), 1)
    cv2.line(img, (m, m), (m, H - m), (0, 0, 0), 1)
    for v in np.arange(0, ymax, 5 if ymax < 60 else 10):
        cv2.line(img, (m - 4, y(v)), (W - m, y(v)), (225, 225, 225), 1)
        cv2.putText(img, f"{v:.0f}", (m - 40, y(v) + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for p, x in xs.items():
        cv2.putText(img, str(p), (int(x) - 6, H - m + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for v, txt in ((30, "30 fps"), (15, "15 fps")):
        cv2.line(img, (m, y(v)), (W - m, y(v)), (120, 120, 255), 1, cv2.LINE_AA)
        cv2.putText(img, txt, (W - m + 4, y(v) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 200), 1, cv2.LINE_AA)
    cv2.putText(img, "people per frame", (W // 2 - 70, H - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, "end-to-end frames/s (decode ... H.264 encode)", (m, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (0, 0, 0), 1, cv2.LINE_AA)
    palette = [(200, 80, 30), (30, 150, 30), (30, 30, 200), (160, 40, 160), (20, 140, 170), (90, 90, 90),
               (0, 100, 255), (120, 60, 0)]
    for k, (name, pts) in enumerate(sorted(series.items())):
        col = palette[k % len(palette)]
        pts = sorted(pts)
        for (p0, v0), (p1, v1) in zip(pts, pts[1:]):
            cv2.line(img, (int(xs[p0]), y(v0)), (int(xs[p1]), y(v1)), col, 2, cv2.LINE_AA)
        for p, v in pts:
            cv2.circle(img, (int(xs[p]), y(v)), 4, col, -1, cv2.LINE_AA)
        cv2.putText(img, name, (m + 10 + 260 * (k % 3), 60 + 18 * (k // 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1,
                    cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def report(rows: list[BenchRow], peak: float, peers: dict[str, dict[str, float]],
           memory: dict[str, Any], command: str, machine: dict[str, str], plot: str | None) -> str:
    lines = ["# Realtime benchmark", "", f"Command: `{command}`", "",
             "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()), "",
             f"Measured float32 matmul peak in this run: **{peak:.1f} GFLOP/s** (the roofline's compute ceiling). "
             "Pose GFLOP/s = 2 x GMACs per crop x people found per frame / pose ms per frame.", "",
             "## End to end and per stage", "",
             "End-to-end = the pipeline's four threads (decode | detect | crop, pose, heatmap decode, track | draw, "
             "H.264 encode + JSON) over the whole clip. Stage columns: ms per frame of that stage run alone. "
             "Efficiency = end-to-end frames/s / the slowest stage's stand-alone frames/s (1.0 = perfect overlap).",
             "",
             "| video | people | pose model (GMACs/crop) | backend | batch | " + " | ".join(STAGES) + " | end-to-end frames/s | efficiency "
             "(slowest stage) | pose GFLOP/s (% peak) |",
             "|---|---|---|---|---|" + "---|" * len(STAGES) + "---|---|---|"]
    for r in rows:
        st = " | ".join(f"{r.stage_ms.get(s, float('nan')):.1f}" for s in STAGES)
        lines.append(f"| {r.size} | {r.people} ({r.persons_per_frame:.1f} found) | {r.pose} ({r.gmacs:.2f}) | "
                     f"{r.backend} | {r.batch} | {st} | "
                     f"**{r.e2e_fps:.1f}** | {r.efficiency:.2f} ({r.slowest[0]}) | {r.gflops:.1f} "
                     f"({100 * r.gflops / peak:.0f} %) |")
    if plot:
        lines += ["", f"![frames/s against people per frame]({plot})"]
    if peers:
        lines += ["", "## Peers, same videos, same run", "",
                  "| peer | video | accuracy it runs at | end-to-end frames/s | model ms/frame |", "|---|---|---|---|---|"]
        for name, p in peers.items():
            lines.append(f"| {name} | {p.get('video', '')} | {p.get('accuracy', '')} | {p['fps']:.1f} | "
                         f"{p.get('infer_ms', p.get('inference_ms', float('nan'))):.1f} |")
    if memory:
        lines += ["", "## Memory", ""]
        for k, v in memory.items():
            if k != "samples":
                lines.append(f"- {k}: {v:.1f}" if isinstance(v, float) else f"- {k}: {v}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m realtime.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["720p", "1080p"], choices=list(SIZES), help="video sizes")
    ap.add_argument("--people", type=int, nargs="+", default=[1, 4, 16], help="people per frame")
    ap.add_argument("--frames", type=int, default=60, help="frames per clip")
    ap.add_argument("--backends", nargs="+", default=["ort", "ort-int8", "torch"],
                    help="pose backends: ort, ort-int8, torch, trt-fp16, trt-int8 (unavailable ones are skipped)")
    ap.add_argument("--batches", type=int, nargs="+", default=[16], help="pose batch sizes (persons per run)")
    ap.add_argument("--pose", nargs="+", default=[str(MODELS_DIR / "pose_mca_tiny_synth.onnx")],
                    help="pose models: ONNX files, or registered config names (exported with random weights, "
                         "same speed; needs torch)")
    ap.add_argument("--checkpoint", type=Path, default=MODELS_DIR / "pose_mca_tiny_synth.pt",
                    help="PyTorch weights for the torch backend (random weights of the same config if absent)")
    ap.add_argument("--detector", type=Path, default=MODELS_DIR / "person_yolo_synth.onnx", help="detector ONNX")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime/torch threads per model "
                    "(default: as realtime.run, half the physical cores)")
    ap.add_argument("--peer-onnx", type=Path, help="YOLO-pose ONNX (tools/export_yolo_pose.py) to run as a peer")
    ap.add_argument("--peer-python", help="an interpreter with ultralytics, to time its own predict (optional)")
    ap.add_argument("--peer-weights", default="yolov8n-pose.yaml", help="what --peer-python's YOLO() loads")
    ap.add_argument("--soak", type=int, default=0, help="also run N frames (>= 20000 for the soak goal) and report "
                    "RSS growth")
    ap.add_argument("--soak-size", default="720p", choices=list(SIZES))
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mca-bench",
                    help="where generated videos and INT8 models are kept between runs")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="markdown report (and a .png plot)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        log.setLevel(logging.INFO)
    try:
        return _run(args, argv)
    except (BenchError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from engines.bench import machine_description
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, precision_note
    from realtime.pose import PoseEstimator
    from realtime.run import default_threads

    if not args.detector.is_file():
        raise BenchError(f"model file {args.detector} not found")
    if args.frames < 2:
        raise BenchError("--frames must be at least 2")
    threads = args.threads or default_threads()
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.cache))
    machine = machine_description() | {"threads per model": str(threads)}
    peak = _matmul_peak()
    poses: dict[str, tuple[dict[str, Any], float]] = {}
    for spec in args.pose:
        onnx = resolve_pose(spec, args.cache)
        ckpt = args.checkpoint if onnx.resolve() == (MODELS_DIR / "pose_mca_tiny_synth.onnx") else None
        backends = pose_backends(args.backends, onnx, ckpt, args.cache, threads)
        if not backends:
            raise BenchError("none of the requested pose backends can run here")
        poses[_pose_label(onnx)] = (backends, _gmacs(onnx))
    detector = PersonDetector(load_model(args.detector, backend="ort", threads=threads), max_persons=32)
    machine["detector"] = f"{args.detector.name}, {precision_note(detector.backend) or 'as given'}"
    for label, (bk, _) in poses.items():
        for name, b in bk.items():
            machine[f"pose {label} {name}"] = precision_note(b) or ("PyTorch eager, FP32" if name == "torch" else
                                                                    "as given")
    rows: list[BenchRow] = []
    peers: dict[str, dict[str, float]] = {}
    memory: dict[str, Any] = {}
    command = ("python -m realtime.bench " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot = args.out.with_suffix(".png")
    chain_md = ""  # the TensorRT chain rows (realtime.bench.chain), measured after the CPU rows

    def write() -> None:
        """Write what is measured so far (an interrupted run keeps its finished cases)."""
        memory["peak RSS of the benchmark process (MB)"] = peak_rss_mb()
        if rows:
            plot_fps(rows, plot)
        args.out.write_text(report(rows, peak, peers, memory, command, machine, plot.name if rows else None) +
                            (f"\n## GPU chain (TensorRT, issue 14)\n\n{chain_md}\n" if chain_md else ""))
        args.out.with_suffix(".json").write_text(json.dumps(
            {"machine": machine, "command": command, "matmul_peak_gflops": peak,
             "rows": [r.__dict__ | {"efficiency": r.efficiency} for r in rows], "peers": peers, "memory": memory},
            indent=1, default=str))

    from tqdm import tqdm

    jobs = [(s, n, pn, b, bs) for s in args.sizes for n in args.people for pn, (bk, _) in poses.items() for b in bk
            for bs in args.batches]
    bar = tqdm(jobs, desc="bench", unit="case", disable=None)
    clips: dict[tuple[str, int], tuple[Path, list[Frame]]] = {}
    for size, n, pname, bname, batch in bar:
        bar.set_postfix_str(f"{size} {n} people {pname} {bname} b{batch}")
        backends, gmacs = poses[pname]
        if (size, n) not in clips:
            video = make_video(args.cache / f"bench_{size}_{n}p_{args.frames}f.mp4", SIZES[size], n, args.frames)
            clips[(size, n)] = (video, _decoded(video))
        video, frames = clips[(size, n)]
        pose = PoseEstimator(backends[bname], max_batch=batch)
        row = BenchRow(size, n, pname, bname, batch, gmacs)
        row.stage_ms = stage_times(video, frames, detector, pose, work)
        summary = end_to_end(frames, detector, pose, work)
        row.e2e_fps = summary.fps
        row.persons_per_frame = summary.persons / max(1, summary.frames_out)
        pose_ms = row.stage_ms["pose"]
        row.gflops = 2 * gmacs * row.persons_per_frame / (pose_ms / 1000) if pose_ms > 0 else 0.0
        rows.append(row)
        log.info("%s", row)
        write()
    if args.peer_onnx or args.peer_python:
        size = args.sizes[0]
        n = 4 if 4 in args.people else args.people[0]
        video, frames = clips[(size, n)]
        label = f"{size}, {n} people"
        if args.peer_onnx:
            if not args.peer_onnx.is_file():
                raise BenchError(f"peer model {args.peer_onnx} not found")
            peers["YOLOv8n-pose, ONNX Runtime (our pre/post-processing)"] = yolo_pose_peer_ort(
                args.peer_onnx, frames, work, threads) | {"video": label,
                                                          "accuracy": "random weights: none (speed only)"}
        if args.peer_python:
            peers["YOLOv8n-pose, Ultralytics predict (PyTorch)"] = yolo_pose_peer_ultralytics(
                args.peer_python, video, args.peer_weights, threads) | {
                "video": label, "accuracy": "random weights: none (speed only)"}
        ours = next(r for r in rows if r.size == size and r.people == n)
        peers[f"this project, {ours.pose} {ours.backend} (+ YOLOv8n 320 detector)"] = {
            "fps": ours.e2e_fps, "infer_ms": ours.stage_ms["pose"] + ours.stage_ms["detect"], "video": label,
            "accuracy": "synthetic-domain demo models (held-out synthetic PCK@0.2 ~0.76, detector AP50 ~0.83)"}
    from realtime.bench.chain import chain_markdown

    chain_md = chain_markdown(args.detector, Path(resolve_pose(args.pose[0], args.cache)), args.sizes, args.people,
                              reps=5, cache=args.cache / "chain")
    write()
    if args.soak:
        vs = args.soak_size
        video = make_video(args.cache / f"bench_{vs}_1p_{args.frames}f.mp4", SIZES[vs], 1, args.frames)
        first_backends = next(iter(poses.values()))[0]
        s = soak(_decoded(video), detector, PoseEstimator(first_backends[next(iter(first_backends))]), work, args.soak)
        memory |= {f"soak: {s['frames']} frames of {vs} (1 person, clip cycled), frames/s": s["fps"],
                   "soak: RSS after warm-up (MB)": s["rss_after_warmup_mb"], "soak: RSS at end (MB)": s["rss_end_mb"],
                   "soak: RSS growth (MB; goal < 50)": s["growth_mb"],
                   "soak: RSS samples (frame, MB)": ", ".join(f"({i}, {r:.0f})" for i, r in s["samples"])}
    write()
    print(args.out.read_text())
    return 0


def resolve_pose(spec: str, cache: Path) -> Path:
    """An ONNX path as given, or a registered config exported with random weights into ``cache`` (speed only)."""
    p = Path(spec)
    if p.suffix == ".onnx" or p.exists():
        if not p.is_file():
            raise BenchError(f"pose model {p} not found")
        return p
    try:
        from mca.config import list_models
    except ImportError:
        raise BenchError(f"{spec!r} is not a file, and naming a config needs torch (pip install torch)") from None
    if spec not in list_models():
        raise BenchError(f"{spec!r} is neither an ONNX file nor a registered config ({', '.join(list_models())})")
    out = cache / f"{spec}_random.onnx"
    if not out.exists():
        from engines.export import ExportOptions, export_pose
        from mca.registry import create_model

        export_pose(create_model(spec).eval(), out, ExportOptions(attention_outputs=True))
    return out


def _pose_label(onnx: Path) -> str:
    try:
        from engines.ort import read_onnx_metadata

        name = read_onnx_metadata(onnx).get("mca.config", onnx.stem)
    except Exception:  # noqa: BLE001 - a label only
        name = onnx.stem
    return f"{name}" + (" (random weights)" if onnx.stem.endswith("_random") else "")


def _matmul_peak() -> float:
    """float32 GEMM GFLOP/s with all threads: torch where installed, else numpy's BLAS."""
    try:
        from engines.bench import matmul_peak_gflops

        return matmul_peak_gflops()
    except ImportError:
        n = 2048
        a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
        a @ b
        return 2 * n**3 / (_ms(lambda: a @ b, 5) / 1000) / 1e9


def _gmacs(onnx: Path) -> float:
    """Multiply-accumulates of one crop: from mca.summary when torch is here, else counted from the ONNX convs."""
    try:
        from engines.ort import read_onnx_metadata
        from mca.config import MCAConfig
        from mca.registry import create_model
        from mca.summary import count_macs

        cfg = json.loads(read_onnx_metadata(onnx)["mca.config_json"])
        model = create_model(cfg.pop("name"), **{k: v for k, v in cfg.items() if k in MCAConfig.__dataclass_fields__})
        return count_macs(model, int(read_onnx_metadata(onnx)["mca.input_size"])) / 1e9
    except (ImportError, KeyError) as e:
        log.warning("GMACs unknown (%s); GFLOP/s reported as 0", e)
        return 0.0


if __name__ == "__main__":
    raise SystemExit(main())
