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
           "coco_keypoint_ap", "side_pair_names", "side_swap", "lr_heatmap_correlation", "label_heatmaps", "side_summary",
           "draw_threshold_sweep"]

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


# ----------------------------------------------------------------------------- left/right
def side_pair_names(joint_set: str) -> dict[str, tuple[int, int]]:
    """``{"ankle": (left index, right index), ...}`` from the joint set's flip pairs."""
    js = get_joint_set(joint_set)
    out: dict[str, tuple[int, int]] = {}
    for a, b in js.flip_pairs:
        na, nb = js.names[a], js.names[b]
        left, right = (a, b) if na.startswith("l_") else (b, a)
        out[js.names[left][2:] if js.names[left].startswith("l_") else f"{na}/{nb}"] = (left, right)
    return out


def side_swap(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, pairs: dict[str, tuple[int, int]],
              norm: np.ndarray | None = None, min_sep: float = 0.0) -> dict[str, dict[str, float]]:
    """How often each left/right pair comes out with its sides swapped, or collapsed onto one joint.

    A pair (both joints labelled) is *swapped* when the predictions are closer to the swapped labels than to
    the right ones: |pl - gr| + |pr - gl| < |pl - gl| + |pr - gr|.  It is *collapsed* when both predictions
    are nearest the same labelled joint (what identical left and right heatmaps give: the sum rule then calls
    it neither right nor swapped).  Pairs whose labelled joints are closer than ``min_sep`` x ``norm`` (or
    ``min_sep`` pixels without ``norm``) are left out: there, sides cannot be told apart by position.
    Returns per pair name ``{"swap": rate, "collapse": rate, "pairs": count}`` (rates nan without pairs).
    """
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    vis = np.asarray(visible, bool)
    scale = np.ones(len(gt)) if norm is None else np.asarray(norm, float)
    out: dict[str, dict[str, float]] = {}
    for name, (li, ri) in pairs.items():
        pl, pr, gl, gr = pred[:, li], pred[:, ri], gt[:, li], gt[:, ri]
        sep = np.linalg.norm(gl - gr, axis=-1)
        ok = vis[:, li] & vis[:, ri] & (sep >= min_sep * scale) & (sep > 0)
        d = lambda a, b: np.linalg.norm(a - b, axis=-1)  # noqa: E731
        swapped = d(pl, gr) + d(pr, gl) < d(pl, gl) + d(pr, gr)
        l_to_l, r_to_r = d(pl, gl) <= d(pl, gr), d(pr, gr) <= d(pr, gl)
        collapsed = l_to_l != r_to_r  # one of them is nearer the other's label: both sit on one joint
        n = int(ok.sum())
        out[name] = {"swap": float(swapped[ok].mean()) if n else float("nan"),
                     "collapse": float(collapsed[ok].mean()) if n else float("nan"), "pairs": float(n)}
    return out


