"""Teacher pseudo-labels on real footage: COCO-17 -> MPII-16 mapping, storage, training and agreement.

A teacher (MoveNet thunder, COCO-17 keypoints) labels real person crops; this module maps its keypoints
to the MPII-16 joints the project's models predict, stores the crops with their labels (one ``.npz`` per
split and a JSON manifest), feeds them through the same augmentation path as every other data set
(:func:`mca.data.augment.make_sample`), and measures how well a model *agrees with the teacher*.

The mapping (COCO-17 -> MPII-16):

=============  ==========================================================================
MPII joint     from COCO (visible when every COCO keypoint used scores >= ``min_score``)
=============  ==========================================================================
ankles, knees  the same joints (left/right kept: both sets name them from the person's view)
hips           the same joints
wrists, elbows the same joints
shoulders      the same joints
pelvis         midpoint of the hips
thorax         midpoint of the shoulders
upper_neck     shoulders' midpoint + 0.5 x (nose - shoulders' midpoint); the project's synthetic
               body puts the upper neck 0.53 of the way from the shoulders' midpoint to the nose
head_top       not mapped: no COCO keypoint marks the top of the head; always invisible (weight 0)
=============  ==========================================================================

Eyes and ears are not used.  What agreement measures: how close a model comes to an imperfect teacher
on one kind of scene, *not* accuracy against human labels.  NumPy/OpenCV only, except
:class:`PseudoLabelDataset` (imports torch).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from mca import heatmaps as H
from mca.joints import COCO17, MPII16

log = logging.getLogger(__name__)

__all__ = ["COCO_TO_MPII", "UPPER_NECK_FRACTION", "BLAZEPOSE_TO_COCO", "coco_to_mpii", "blazepose_to_coco",
           "mirror_coco", "flip_consistent",
           "spread_indices", "split_frames", "context_patch", "PseudoLabels", "save_split", "load_split",
           "teacher_agreement", "PseudoLabelDataset"]

# MPII joint -> the COCO joint it copies (the derived and unmapped ones are handled in coco_to_mpii)
COCO_TO_MPII: dict[str, str] = {
    "r_ankle": "r_ankle", "r_knee": "r_knee", "r_hip": "r_hip", "l_hip": "l_hip", "l_knee": "l_knee",
    "l_ankle": "l_ankle", "r_wrist": "r_wrist", "r_elbow": "r_elbow", "r_shoulder": "r_shoulder",
    "l_shoulder": "l_shoulder", "l_elbow": "l_elbow", "l_wrist": "l_wrist",
}
UPPER_NECK_FRACTION = 0.5  # of the way from the shoulders' midpoint to the nose
DEFAULT_MIN_SCORE = 0.3
# BlazePose-33 landmark index of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
# ankles); both name sides from the person's own view, as MoveNet and MPII do.
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
CONTEXT = 1.6  # a stored patch is the person box grown (square) by this much: room for scale/rotation jitter


def mirror_coco(kps: np.ndarray, width: float) -> np.ndarray:
    """Keypoints (..., 17, 2) a teacher gave on the mirrored image, back in the original image's frame.

    ``x -> width - 1 - x`` undoes ``cv2.flip(image, 1)`` (pixel centres at integers, as OpenCV and
    :func:`mca.heatmaps.crop_matrix` place them) and the
    left/right keypoints trade places: the person's left hand, mirrored, looks like a right hand."""
    kps = np.asarray(kps, np.float64)
    out = kps[..., COCO17.flip_index, :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def flip_consistent(kps: np.ndarray, mirrored_back: np.ndarray) -> np.ndarray:
    """Which COCO-17 keypoints (..., 17) keep their side when the teacher looks at the mirrored image.

    ``mirrored_back`` is the teacher's answer on the mirrored image, mapped back with :func:`mirror_coco`.  For a
    left/right pair, the teacher is sure of the sides when its two answers pair up the same way (left near left)
    rather than crossed; a pair answered crossed is marked ``False`` on both keypoints (the teacher named the sides
    by chance there; training on it teaches the student to guess).  Keypoints without a side are always ``True``.
    A tie (both answers collapsed onto one spot) counts as consistent: it says nothing about the sides."""
    a = np.asarray(kps, np.float64)
    b = np.asarray(mirrored_back, np.float64)
    if a.shape[-2:] != (COCO17.num_joints, 2) or b.shape != a.shape:
        raise ValueError(f"need two COCO-17 keypoint arrays (..., 17, 2) of one shape, got {a.shape}, {b.shape}")
    ok = np.ones(a.shape[:-1], bool)
    flip = COCO17.flip_index
    for j in range(COCO17.num_joints):
        k = flip[j]
        if k <= j:
            continue  # the centre keypoint (nose) or a pair already seen
        same = np.linalg.norm(a[..., j, :] - b[..., j, :], axis=-1) + np.linalg.norm(a[..., k, :] - b[..., k, :], axis=-1)
        crossed = np.linalg.norm(a[..., j, :] - b[..., k, :], axis=-1) + np.linalg.norm(a[..., k, :] - b[..., j, :], axis=-1)
        bad = crossed < same
        ok[..., j] &= ~bad
        ok[..., k] &= ~bad
    return ok


def coco_to_mpii(kps: np.ndarray, scores: np.ndarray, min_score: float = DEFAULT_MIN_SCORE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 keypoints (..., 17, 2) and scores (..., 17) -> MPII-16 joints (..., 16, 2) and visibility (..., 16)."""
    kps = np.asarray(kps, np.float64)
    scores = np.asarray(scores, np.float64)
    if kps.shape[-2:] != (COCO17.num_joints, 2) or scores.shape != kps.shape[:-1]:
        raise ValueError(f"need COCO-17 keypoints (..., 17, 2) and scores (..., 17), got {kps.shape}, {scores.shape}")
    ok = scores >= min_score
    c = COCO17.index
    joints = np.zeros(kps.shape[:-2] + (MPII16.num_joints, 2))
    vis = np.zeros(kps.shape[:-2] + (MPII16.num_joints,), bool)
    for m, k in COCO_TO_MPII.items():
        joints[..., MPII16.index(m), :] = kps[..., c(k), :]
        vis[..., MPII16.index(m)] = ok[..., c(k)]
    ls, rs, lh, rh, nose = (c(n) for n in ("l_shoulder", "r_shoulder", "l_hip", "r_hip", "nose"))
    shoulders = (kps[..., ls, :] + kps[..., rs, :]) / 2
    joints[..., MPII16.index("pelvis"), :] = (kps[..., lh, :] + kps[..., rh, :]) / 2
    vis[..., MPII16.index("pelvis")] = ok[..., lh] & ok[..., rh]
    joints[..., MPII16.index("thorax"), :] = shoulders
    vis[..., MPII16.index("thorax")] = ok[..., ls] & ok[..., rs]
    joints[..., MPII16.index("upper_neck"), :] = shoulders + UPPER_NECK_FRACTION * (kps[..., nose, :] - shoulders)
    vis[..., MPII16.index("upper_neck")] = ok[..., ls] & ok[..., rs] & ok[..., nose]
    joints[..., MPII16.index("head_top"), :] = joints[..., MPII16.index("upper_neck"), :]  # a placeholder, never visible
    vis[..., MPII16.index("head_top")] = False
    return joints.astype(np.float32), vis


def blazepose_to_coco(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose-33 landmarks (..., 33, >=3: x, y, [z,] visibility last) -> COCO-17 keypoints (..., 17, 2) and
    scores (..., 17) (BlazePose's visibility).  A person BlazePose did not find is NaN: scores 0."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape[-2] != 33 or lm.shape[-1] < 3:
        raise ValueError(f"need BlazePose landmarks (..., 33, >=3), got {lm.shape}")
    sel = lm[..., list(BLAZEPOSE_TO_COCO), :]
    kps, sc = sel[..., :2], sel[..., -1]
    bad = ~np.isfinite(kps).all(-1) | ~np.isfinite(sc)
    return np.where(bad[..., None], 0.0, kps), np.where(bad, 0.0, sc)


def spread_indices(n_frames: int, count: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """``count`` frame indices spread evenly over [lo, hi) (fewer when the range is shorter)."""
    hi = n_frames if hi is None else min(hi, n_frames)
    if hi <= lo or count <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(lo, hi - 1, min(count, hi - lo)).round().astype(np.int64))


def split_frames(n_frames: int, train: int, test: int, holdout: float = 0.25, gap: int = 20
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out frame indices: the held-out part is the contiguous last ``holdout`` of the video,
    and ``gap`` frames before it are used by neither (neighbouring frames show the same people)."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    start = int(round(n_frames * (1 - holdout)))
    return spread_indices(n_frames, train, 0, max(0, start - gap)), spread_indices(n_frames, test, start)


def context_patch(image: np.ndarray, box_xyxy: np.ndarray, size: int, context: float = CONTEXT
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A square ``size`` patch around the box grown by ``context``, and its 2x3 frame -> patch affine."""
    t = H.CropTransform.from_box(box_xyxy, (size, size), (size, size), context)
    patch = cv2.warpAffine(image, t.frame_to_input, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return patch, t.frame_to_input


@dataclass
class PseudoLabels:
    """One split: patches (N, S, S, 3) uint8 BGR, MPII joints (N, 16, 2) and boxes (N, 4) in patch pixels,
    visibility (N, 16), the teacher's raw COCO output (N, 17, 3: x, y in patch pixels, score), and where
    each came from.

    A second, independent teacher's labels of the same people may ride along (``alt_*``, same shapes);
    ``teacher_names`` names the primary teacher first.  :meth:`swapped` makes the second one primary, so a
    model can be trained on one teacher and measured against the other."""

    images: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    teacher: np.ndarray
    sources: list[str]
    alt_joints: np.ndarray | None = None
    alt_visible: np.ndarray | None = None
    alt_teacher: np.ndarray | None = None
    teacher_names: tuple[str, ...] = ("movenet_thunder",)

    def __len__(self) -> int:
        return len(self.images)

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.joints) == len(self.visible) == len(self.boxes) == len(self.teacher) == len(self.sources) == n):
            raise ValueError("pseudo-label arrays differ in length")
        alt = (self.alt_joints, self.alt_visible, self.alt_teacher)
        if any(a is not None for a in alt):
            if any(a is None or len(a) != n for a in alt) or len(self.teacher_names) != 2:
                raise ValueError("a second teacher needs joints, visibility and raw output for every person, and "
                                 "two teacher names")

    def swapped(self) -> "PseudoLabels":
        """The same people with the second teacher's labels as the primary ones."""
        if self.alt_joints is None:
            raise ValueError("these pseudo-labels have a single teacher")
        return PseudoLabels(self.images, self.alt_joints, self.alt_visible, self.boxes, self.alt_teacher, self.sources,
                            self.joints, self.visible, self.teacher, self.teacher_names[::-1])

    def subset(self, keep: np.ndarray) -> "PseudoLabels":
        """The people where ``keep`` (bool or indices) is set."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return PseudoLabels(self.images[idx], self.joints[idx], self.visible[idx], self.boxes[idx], self.teacher[idx],
                            [self.sources[i] for i in idx], pick(self.alt_joints), pick(self.alt_visible),
                            pick(self.alt_teacher), self.teacher_names)


def save_split(path: Path, labels: PseudoLabels) -> None:
    """Write one split as a compressed ``.npz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if labels.alt_joints is not None:
        extra = dict(alt_joints=labels.alt_joints, alt_visible=labels.alt_visible, alt_teacher=labels.alt_teacher)
    np.savez_compressed(path, images=labels.images, joints=labels.joints, visible=labels.visible,
                        boxes=labels.boxes, teacher=labels.teacher, sources=np.array(labels.sources),
                        teacher_names=np.array(labels.teacher_names), **extra)


def load_split(path: Path, teacher: str | None = None) -> PseudoLabels:
    """Read a split written by :func:`save_split`; ``teacher`` picks whose labels are primary (default: the
    file's first teacher)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"pseudo-label file {path} not found (make it with tools/pseudo_label.py)")
    with np.load(path, allow_pickle=False) as z:
        names = tuple(str(s) for s in z["teacher_names"]) if "teacher_names" in z else ("movenet_thunder",)
        alt = {k: z[k] for k in ("alt_joints", "alt_visible", "alt_teacher") if k in z}
        if "alt_visible" in alt:
            alt["alt_visible"] = alt["alt_visible"].astype(bool)
        lb = PseudoLabels(z["images"], z["joints"], z["visible"].astype(bool), z["boxes"], z["teacher"],
                          [str(s) for s in z["sources"]], teacher_names=names, **alt)
    if teacher is None or teacher == names[0]:
        return lb
    if teacher in names:
        return lb.swapped()
    raise ValueError(f"{path} has labels of {', '.join(names)}, not {teacher!r}")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest ``tools/pseudo_label.py`` wrote next to the splits."""
    p = Path(folder) / "manifest.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found (make it with tools/pseudo_label.py)")
    return json.loads(p.read_text())


