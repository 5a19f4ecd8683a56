"""Absolute accuracy floors for the bundled models on fixed held-out synthetic data.

The demo-accuracy test only compares the pipeline with the model alone; these fail when
a bundled model (or the crop/decode path it runs through) gets worse in absolute terms.

Data: held-out synthetic people (pose: ``mca.evaluate``'s test seed 2000, never trained on,
cropped from the true box by the realtime Cropper and decoded by the PoseEstimator;
detector: seed 777 scenes, as ``realtime.bench.evaluate_detector``).  Each floor is a
little under the value measured on this machine (deterministic: CPU ONNX Runtime).

Re-measure (e.g. after the bundled models are replaced) and update the constants below:

    python -m tests.realtime.test_model_floors

It prints the measured values and suggested floors (PCK and recall 0.02 under the
measurement, side-swap rate 0.02 over it).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from realtime.models import BUNDLED

# --- floors (measured 2026-12-02 with: python -m tests.realtime.test_model_floors) ----------------
# pose: PCK@0.2 (torso) over visible joints, at least; side-swap rate over visible left/right pairs, at most
POSE_PCK_FLOOR = {"mca_tiny_synth": 0.75, "mca_tiny_real": 0.78}  # measured 0.7730, 0.7985
POSE_SWAP_CEILING = {"mca_tiny_synth": 0.20, "mca_tiny_real": 0.20}  # measured 0.1805, 0.1826
# detector: recall (IoU >= 0.5, the pipeline's default confidence) of people >= 40 px with half their joints in view
# (the bundled SSDLite is a real-footage detector: it finds none of these drawn people, so its floor lives in
# tests/realtime/test_real_footage.py, on real photos)
DETECTOR_RECALL_FLOOR = {"yolo_synth": 0.76}  # measured 0.7818 (110 people)
MARGIN = 0.02

POSE_SEED, POSE_PEOPLE = 2000, 300
DET_SEED, DET_IMAGES, DET_MIN_HEIGHT = 777, 40, 40.0


def _have(name: str) -> bool:
    return BUNDLED[name].path.exists()


def side_swap_rate(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, flip_index: tuple[int, ...]) -> float:
    """Of the left/right joint pairs with both joints visible, the fraction whose prediction fits the
    mirrored labels better than the true ones (left called right and right called left)."""
    pairs = [(j, f) for j, f in enumerate(flip_index) if j < f]
    swapped = total = 0
    for a, b in pairs:
        both = vis[:, a] & vis[:, b]
        d = lambda i, j: np.linalg.norm(pred[both, i] - gt[both, j], axis=-1)  # noqa: E731
        swapped += int((d(a, b) + d(b, a) < d(a, a) + d(b, b)).sum())
        total += int(both.sum())
    return swapped / max(total, 1)


def measure_pose(name: str, people: int = POSE_PEOPLE, seed: int = POSE_SEED) -> dict[str, float]:
    """PCK@0.2 (torso) and side-swap rate of a bundled pose model on held-out synthetic people."""
    from mca.data.synthetic import SceneRenderer
    from mca.metrics import pck, torso_size
    from realtime.models import load_model
    from realtime.pose import Cropper, PoseEstimator
    from realtime.types import Detections

    est = PoseEstimator(load_model(BUNDLED[name].path, backend="ort"))
    info = est.info
    crop = Cropper(info.input_size, info.heatmap_size, info.crop_padding)
    r = SceneRenderer(info.joint_set, (384, 384), seed=seed, min_people=1, max_people=3, min_height=0.35 * 384,
                      max_height=1.1 * 384)
    preds, gts, vis = [], [], []
    i = 0
    while len(gts) < people:
        scene = r.render(i)
        i += 1
        chosen = [p for p in scene.people if p.visible.sum() >= 4][: people - len(gts)]
        if not chosen:
            continue
        boxes = np.stack([p.box for p in chosen]).astype(np.float32)
        poses = est.estimate(crop.crop(scene.image, Detections(boxes, np.ones(len(boxes), np.float32))))
        preds += list(poses.keypoints)
        gts += [p.joints for p in chosen]
        vis += [p.visible for p in chosen]
    pred, gt, v = np.stack(preds), np.stack(gts), np.stack(vis)
    return {"pck": pck(pred, gt, v, torso_size(gt, info.joint_set), 0.2).total,
            "swap": side_swap_rate(pred, gt, v, info.flip_index), "people": float(len(gt))}


def measure_detector(name: str, images: int = DET_IMAGES, seed: int = DET_SEED) -> dict[str, float]:
    """Recall of a bundled detector at the pipeline's default confidence on held-out synthetic frames."""
    from mca.data.synthetic import SceneRenderer
    from realtime.detectors import PersonDetector
    from realtime.models import load_model
    from realtime.tracking import iou_matrix

    det = PersonDetector(load_model(BUNDLED[name].path, backend="ort"))
    r = SceneRenderer("mpii16", (1280, 720), seed=seed, min_people=1, max_people=7, min_height=40, max_height=720)
    found = total = 0
    for i in range(images):
        s = r.render(i)
        gt = [p.box for p in s.people if p.box[3] - p.box[1] >= DET_MIN_HEIGHT and float(np.mean(p.visible)) >= 0.5]
        if not gt:
            continue
        d = det.detect(s.image)
        iou = iou_matrix(np.stack(gt), d.boxes)
        found += int((iou.max(1) >= 0.5).sum()) if iou.size else 0
        total += len(gt)
    return {"recall": found / max(total, 1), "people": float(total)}


