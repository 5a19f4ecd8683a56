"""INT8 on this CPU: is it exact, and does it pay?  The numbers behind :data:`engines.cpu.AVX2_INT8_DEFAULT`.

Runs one pose model four ways on the same crops — FP32, the Q/DQ file as it is (float
convolutions between Q/DQ pairs: the arithmetic the file means), and ONNX Runtime's fused
integer kernels with 8-bit and with 7-bit weights (:func:`engines.int8.prepare_for_cpu`) —
and prints a markdown table: the keypoint change against FP32 (crop pixels, 128-px crops:
heatmap argmax with quarter-pixel refinement), the heatmap error, and the latency per
batch (median of alternating timed runs, so a busy neighbour slows every variant alike)::

    python -m calibration.build synthetic:200 VIDEO --pose POSE.onnx -o calib.npz
    python -m calibration.quantize POSE.onnx calib.npz -o POSE.int8.onnx
    python scripts/int8_cpu_check.py POSE.onnx POSE.int8.onnx calib.npz --threads 1

The crops come from the calibration file's ``crops`` (the last ``--crops`` of them; use a
held-out set where there is one).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _keypoints(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from mca.heatmaps import decode_heatmaps

    return decode_heatmaps(heat, refine="quarter")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("fp32", type=Path)
    p.add_argument("int8", type=Path)
    p.add_argument("crops", type=Path, help=".npz with a 'crops' array (N, H, W, 3) uint8 (with --detector: its "
                   "'detector_inputs', or a video whose every 10th frame is used)")
    p.add_argument("--crops", dest="n", type=int, default=128, help="crops to compare (default 128)")
    p.add_argument("--batch", type=int, default=4, help="people per timed batch (default 4)")
    p.add_argument("--reps", type=int, default=30, help="timed rounds per variant (default 30)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--confident", type=float, default=0.3,
                   help="joints whose FP32 heatmap peak is at least this count as confident (default 0.3)")
    p.add_argument("--detector", action="store_true",
                   help="the models are the SSD person detector: time one frame of the set's 'detector_inputs' and "
                        "compare the people found (score >= 0.35, IoU >= 0.5 to FP32's)")
    a = p.parse_args(argv)

    from engines.cpu import cpu_features, int8_plan
    from engines.ort import OrtBackend

    if a.detector:
        return _detector(a)

    crops = np.load(a.crops)["crops"][-a.n:]
    variants = {
        "FP32": OrtBackend(a.fp32, threads=a.threads),
        "INT8 Q/DQ as written (float convs)": OrtBackend(a.int8, threads=a.threads, uint8_activations=False),
        "INT8 fused, 8-bit weights": OrtBackend(a.int8, threads=a.threads, weight_bits=8),
        "INT8 fused, 7-bit weights": OrtBackend(a.int8, threads=a.threads, weight_bits=7),
    }
    heat = {k: np.concatenate([b.run(crops[i:i + 16])[0] for i in range(0, len(crops), 16)])
            for k, b in variants.items()}
    stride = crops.shape[1] / heat["FP32"].shape[-1]
    (ref_kp, ref_conf), ref_h = _keypoints(heat["FP32"]), heat["FP32"]
    sure = ref_conf >= a.confident
    times: dict[str, list[float]] = {k: [] for k in variants}
    x = crops[:a.batch]
    for b in variants.values():
        for _ in range(3):
            b.run(x)
    for _ in range(a.reps):
        for k, b in variants.items():
            t = time.perf_counter()
            b.run(x)
            times[k].append(time.perf_counter() - t)
    f = cpu_features()
    plan = int8_plan(f)
    print(f"CPU: {f.model or platform.processor() or f.arch} ({f.arch}), integer kernel: {f.kernel}; "
          f"plan: {plan.describe()}")
    print(f"{len(crops)} crops of {crops.shape[1]} px from {a.crops.name}; batch {a.batch}, {a.threads} thread(s), "
          f"median of {a.reps} alternating runs\n")
    print(f"| variant | keypoint change vs FP32, crop px: mean / p99 / max | > 1 px | confident joints "
          f"({100 * sure.mean():.0f} %): mean / max px | heatmap max abs err (of FP32 peak) | ms per batch "
          f"| speed vs FP32 |")
    print("|---|---|---|---|---|---|---|")
    t32 = statistics.median(times["FP32"])
    for k in variants:
        d = np.linalg.norm(_keypoints(heat[k])[0] - ref_kp, axis=-1) * stride
        err = np.abs(heat[k] - ref_h).max() / max(np.abs(ref_h).max(), 1e-9)
        t = statistics.median(times[k])
        # a random-weight model (speed only) has no confident joints: say so instead of failing on an empty set
        on_sure = f"{d[sure].mean():.3f} / {d[sure].max():.2f}" if sure.any() else "- (none confident)"
        print(f"| {k} | {d.mean():.3f} / {np.percentile(d, 99):.2f} / {d.max():.2f} | {100 * (d > 1).mean():.1f} % "
              f"| {on_sure} | {100 * err:.1f} % | {1000 * t:.1f} | x{t32 / t:.2f} |")
    return 0


def _detector(a: argparse.Namespace) -> int:
    """SSD (uint8 NHWC in, boxes and scores out): latency per frame and the people found, against FP32."""
    from engines.cpu import cpu_features, int8_plan
    from engines.ort import OrtBackend
    from realtime.bench.detect_every import _iou

    if a.crops.suffix.lower() in (".avi", ".mp4", ".mkv", ".mov"):  # real frames, every 10th, as the SSD takes them
        import cv2

        from realtime.detectors import DETECTOR_FAMILIES

        cap, frames = cv2.VideoCapture(str(a.crops)), []
        while len(frames) < a.n:
            ok, img = cap.read()
            if not ok:
                break
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) % 10 == 1:
                frames.append(DETECTOR_FAMILIES["ssd"].pre(img, 300)[0][0])
        x = np.stack(frames)
    else:
        x = np.load(a.crops)["detector_inputs"][-a.n:]
    variants = {"FP32": OrtBackend(a.fp32, threads=a.threads),
                "INT8 fused, 8-bit weights": OrtBackend(a.int8, threads=a.threads, weight_bits=8),
                "INT8 fused, 7-bit weights": OrtBackend(a.int8, threads=a.threads, weight_bits=7)}

    def people(b: OrtBackend, img: np.ndarray) -> np.ndarray:
        out = dict(zip([o.name for o in b.outputs], b.run(img[None])))
        boxes = next(v for k, v in out.items() if "boxes" in k)[0]
        scores = next(v for k, v in out.items() if "scores" in k)[0]
        return boxes[scores >= 0.35]

    found = {k: [people(b, img) for img in x] for k, b in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(a.reps):
        for k, b in variants.items():
            t = time.perf_counter()
            b.run(x[:1])
            times[k].append(time.perf_counter() - t)
    f = cpu_features()
    print(f"CPU: {f.model or f.arch}, integer kernel: {f.kernel}; plan: {int8_plan(f).describe()}")
    print(f"{len(x)} detector frames from {a.crops.name}; {a.threads} thread(s), median of {a.reps} alternating runs\n")
    print("| variant | people per frame | FP32 people found again (IoU >= 0.5) | ms per frame | speed vs FP32 |")
    print("|---|---|---|---|---|")
    t32 = statistics.median(times["FP32"])
    for k in variants:
        again = total = 0
        for ref, got in zip(found["FP32"], found[k]):
            total += len(ref)
            if len(ref) and len(got):
                again += int((_iou(ref.astype(np.float64), got.astype(np.float64)).max(axis=1) >= 0.5).sum())
        t = statistics.median(times[k])
        print(f"| {k} | {np.mean([len(v) for v in found[k]]):.2f} | {100 * again / max(1, total):.1f} % "
              f"| {1000 * t:.1f} | x{t32 / t:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