def teacher_agreement(run: Callable[[np.ndarray], np.ndarray], labels: PseudoLabels, input_size: int,
                      heatmap_size: int, thr: float = 0.2, batch: int = 32) -> dict[str, Any]:
    """PCK@``thr`` of a pose model against the teacher's MPII joints on held-out crops.

    ``run`` maps uint8 NHWC BGR crops to heatmaps; crops are made as the pipeline makes them (the box,
    padded 1.25, no augmentation).  Only joints the teacher labels count; the reference length is the
    teacher's torso (right shoulder to left hip), so people without both are left out.
    """
    from mca.data.augment import make_sample
    from mca.metrics import pck, torso_size

    ts = torso_size(labels.joints, "mpii16")
    rs, lh = MPII16.index("r_shoulder"), MPII16.index("l_hip")
    keep = labels.visible[:, rs] & labels.visible[:, lh] & (ts > 1)
    crops, mats = [], []
    for i in np.flatnonzero(keep):
        s = make_sample(labels.images[i], labels.joints[i], labels.visible[i], labels.boxes[i], input_size,
                        heatmap_size, MPII16.flip_index)
        crops.append(s.crop)
        mats.append(s.frame_to_input)
    if not crops:
        raise ValueError("no held-out person has both a right shoulder and a left hip labelled by the teacher")
    crops_a = np.stack(crops)
    hms = np.concatenate([run(crops_a[i:i + batch]) for i in range(0, len(crops_a), batch)])
    coords, _ = H.decode_heatmaps(hms)
    to_in = H.heatmap_to_input_matrix((heatmap_size, heatmap_size), (input_size, input_size))
    pred = np.stack([H.apply_affine(H.compose_affine(H.invert_affine(m), to_in), c) for m, c in zip(mats, coords)])
    res = pck(pred, labels.joints[keep], labels.visible[keep], ts[keep], thr)
    return {f"pck@{thr}": res.total, "people": int(keep.sum()), "joints": int(res.count),
            "per_joint": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in
                          zip(MPII16.names, res.per_joint)}}