def lr_heatmap_correlation(heatmaps: np.ndarray, pairs: dict[str, tuple[int, int]],
                           mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean (over crops) Pearson correlation between each pair's left and right heatmaps.

    ~1 means the model draws the same map for both sides (it has not learnt which is which); a model that
    tells sides apart gives about what the label maps give (low, unless the two joints touch).  ``mask``
    (N, K): only crops where both joints of a pair are set count.  Crops where either map is flat are skipped.
    """
    hm = np.asarray(heatmaps, np.float64)
    n = hm.shape[0]
    flat = hm.reshape(n, hm.shape[1], -1)
    out: dict[str, float] = {}
    for name, (li, ri) in pairs.items():
        a, b = flat[:, li], flat[:, ri]
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
        keep = den > 1e-12
        if mask is not None:
            m = np.asarray(mask, bool)
            keep &= m[:, li] & m[:, ri]
        r = (a * b).sum(1)[keep] / den[keep]
        out[name] = float(r.mean()) if len(r) else float("nan")
    return out


def label_heatmaps(gt: np.ndarray, visible: np.ndarray, frame_to_input: np.ndarray, input_size: int,
                   heatmap_size: int) -> np.ndarray:
    """The target maps (N, K, h, h) of frame-pixel labels on crops ``frame_to_input`` (N, 2, 3)."""
    from mca import heatmaps as H

    to_hm = H.scale_matrix((input_size, input_size), (heatmap_size, heatmap_size))
    return np.stack([H.encode_heatmaps(H.apply_affine(H.compose_affine(to_hm, m), g), v, heatmap_size)
                     for g, v, m in zip(np.asarray(gt, float), np.asarray(visible, bool), np.asarray(frame_to_input))])


def side_summary(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, heatmaps: np.ndarray | None,
                 joint_set: str, norm: np.ndarray, thr: float = 0.2, label_heatmaps: np.ndarray | None = None,
                 min_sep: float = 0.1) -> dict[str, float]:
    """Flat report of what an overall PCK hides: per-joint PCK, side swaps and collapses, L/R heatmap correlation.

    Keys: ``pck@thr <joint>``, ``side-swap <pair>`` / ``side-collapse <pair>`` (and ``all`` pairs together),
    ``lr-corr <pair>`` of the predicted maps and, given ``label_heatmaps``, ``lr-corr labels <pair>`` (the
    floor: what correct maps give)."""
    js = get_joint_set(joint_set)
    pairs = side_pair_names(joint_set)
    res = pck(pred, gt, visible, norm, thr)
    out: dict[str, float] = {f"pck@{thr} {n}": float(v) for n, v in zip(js.names, res.per_joint)}
    sw = side_swap(pred, gt, visible, pairs, norm, min_sep)
    tot = sum(v["pairs"] for v in sw.values())
    for key in ("swap", "collapse"):
        for name, v in sw.items():
            out[f"side-{key} {name}"] = v[key]
        out[f"side-{key} all"] = (float(sum(np.nan_to_num(v[key]) * v["pairs"] for v in sw.values()) / tot)
                                  if tot else float("nan"))
    mask = np.asarray(visible, bool)
    if heatmaps is not None:
        out |= {f"lr-corr {k}": v for k, v in lr_heatmap_correlation(heatmaps, pairs, mask).items()}
    if label_heatmaps is not None:
        out |= {f"lr-corr labels {k}": v for k, v in lr_heatmap_correlation(label_heatmaps, pairs, mask).items()}
    return out


def draw_threshold_sweep(conf: np.ndarray, correct: np.ndarray, labelled: np.ndarray,
                         thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """What drawing only joints with confidence >= t does, for each ``t`` (to choose ``--kpt-thr`` from data).

    A joint *should* be drawn when the reference labels it and the prediction is right (``correct``); it should
    not be drawn when the reference does not label it (``~labelled``: outside the picture, hidden, not there --
    the invented legs of an upper-body shot) or when the prediction is wrong.  Per threshold: ``precision``
    (right among drawn), ``recall`` (drawn among right), ``invented`` (drawn among unlabelled), ``wrong_drawn``
    (drawn among labelled but wrong) and ``decision`` (fraction of joints drawn exactly when right: both
    mistakes count alike).  Arrays over ``thresholds``; precision is nan where nothing is drawn.
    """
    c = np.asarray(conf, float).ravel()
    ok = np.asarray(correct, bool).ravel()
    lab = np.asarray(labelled, bool).ravel()
    if not (len(c) == len(ok) == len(lab)):
        raise ValueError("conf, correct and labelled must have the same number of joints")
    if (ok & ~lab).any():
        raise ValueError("a joint cannot be correct without a label")
    t = np.asarray(thresholds, float)
    drawn = c[None, :] >= t[:, None]
    n_drawn = drawn.sum(1)
    hit = (drawn & ok).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"threshold": t, "precision": np.where(n_drawn > 0, hit / np.maximum(n_drawn, 1), np.nan),
               "recall": hit / ok.sum() if ok.any() else np.full(len(t), np.nan),
               "invented": (drawn & ~lab).sum(1) / (~lab).sum() if (~lab).any() else np.full(len(t), np.nan),
               "wrong_drawn": ((drawn & lab & ~ok).sum(1) / (lab & ~ok).sum() if (lab & ~ok).any()
                               else np.full(len(t), np.nan)),
               "decision": (drawn == ok[None, :]).mean(1)}
    return out
