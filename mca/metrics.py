"""Pose accuracy metrics (numpy only): PCK with torso or head normalisation.

- ``pck`` is the fraction of labelled joints whose prediction is within ``thr * norm``
  of the ground truth, per joint and overall (joints not labelled visible are excluded).
- Torso size (PCK@0.2, LSP convention): the distance from the right shoulder to the
  left hip.  Head size (PCKh@0.5): MPII's official normalisation is 0.6 x the diagonal of
  the annotated head box; where no head box exists (synthetic data) we use the
  head-top to upper-neck distance, which is the segment that box is drawn around.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mca.joints import get_joint_set

__all__ = ["PCKResult", "pck", "torso_size", "head_size", "mpii_head_size_from_box", "COCO_SIGMAS", "oks",
           "coco_keypoint_ap"]

# COCO keypoints' per-joint standard deviations (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles),
# as the COCO keypoint evaluation defines them.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0

_TORSO = {"mpii16": ("r_shoulder", "l_hip"), "coco17": ("r_shoulder", "l_hip")}


@dataclass(frozen=True)
class PCKResult:
    per_joint: np.ndarray  # (K,) fraction correct (nan where a joint never appears)
    total: float
    count: int

    def as_dict(self, names: tuple[str, ...]) -> dict[str, float]:
        d = {n: float(v) for n, v in zip(names, self.per_joint)}
        d["total"] = self.total
        return d


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, norm: np.ndarray, thr: float) -> PCKResult:
    """pred, gt (N, K, 2); visible (N, K); norm (N,) per-person reference length."""
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    vis = np.asarray(visible, bool) & (np.asarray(norm, float)[:, None] > 0)
    d = np.linalg.norm(pred - gt, axis=-1) / np.maximum(np.asarray(norm, float)[:, None], 1e-9)
    hit = (d <= thr) & vis
    cnt = vis.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(cnt > 0, hit.sum(0) / np.maximum(cnt, 1), np.nan)
    total = float(hit.sum() / vis.sum()) if vis.sum() else float("nan")
    return PCKResult(per, total, int(vis.sum()))


def torso_size(gt: np.ndarray, joint_set: str) -> np.ndarray:
    """Right shoulder to left hip distance per person (N,)."""
    js = get_joint_set(joint_set)
    a, b = (js.index(n) for n in _TORSO[js.name])
    return np.linalg.norm(np.asarray(gt, float)[:, a] - np.asarray(gt, float)[:, b], axis=-1)


def head_size(gt: np.ndarray, joint_set: str = "mpii16") -> np.ndarray:
    """Head-top to upper-neck distance per person (MPII-16 only)."""
    js = get_joint_set(joint_set)
    if "head_top" not in js.names:
        raise ValueError(f"{joint_set} has no head_top joint: PCKh needs MPII-16 labels")
    return np.linalg.norm(np.asarray(gt, float)[:, js.index("head_top")] - np.asarray(gt, float)[:, js.index("upper_neck")], axis=-1)


def mpii_head_size_from_box(head_boxes: np.ndarray, sc_bias: float = 0.6) -> np.ndarray:
    """MPII's official head size: SC_BIAS (0.6) x the diagonal of the head box (x1, y1, x2, y2)."""
    b = np.asarray(head_boxes, float)
    return sc_bias * np.linalg.norm(b[:, 2:4] - b[:, 0:2], axis=-1)


def oks(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, area: np.ndarray | float,
        sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """Object keypoint similarity per person: mean over labelled joints of exp(-d^2 / (2 s^2 (2 sigma)^2)), s^2 = area.

    pred, gt (N, K, 2); visible (N, K); area (N,) the object's segment (or box) area in pixels^2.
    A person without labelled joints gets nan.
    """
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    vis = np.asarray(visible, bool)
    area = np.broadcast_to(np.asarray(area, float), (len(gt),))
    k2 = (2 * np.asarray(sigmas, float)) ** 2
    d2 = ((pred - gt) ** 2).sum(-1)
    e = d2 / (2 * k2[None, :] * (area[:, None] + np.spacing(1)))
    sim = np.exp(-e) * vis
    n = vis.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sim.sum(1) / np.maximum(n, 1), np.nan)


def coco_keypoint_ap(gt_json: dict, results: list[dict]) -> dict[str, float]:
    """COCO keypoint AP/AR (pycocotools' COCOeval) of ``results`` against a COCO ground-truth dict."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        if not results:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"AP": float(s[0]), "AP50": float(s[1]), "AP75": float(s[2]), "AR": float(s[5])}