class PseudoLabelDataset:
    """Training items from pseudo-labelled patches through :func:`mca.data.augment.make_sample` (imports torch).

    Item ``i`` is patch ``i % len(labels)`` with augmentation seeded by (``seed``, ``i``), so an epoch can
    visit each patch several times with different jitter; the keys match ``SyntheticPoseDataset``.
    """

    def __init__(self, labels: PseudoLabels, input_size: int, heatmap_size: int, length: int, seed: int = 0,
                 augment: Any = None) -> None:
        from mca.data.augment import AugmentConfig

        if not len(labels):
            raise ValueError("no pseudo-labelled crops to train on")
        self.labels, self.input_size, self.heatmap_size = labels, input_size, heatmap_size
        self.length, self.seed = length, seed
        self.augment = augment or AugmentConfig()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        from mca.data.augment import make_sample

        k = i % len(self.labels)
        lb = self.labels
        rng = np.random.default_rng([self.seed, i, 29])
        s = make_sample(lb.images[k], lb.joints[k], lb.visible[k], lb.boxes[k], self.input_size, self.heatmap_size,
                        MPII16.flip_index, rng, self.augment)
        return {"crop": torch.from_numpy(s.crop), "target": torch.from_numpy(s.target),
                "weight": torch.from_numpy(s.weight), "joints_hm": torch.from_numpy(s.joints_hm),
                "frame_to_input": torch.from_numpy(s.frame_to_input.astype(np.float32)),
                "gt_joints": torch.from_numpy(lb.joints[k].astype(np.float32)),
                "gt_visible": torch.from_numpy(lb.visible[k])}