@pytest.mark.parametrize("name", list(POSE_PCK_FLOOR))
def test_bundled_pose_model_accuracy_floor(name: str) -> None:
    if not _have(name):
        pytest.skip(f"bundled model {BUNDLED[name].filename} is not in this checkout")
    m = measure_pose(name)
    assert m["people"] == POSE_PEOPLE
    assert m["pck"] >= POSE_PCK_FLOOR[name], m
    assert m["swap"] <= POSE_SWAP_CEILING[name], m


@pytest.mark.parametrize("name", list(DETECTOR_RECALL_FLOOR))
def test_bundled_detector_recall_floor(name: str) -> None:
    if not _have(name):
        pytest.skip(f"bundled model {BUNDLED[name].filename} is not in this checkout")
    m = measure_detector(name)
    assert m["people"] >= 100, m
    assert m["recall"] >= DETECTOR_RECALL_FLOOR[name], m


def test_side_swap_rate_counts_mirrored_pairs() -> None:
    """The metric itself: a prediction with every left/right pair exchanged scores 1, the truth 0."""
    flip = (5, 4, 3, 2, 1, 0, 6)
    gt = np.random.default_rng(0).uniform(0, 100, (4, 7, 2))
    vis = np.ones((4, 7), bool)
    vis[0, 0] = False  # that pair (0, 5) of person 0 is not counted
    assert side_swap_rate(gt, gt, vis, flip) == 0.0
    assert side_swap_rate(gt[:, list(flip)], gt, vis, flip) == 1.0
    half = gt.copy()
    half[:, [1, 4]] = gt[:, [4, 1]]  # one of three pairs exchanged
    assert side_swap_rate(half, gt, np.ones((4, 7), bool), flip) == pytest.approx(1 / 3)


def main() -> int:
    """Measure every bundled model and print the values and suggested floors."""
    for name in POSE_PCK_FLOOR:
        if _have(name):
            m = measure_pose(name)
            print(f"{name}: PCK@0.2 {m['pck']:.4f} (floor {m['pck'] - MARGIN:.2f}), side-swap rate {m['swap']:.4f} "
                  f"(ceiling {m['swap'] + MARGIN:.2f}), {m['people']:.0f} people")
    for name in DETECTOR_RECALL_FLOOR:
        if _have(name):
            m = measure_detector(name)
            print(f"{name}: recall {m['recall']:.4f} (floor {m['recall'] - MARGIN:.2f}), {m['people']:.0f} people")
    return 0


if __name__ == "__main__":
    sys.exit(main())
