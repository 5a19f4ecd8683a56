"""Crops and decoding checked against the truth, not against themselves.

A stand-in pose model that *finds* each joint in the crop it is given (a marker whose
colour names the joint) and answers with a heatmap peaked there, under the network's
stated crop -> heatmap convention (heatmap pixel ``i`` covers input pixels ``4i .. 4i+3``).
The pipeline's crop transform and decode, not the stand-in, must then carry every
joint back to where it was drawn in the frame.  The demo-accuracy test compares the
pipeline with the model alone through the same cropper, so it cannot see a wrong crop
or a wrong decode; this test can.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mca.data.synthetic import Person, Scene
from mca.joints import get_joint_set
from realtime.detectors import GroundTruthDetector
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.pose import PoseEstimator
from realtime.types import Frame

INPUT, HEAT = 128, 32
STRIDE = INPUT // HEAT
JS = get_joint_set("mpii16")
K = JS.num_joints


def _code(k: int) -> int:
    """Joint ``k``'s marker: blue / red = code / 255 (a ratio that bilinear warping keeps)."""
    return 20 + 12 * k


class MarkerPose:
    """A pose 'backend' that locates each joint's marker in the crop (weighted centroid) and puts a
    Gaussian heatmap peak at the matching heatmap position."""

    def __init__(self) -> None:
        self.path = "marker-pose"
        self.outputs = [SimpleNamespace(name="heatmaps", shape=["batch", K, HEAT, HEAT])]
        self.inputs = [SimpleNamespace(name="crops", shape=["batch", INPUT, INPUT, 3])]
        self.metadata = {
            "mca.kind": "pose", "mca.config": "marker", "mca.joint_set": JS.name,
            "mca.joint_names": json.dumps(list(JS.names)), "mca.flip_index": json.dumps(list(JS.flip_index)),
            "mca.skeleton": json.dumps([list(e) for e in JS.skeleton]), "mca.input_size": str(INPUT),
            "mca.heatmap_size": str(HEAT), "mca.input_layout": "NHWC", "mca.input_dtype": "uint8",
            "mca.input_channels": "BGR"}
        self.found: list[np.ndarray] = []

    def run(self, crops: np.ndarray) -> list[np.ndarray]:
        n = len(crops)
        heat = np.zeros((n, K, HEAT, HEAT), np.float32)
        yy, xx = np.mgrid[0:HEAT, 0:HEAT].astype(np.float64)
        for i, crop in enumerate(crops.astype(np.float64)):
            b, r = crop[..., 0], crop[..., 2]
            on = r > 40
            code = np.where(on, b / np.maximum(r, 1) * 255.0, -100)
            for k in range(K):
                mask = on & (np.abs(code - _code(k)) < 4)
                assert mask.sum() >= 3, f"marker of joint {k} not in crop {i}"
                w = r * mask
                cy, cx = (np.indices(w.shape) * w).reshape(2, -1).sum(1) / w.sum()
                # input pixel x lies at heatmap (x + 0.5) / STRIDE - 0.5 (pixel centres kept)
                hx, hy = (cx + 0.5) / STRIDE - 0.5, (cy + 0.5) / STRIDE - 0.5
                heat[i, k] = np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * 1.5 ** 2))
        return [heat]


def _scene(seed: int, size=(960, 540), people: int = 3) -> Scene:
    """People whose joints are markers on black, far enough apart that no crop holds another's joints."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    out = []
    for p in range(people):
        ph = rng.uniform(90, 200)
        cx, top = (p + 0.5) * w / people + rng.uniform(-30, 30), rng.uniform(20, h - ph - 20)
        joints = np.zeros((K, 2))
        for k in range(K):  # rejection-sampled: markers at least 14 px apart
            while True:
                q = np.array([cx + rng.uniform(-0.25, 0.25) * ph, top + rng.uniform(0, ph)])
                if k == 0 or np.linalg.norm(joints[:k] - q, axis=1).min() >= 14:
                    joints[k] = q
                    break
        for k, (x, y) in enumerate(joints):  # a Gaussian marker (sigma 2 px), drawn in a 17x17 window
            x0, y0 = int(x) - 8, int(y) - 8
            yy, xx = np.mgrid[y0:y0 + 17, x0:x0 + 17]
            g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0 ** 2))
            g[g < 0.02] = 0
            win = img[y0:y0 + 17, x0:x0 + 17]
            win[..., 2] = np.maximum(win[..., 2], np.round(255 * g).astype(np.uint8))
            win[..., 0] = np.where(g > 0, np.round(_code(k) * g), win[..., 0]).astype(np.uint8)
        box = np.concatenate([joints.min(0) - 8, joints.max(0) + 8]).astype(np.float32)
        out.append(Person(joints.astype(np.float32), np.ones(K, bool), box, p, float(ph)))
    return Scene(img, out, seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pipeline_puts_every_joint_back_where_it_was_drawn(seed: int) -> None:
    scene = _scene(seed)
    pose = PoseEstimator(MarkerPose())
    pipe = Pipeline(GroundTruthDetector(0.5), pose, PipelineConfig(smooth=False))
    poses = pipe.process(Frame(0, scene.image, ground_truth=scene), None)
    assert len(poses) == len(scene.people)
    errs = []
    for p in scene.people:  # match by box: the pipeline orders people by size
        (i,) = [i for i, b in enumerate(poses.boxes) if np.allclose(b, p.box)]
        # one heatmap pixel in frame pixels for this person
        px = np.linalg.norm(poses.transforms[i].heatmap_to_frame[:, 0])
        errs.append((poses.keypoints[i] - p.joints) / px)
    e = np.concatenate(errs)  # (people * K, 2) in heatmap pixels
    # the quarter-pixel decode is within ~0.3 heatmap px; a crop off by half an input pixel or a
    # decode off by one heatmap pixel shows as a bias
    assert np.abs(e).max() < 0.35, np.abs(e).max()
    assert np.abs(e.mean(0)).max() < 0.06, e.mean(0)
    assert np.linalg.norm(e, axis=1).mean() < 0.25


def test_the_stand_in_really_reads_the_crop() -> None:
    """Sanity of the stand-in itself: a crop with the markers moved moves its answer."""
    scene = _scene(0)
    pose = PoseEstimator(MarkerPose())
    pipe = Pipeline(GroundTruthDetector(0.5), pose, PipelineConfig(smooth=False))
    a = pipe.process(Frame(0, scene.image, ground_truth=scene), None)
    shifted = Scene(cv2.warpAffine(scene.image, np.float32([[1, 0, 6], [0, 1, 0]]), scene.image.shape[1::-1]),
                    scene.people, 0)
    b = Pipeline(GroundTruthDetector(0.5), PoseEstimator(MarkerPose()), PipelineConfig(smooth=False)).process(
        Frame(0, shifted.image, ground_truth=shifted), None)
    d = b.keypoints - a.keypoints  # quarter-pixel steps per joint; 6 px on average
    assert abs(float(d[..., 0].mean()) - 6) < 1.0 and abs(float(d[..., 1].mean())) < 1.0, d.mean((0, 1))
