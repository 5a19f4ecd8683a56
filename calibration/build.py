"""``python -m calibration.build``: a calibration set from images, videos, folders or synthetic scenes.

Frames are sampled for diversity, not in a run: each video contributes frames at an
even stride over its length, and a frame is skipped when its 32x32 grey thumbnail
differs from the last kept one by less than ``--min-change`` grey levels (so 500
near-identical frames of a static camera become a handful).  The person detector
runs on every kept frame and the crops are made by the realtime pipeline's own
:class:`~realtime.pose.Cropper`, so the set holds exactly what the pose model sees.
The detector's own pre-processed inputs are stored too (``detector_inputs``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from calibration.dataset import CalibrationError, CalibrationSet

log = logging.getLogger(__name__)

__all__ = ["sample_diverse", "build_calibration_set", "main"]

DEFAULT_CROPS = 512  # ORT's min/max and entropy statistics were stable from a few hundred crops (README)


def _thumb(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    return cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def sample_diverse(frames: Iterator[np.ndarray], stride: int = 1, min_change: float = 4.0,
                   limit: int | None = None) -> Iterator[np.ndarray]:
    """Every ``stride``-th frame, skipping those too similar to the last one kept."""
    last = None
    kept = 0
    for i, f in enumerate(frames):
        if i % max(1, stride):
            continue
        t = _thumb(f)
        if last is not None and float(np.abs(t - last).mean()) < min_change:
            continue
        last = t
        yield f
        kept += 1
        if limit and kept >= limit:
            return


def _video_frames(path: Path) -> tuple[Iterator[np.ndarray], int]:
    from realtime.sources import SourceError, open_source

    try:
        src = open_source(str(path))
    except SourceError as e:
        raise CalibrationError(str(e)) from None
    return (f.image for f in src.frames()), int(src.total or 0)


def build_calibration_set(sources: list[str], pose_onnx: Path, detector_onnx: Path | None, num_crops: int,
                          frames_per_source: int, min_change: float, seed: int,
                          detector_frames: int = 64) -> CalibrationSet:
    """Run detection + cropping over diverse frames of every source."""
    import engines
    from realtime.detectors import DETECTOR_FAMILIES, PersonDetector
    from realtime.pose import Cropper, PoseModelInfo
    from realtime.types import Detections

    info = PoseModelInfo(engines.load(pose_onnx, backend="ort"))
    cropper = Cropper(info.input_size, info.heatmap_size)
    detector = PersonDetector(engines.load(detector_onnx, backend="ort")) if detector_onnx else None
    crops: list[np.ndarray] = []
    det_inputs: list[np.ndarray] = []
    used: list[dict] = []
    rng = np.random.default_rng(seed)
    for spec in sources:
        if spec.startswith("synthetic"):
            from mca.data.synthetic import SceneRenderer

            n = int(spec.split(":", 1)[1]) if ":" in spec else 200
            r = SceneRenderer(info.joint_set, (640, 480), seed=seed, min_people=1, max_people=4, min_height=80)
            scenes = [r.render(i) for i in range(n)]
            frames: Iterator[np.ndarray] = (s.image for s in scenes)
            gt_boxes = [np.stack([p.box for p in s.people]) if s.people else np.zeros((0, 4)) for s in scenes]
            total = n
        else:
            p = Path(spec)
            if not p.exists():
                raise CalibrationError(f"no such file or directory: {p}")
            frames, total = _video_frames(p)
            gt_boxes = None
        stride = max(1, total // frames_per_source) if total else 1
        kept = 0
        for k, img in enumerate(sample_diverse(frames, stride if gt_boxes is None else 1, min_change,
                                               frames_per_source)):
            if detector is not None:
                det = detector.detect(img)
                if len(det_inputs) < detector_frames:
                    x, _ = DETECTOR_FAMILIES[detector.family][0](img, detector.input_size)
                    det_inputs.append(x[0])
            elif gt_boxes is not None:
                b = gt_boxes[k]
                det = Detections(b, np.ones(len(b), np.float32))
            else:
                raise CalibrationError("real footage needs --detector to find the people to crop")
            if len(det):
                crops.append(cropper.crop(img, det).images)
            kept += 1
        used.append({"source": spec, "frames_kept": kept, "stride": stride})
        log.info("%s: %d frames kept", spec, kept)
    if not crops:
        raise CalibrationError("no person was found in the given sources; nothing to calibrate with")
    all_crops = np.concatenate(crops)
    if len(all_crops) > num_crops:  # a seeded subset, spread over all sources
        all_crops = all_crops[np.sort(rng.choice(len(all_crops), num_crops, replace=False))]
    det_arr = None
    if det_inputs:
        det_arr = np.stack(det_inputs)
        if det_arr.dtype != np.uint8:  # YOLO inputs are uint8 / 255: store them exactly as uint8
            det_arr = np.round(det_arr * 255).astype(np.uint8)
    manifest = {"sources": used, "seed": seed, "pose_model": str(pose_onnx), "detector": str(detector_onnx or "gt"),
                "rule": f"even stride, skip frames within {min_change} grey levels of the last kept (32x32 thumbnail)",
                "detector_inputs_scale": (1 / 255 if det_inputs and detector and detector.family == "yolo" else 1)}
    return CalibrationSet(all_crops, det_arr, manifest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m calibration.build", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sources", nargs="+", help="videos, image folders, or 'synthetic[:N]' (N rendered scenes, "
                                               "ground-truth boxes unless --detector is given)")
    p.add_argument("--pose", type=Path, required=True, help="pose ONNX (its input size decides the crops)")
    p.add_argument("--detector", type=Path, help="person detector ONNX (required for real footage)")
    p.add_argument("--num", type=int, default=DEFAULT_CROPS, help="crops to keep")
    p.add_argument("--frames-per-source", type=int, default=200, help="at most this many frames from each source")
    p.add_argument("--min-change", type=float, default=4.0, help="skip frames closer than this (grey levels)")
    p.add_argument("--seed", type=int, default=500, help="seed (synthetic scenes and the subset choice)")
    p.add_argument("-o", "--output", type=Path, required=True, help="calibration .npz to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from engines.base import ModelError

    try:
        cs = build_calibration_set(args.sources, args.pose, args.detector, args.num, args.frames_per_source,
                                   args.min_change, args.seed)
    except (CalibrationError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cs.save(args.output)
    print(f"wrote {args.output}: {len(cs.crops)} crops of {cs.crops.shape[1]}px"
          f"{'' if cs.detector_inputs is None else f', {len(cs.detector_inputs)} detector inputs'}")
    print(json.dumps(cs.manifest["sources"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
