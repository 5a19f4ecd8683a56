"""``python -m realtime.bench.evaluate_pipeline``: does the pipeline lose accuracy against the model alone?

Runs the whole pipeline (detector boxes, crops, batched pose, decode, tracking,
optionally smoothing) on synthetic demo videos, then runs the pose model alone on
the *same people* of the *same frames*, cropped from their ground-truth boxes, and
scores both with the demo's PCK@0.2 (torso) over visible joints.  A pipeline that
"loses nothing" scores at least what the model alone scores; the difference per
seed shows the noise.  Torch-free (numpy, OpenCV, ONNX Runtime).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["PipelineVsModel", "compare", "main"]


@dataclass(frozen=True)
class PipelineVsModel:
    """PCK@0.2 on one demo video: the model alone and the pipeline, with true and with detected boxes.

    ``model_gt``: the model alone on every in-view person, cropped from the true box.
    ``pipeline_gt``: the whole pipeline with the ground-truth (oracle) detector: equal to
    ``model_gt`` when the pipeline's own stages lose nothing.  ``pipeline_det``: the
    pipeline with the detector; ``model_found``: the model alone, true boxes, on the same
    people the detector found, so ``pipeline_det - model_found`` is what the detector's
    box placement costs on the people it finds (missed people show in ``recall``).
    """

    seed: int
    frames: int
    people: int
    recall: float
    joints_gt: int
    joints_found: int
    model_gt: float
    pipeline_gt: float
    model_found: float
    pipeline_det: float


def _run_pipeline(detector, pose, source, smooth: bool):  # noqa: ANN001, ANN202
    """The pipeline on ``source``; returns its summary and, per frame, which true people its boxes matched."""
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.tracking import iou_matrix

    found: list[np.ndarray] = []
    pipe = Pipeline(detector, pose, PipelineConfig(smooth=smooth))
    process = pipe.process

    def recording(frame, previous, det=None):  # noqa: ANN001, ANN202 - same signature as Pipeline.process
        poses = process(frame, previous, det)
        people = frame.ground_truth.people
        gt = np.stack([p.box for p in people]) if people else np.zeros((0, 4))
        iou = iou_matrix(gt, poses.boxes)
        found.append(iou.max(1) >= 0.5 if iou.size else np.zeros(len(gt), bool))
        return poses

    pipe.process = recording  # type: ignore[method-assign]
    return pipe.run(source), found, pipe.cropper.padding


def compare(pose_path: str | Path, detector_path: str | Path, seed: int, frames: int = 60, people: int = 3,
            size: tuple[int, int] = (1280, 720), smooth: bool = False) -> PipelineVsModel:
    """One demo video through the pipeline (oracle and real detector) and through the model alone."""
    from realtime.detectors import GroundTruthDetector, PersonDetector
    from realtime.models import load_model
    from realtime.pipeline import DEMO_MIN_VISIBLE, Summary, _score_demo
    from realtime.pose import Cropper, PoseEstimator
    from realtime.sources import DemoSource
    from realtime.types import Detections

    pose = PoseEstimator(load_model(pose_path, backend="ort"))
    det = PersonDetector(load_model(detector_path, backend="ort"))
    video = lambda: DemoSource(frames, size, people, seed=seed)  # noqa: E731
    with_gt, _, _ = _run_pipeline(GroundTruthDetector(DEMO_MIN_VISIBLE), pose, video(), smooth)
    with_det, found, padding = _run_pipeline(det, pose, video(), smooth)
    alone_all, alone_found = Summary(), Summary()
    cropper = Cropper(pose.info.input_size, pose.info.heatmap_size, padding=padding)
    for f, hit in zip(video().frames(), found):
        subsets = ((alone_all, [p for p in f.ground_truth.people if float(np.mean(p.visible)) >= DEMO_MIN_VISIBLE]),
                   (alone_found, [p for p, h in zip(f.ground_truth.people, hit) if h]))
        for summary, chosen in subsets:
            boxes = np.stack([p.box for p in chosen]).astype(np.float32) if chosen else np.zeros((0, 4), np.float32)
            poses = pose.estimate(cropper.crop(f.image, Detections(boxes, np.ones(len(boxes), np.float32))))
            _score_demo(summary, SimpleNamespace(people=chosen), poses)
    return PipelineVsModel(seed, with_det.frames_out, people, float(with_det.recall or 0.0), alone_all.pck_total,
                           alone_found.pck_total, float(alone_all.pck or 0.0), float(with_gt.pck or 0.0),
                           float(alone_found.pck or 0.0), float(with_det.pck or 0.0))


def _pooled(rows: list[PipelineVsModel], field: str, joints: str) -> float:
    total = sum(getattr(r, joints) for r in rows)
    return sum(getattr(r, field) * getattr(r, joints) for r in rows) / max(total, 1)


def _table(rows: list[PipelineVsModel]) -> str:
    lines = ["| seed | frames | detector recall | model alone, true boxes | pipeline, true boxes | "
             "model alone, true boxes, detected people | pipeline, detector | detector's box cost |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.seed} | {r.frames} | {r.recall:.3f} | {r.model_gt:.3f} | {r.pipeline_gt:.3f} | "
                     f"{r.model_found:.3f} | {r.pipeline_det:.3f} | {r.pipeline_det - r.model_found:+.3f} |")
    pg = [_pooled(rows, "model_gt", "joints_gt"), _pooled(rows, "pipeline_gt", "joints_gt"),
          _pooled(rows, "model_found", "joints_found"), _pooled(rows, "pipeline_det", "joints_found")]
    lines.append(f"| all | {sum(r.frames for r in rows)} | {np.mean([r.recall for r in rows]):.3f} | **{pg[0]:.3f}** | "
                 f"**{pg[1]:.3f}** | {pg[2]:.3f} | {pg[3]:.3f} | {pg[3] - pg[2]:+.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from realtime.models import BUNDLED

    ap = argparse.ArgumentParser(prog="python -m realtime.bench.evaluate_pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pose", default=str(BUNDLED["mca_tiny_synth"].path), help="pose ONNX (default: bundled)")
    ap.add_argument("--detector", default=str(BUNDLED["yolo_synth"].path), help="detector ONNX (default: bundled)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="demo video seeds")
    ap.add_argument("--frames", type=int, default=60, help="frames per video")
    ap.add_argument("--people", type=int, default=3, help="people per video")
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    ap.add_argument("--smooth", action="store_true", help="keep One Euro smoothing on (off by default: it lags)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must be WIDTHxHEIGHT, got {args.size!r}", file=sys.stderr)
        return 2
    for p in (args.pose, args.detector):
        if not Path(p).is_file():
            print(f"error: model file {p} not found", file=sys.stderr)
            return 2
    rows = []
    for s in args.seeds:
        rows.append(compare(args.pose, args.detector, s, args.frames, args.people, (w, h), args.smooth))
        log.info("seed %d done", s)
    print(f"PCK@0.2 (torso) over visible joints, {args.people} people, {w}x{h}, smoothing "
          f"{'on' if args.smooth else 'off'}")
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
