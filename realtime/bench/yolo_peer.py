"""YOLO-pose as a peer of ``python -m realtime.bench``: through ONNX Runtime here, or Ultralytics' own predict."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from realtime.bench.errors import BenchError
from realtime.types import Frame

log = logging.getLogger(__name__)

__all__ = ["yolo_pose_peer_ort", "yolo_pose_peer_ultralytics"]


def yolo_pose_peer_ort(onnx: Path, frames: list[Frame], out_dir: Path, threads: int) -> dict[str, float]:
    """YOLO-pose through ONNX Runtime with our letterbox/decode/NMS, decode -> infer -> draw -> encode in one loop."""
    import cv2
    import onnxruntime as ort

    from realtime.detectors import letterbox, nms
    from realtime.sinks import Mp4Writer

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    size = int(sess.get_inputs()[0].shape[2])
    infer_ms: list[float] = []

    def one(img: np.ndarray) -> np.ndarray:
        lb, scale, (px, py) = letterbox(img, size)
        x = lb[None, :, :, ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        t0 = time.perf_counter()
        out = sess.run(None, {name: x})[0][0]  # (56, anchors): box 4, person 1, 17 x (x, y, conf)
        infer_ms.append(1000 * (time.perf_counter() - t0))
        conf = out[4]
        keep = conf >= 0.25
        rows = out[:, keep].T
        if not len(rows):
            return np.zeros((0, 17, 3), np.float32)
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        k = nms(boxes, rows[:, 4], 0.45)[:100]
        kp = rows[k, 5:].reshape(-1, 17, 3).copy()
        kp[..., 0] = (kp[..., 0] - px) / scale
        kp[..., 1] = (kp[..., 1] - py) / scale
        return kp

    for f in frames[:2]:
        one(f.image)
    infer_ms.clear()
    t0 = time.perf_counter()
    with Mp4Writer(out_dir / "peer_yolo_pose.mp4", 25.0) as w:
        for f in frames:
            img = f.image.copy()
            for person in one(f.image):
                for x, y, c in person:
                    if c > 0.5:
                        cv2.circle(img, (int(x), int(y)), 3, (0, 255, 0), -1)
            w.write(img)
    loop = time.perf_counter() - t0
    return {"fps": len(frames) / loop, "infer_ms": statistics.median(infer_ms)}


_ULTRALYTICS_SCRIPT = r"""
import json, sys, time, os
os.environ.setdefault("YOLO_OFFLINE", "1")
from ultralytics import YOLO
video, weights, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
import torch; torch.set_num_threads(threads)
model = YOLO(weights)
n, speed = 0, {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
t0 = time.perf_counter()
for r in model.predict(video, stream=True, imgsz=640, device="cpu", verbose=False):
    n += 1
    for k in speed: speed[k] += r.speed.get(k, 0.0)
dt = time.perf_counter() - t0
print(json.dumps({"frames": n, "fps": n / dt, **{k + "_ms": v / max(n, 1) for k, v in speed.items()}}))
"""


def yolo_pose_peer_ultralytics(python: str, video: Path, weights: str, threads: int) -> dict[str, float]:
    """YOLO-pose through Ultralytics' own predict, in another interpreter (ultralytics needs torchvision)."""
    r = subprocess.run([python, "-c", _ULTRALYTICS_SCRIPT, str(video), weights, str(threads)], capture_output=True,
                       text=True, timeout=1800, env={**os.environ, "YOLO_OFFLINE": "1"})
    if r.returncode != 0:
        raise BenchError(f"ultralytics peer failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
