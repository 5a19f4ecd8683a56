"""Stable track ids across frames, One Euro smoothing, and boxes from keypoints.

- :class:`Tracker` matches this frame's people to tracks carried forward by a Kalman
  filter, by box IoU, keypoint similarity (OKS-style, on the joints both poses are
  confident about) and, given the frame, the colours of their clothes; the detector's
  low-score boxes only continue tracks (ByteTrack's second pass); lost tracks wait
  to be re-found; new ids only for people seen a few frames in a row.  So ids stay
  put while people move, cross, are hidden for a while, or change shape (arms raised,
  a box that jumps between detector and keypoint-follow frames).
- :class:`Smoother` (in :mod:`realtime.smoothing`, re-exported here): One Euro filters per track.
- :func:`boxes_from_keypoints` lets the pipeline follow people between detector runs
  (``--detect-every N``) from their previous keypoints, as top-down systems do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from realtime.smoothing import OneEuroFilter, Smoother
from realtime.track_cues import BoxKalman, colour_similarity, cxcywh, person_colours
from realtime.types import Detections, Poses

log = logging.getLogger(__name__)

__all__ = ["iou_matrix", "keypoint_similarity", "Deferred", "Tracker", "OneEuroFilter", "Smoother",
           "boxes_from_keypoints"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (len(a), len(b))."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


_KAPPA = 0.1  # keypoint_similarity's spread, a fraction of the person's size


def keypoint_similarity(a: np.ndarray, a_ok: np.ndarray, b: np.ndarray, b_ok: np.ndarray,
                        scale: np.ndarray, kappa: float = _KAPPA, min_joints: int = 3) -> np.ndarray:
    """OKS-style similarity of poses ``a`` (Na, K, 2) and ``b`` (Nb, K, 2): (Na, Nb) in [0, 1].

    Mean over the joints confident in both of ``exp(-d^2 / (2 (kappa * scale)^2))``,
    ``scale`` (Na,) being each ``a`` person's size in pixels; pairs sharing fewer than
    ``min_joints`` confident joints score 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)  # (Na, Nb, K)
    both = a_ok[:, None, :] & b_ok[None, :, :]
    s2 = (kappa * np.maximum(np.asarray(scale, np.float64), 1.0)) ** 2
    e = np.exp(-d2 / (2 * s2[:, None, None]))
    cnt = both.sum(-1)
    sim = (e * both).sum(-1) / np.maximum(cnt, 1)
    return np.where(cnt >= min_joints, sim, 0.0)


def _grow(boxes: np.ndarray, g: np.ndarray | float) -> np.ndarray:
    """Boxes (N, 4) widened by ``g`` (N,) of their width and height on each side."""
    g = np.broadcast_to(np.asarray(g, np.float64), (len(boxes),))[:, None]
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, 1)
    return boxes + g * wh * np.array([-1, -1, 1, 1])


def _contained(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): the fraction of each ``a`` box that lies inside each ``b`` box."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    return inter / np.maximum(((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None], 1e-9)


@dataclass
class _Track:
    kalman: BoxKalman
    keypoints: np.ndarray  # (K, 2) when last seen
    keypoint_ok: np.ndarray  # (K,) confident joints when last seen
    anchor: np.ndarray  # the box centre when last seen: the keypoints move with the predicted centre
    colours: np.ndarray | None = None  # running person_colours (with an image)
    id: int = -1  # -1 while tentative
    hits: int = 1
    missed: int = 0

    @property
    def box(self) -> np.ndarray:
        return self.kalman.box

    def predicted_keypoints(self) -> np.ndarray:
        return self.keypoints + (self.kalman.x[:2] - self.anchor)

    def see(self, box: np.ndarray, keypoints: np.ndarray, ok: np.ndarray) -> None:
        self.kalman.update(box)
        self.keypoints, self.keypoint_ok = keypoints.astype(np.float64), ok.copy()
        self.anchor = self.kalman.x[:2].copy()
        self.hits, self.missed = self.hits + 1, 0


@dataclass
class Deferred:
    """Boxes handed to :meth:`Tracker.update` before they are posed: low-score boxes (under the band whose poses
    are judged) are kept only when the second pass gives them to a track, so only those a track left over by the
    first pass can reach are posed (on ``vtest.avi`` most of SSDLite's boxes from 0.1 are second boxes on people
    the first pass already took, or the railing)."""

    index: np.ndarray  # rows of the poses not posed yet (no confident joint)
    regions: np.ndarray  # (len(index), 4) xyxy: where each one's keypoints can land (its crop's extent)
    pose: Callable[[np.ndarray], Poses]  # the poses of the rows asked for, in that order


def _greedy(sim: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (row, col), best similarity first, each row and column once; entries < 0 never pair."""
    pairs = sorted(((sim[i, j], i, j) for i, j in zip(*np.nonzero(sim >= 0))), reverse=True)
    used_r: set[int] = set()
    used_c: set[int] = set()
    out = []
    for _v, i, j in pairs:
        if i in used_r or j in used_c:
            continue
        used_r.add(i)
        used_c.add(j)
        out.append((int(i), int(j)))
    return out


def _subset(poses: Poses, keep: np.ndarray) -> Poses:
    idx = np.nonzero(keep)[0]
    return Poses(poses.keypoints[idx], poses.scores[idx], poses.boxes[idx], poses.box_scores[idx],
                 poses.track_ids[idx] if len(poses.track_ids) == len(poses) else None,
                 poses.attention[idx] if poses.attention is not None else None,
                 poses.part_attention[idx] if poses.part_attention is not None else None,
                 [poses.transforms[i] for i in idx] if poses.transforms is not None else None)


class Tracker:
    """``update(poses) -> poses`` with ``track_ids`` filled in: stable ids across frames.

    Each track's box is carried forward by a constant-velocity Kalman filter
    (:class:`BoxKalman`), its keypoints with the box's centre.  A person and a track may
    pair when the box IoU (``iou_threshold``) or the keypoint similarity (OKS-style,
    ``keypoint_threshold``: a box that jumps while the body stays) against that
    prediction is high enough.  A pair scores IoU + ``keypoint_weight`` x OKS (small:
    in a crowd the crop of a person behind often finds the one in front, so OKS ranks
    poorly) + ``appearance_weight`` x colour similarity (:func:`person_colours`, when
    ``update`` gets the image), matched best pair first, in three passes (after
    ByteTrack, Zhang et al. ECCV 2022):

    1. confident people (``box_scores >= high_score``) against confirmed tracks, those
       seen last frame and those lost for up to ``max_missed`` frames.  A lost track's
       box is widened by ``lost_buffer`` a missed frame (the motion may have changed);
       with the image it refuses someone dressed otherwise (colours < ``lost_colour_floor``,
       ``None``: no such veto) and takes back someone dressed alike (>= ``reid_similarity``)
       of its height (the ratio within ``reid_height_ratio``) within ``reid_radius`` x
       sqrt(frames missed) heights of where it was predicted;
    2. the detector's low-score boxes against the tracks seen last frame and still
       unmatched, at ``low_iou_threshold``: an occluded or blurred person keeps their
       track, and a low-score box no track takes is left out of the output;
    3. the remaining confident people against tentative tracks.

    With the image, a track's colours are a running mean (each sighting keeps
    ``colour_memory`` of the old), left as they are while the person's box overlaps
    another's (IoU > ``colour_update_iou``: their clothes would mix in).

    A confident person left over starts a tentative track (id -1) if the box scores
    ``new_track_margin`` above ``high_score``, the pose is confident (mean joint score
    >= ``new_track_keypoints``, except on the tracker's first frame: with no tracks yet, everyone
    found is taken) and the box is not mostly (``new_track_inside``) inside a tracked person's (a limb
    found as a person); a model whose joint scores stay below it tracks only who it saw first.  It gets an id once seen on
    ``min_hits`` frames in a row (at once on the tracker's first frame) and ends at its
    first miss, so a short-lived false detection costs no id.  Two people with the same
    pose (OKS >= ``duplicate_oks``: one person boxed twice) keep the more confident.
    ``use_keypoints=False`` matches on boxes (and colours) alone.  Defaults were chosen
    on synthetic demo videos (``python -m realtime.bench.evaluate_tracking``).

    ``update(..., verify_score=S)``: a box scoring from S up to ``high_score`` counts as confident
    when its pose does (mean joint score >= ``verify_keypoints``), and any box from S up may start a
    track when its pose is confident enough for one (the box-score margin is then waived): a pose
    model finds no person in a railing (mean 0.31-0.45 on SSDLite's railing boxes of ``vtest.avi``)
    and a sure one in most people the detector scored just under its threshold (median 0.77;
    ``tools/ssdlite_margin.py``).
    """

    def __init__(self, iou_threshold: float = 0.2, max_missed: int = 60, use_keypoints: bool = True,
                 keypoint_threshold: float = 0.5, keypoint_weight: float = 0.1, min_score: float = 0.2,
                 low_iou_threshold: float = 0.5, min_hits: int = 3, new_track_margin: float = 0.1,
                 new_track_keypoints: float = 0.6, new_track_inside: float = 0.7,
                 duplicate_oks: float | None = 0.7, lost_buffer: float = 0.02, appearance_weight: float = 1.0,
                 lost_colour_floor: float | None = 0.3, reid_similarity: float = 0.7, reid_radius: float = 0.5,
                 reid_height_ratio: tuple[float, float] = (0.6, 1.6), colour_memory: float = 0.9,
                 colour_update_iou: float = 0.3, verify_keypoints: float = 0.5) -> None:
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.use_keypoints, self.keypoint_threshold, self.keypoint_weight = use_keypoints, keypoint_threshold, \
            keypoint_weight
        self.min_score, self.low_iou_threshold, self.min_hits = min_score, low_iou_threshold, max(1, min_hits)
        self.new_track_margin, self.new_track_keypoints, self.new_track_inside = \
            new_track_margin, new_track_keypoints, new_track_inside
        self.duplicate_oks, self.lost_buffer, self.appearance_weight = duplicate_oks, lost_buffer, appearance_weight
        self.lost_colour_floor, self.reid_similarity, self.reid_radius = lost_colour_floor, reid_similarity, reid_radius
        self.reid_height_ratio = reid_height_ratio
        self.colour_memory = colour_memory  # how much of a track's colours each new sighting leaves
        self.colour_update_iou = colour_update_iou
        self.verify_keypoints = verify_keypoints  # a verified box's pose: mean joint score at least this
        self.tracks: list[_Track] = []
        self._next = 0
        self._frames = 0

    def reset(self) -> None:
        """Forget every track, as at the start (for unrelated frames, e.g. a folder of photos): the next
        frame's people get ids at once; ids are not reused."""
        self.tracks = []
        self._frames = 0

    # -- scores ---------------------------------------------------------------------------
    def _similarity(self, tracks: list[_Track], poses: Poses, cols: np.ndarray, ok: np.ndarray,
                    colours: np.ndarray | None, iou_threshold: float) -> np.ndarray:
        """(len(tracks), len(cols)) pair scores; -1 where a pair may not match."""
        if not tracks or not len(cols):
            return np.full((len(tracks), len(cols)), -1.0)
        boxes = np.stack([t.box for t in tracks])
        det = poses.boxes[cols].astype(np.float64)
        grow = self.lost_buffer * np.array([t.missed for t in tracks], np.float64)
        if grow.any():  # both boxes grown alike, as buffered IoU does (Yang et al., WACV 2023)
            iou = np.stack([iou_matrix(_grow(boxes[i:i + 1], g), _grow(det, g))[0] for i, g in enumerate(grow)])
        else:
            iou = iou_matrix(boxes, det)
        gate = iou >= iou_threshold
        score = iou.copy()
        if self.use_keypoints:
            scale = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0))
            oks = keypoint_similarity(np.stack([t.predicted_keypoints() for t in tracks]),
                                      np.stack([t.keypoint_ok for t in tracks]), poses.keypoints[cols], ok[cols],
                                      scale)
            gate |= oks >= self.keypoint_threshold
            score += self.keypoint_weight * oks
        if colours is None:
            return np.where(gate, score, -1.0)
        app = np.full((len(tracks), len(cols)), 0.5)
        have = np.array([t.colours is not None for t in tracks])
        if have.any():
            app[have] = colour_similarity(np.stack([t.colours for t in tracks if t.colours is not None]),
                                          colours[cols])
        missed = np.array([t.missed for t in tracks], np.float64)
        if self.lost_colour_floor is not None:  # the veto: a lost track does not take someone dressed otherwise
            gate &= ~((missed[:, None] > 0) & (app < self.lost_colour_floor))
        sim = np.where(gate, score + self.appearance_weight * app, -1.0)
        # re-identification: a lost track takes back someone dressed alike, near it and of its size
        th = boxes[:, 3] - boxes[:, 1]
        dist = np.linalg.norm(((boxes[:, None, :2] + boxes[:, None, 2:]) - (det[None, :, :2] + det[None, :, 2:])) / 2,
                              axis=-1) / np.maximum(th[:, None], 1.0)
        ratio = (det[:, 3] - det[:, 1])[None] / np.maximum(th[:, None], 1.0)
        lo, hi = self.reid_height_ratio
        reid = ((missed[:, None] > 0) & have[:, None] & (app >= self.reid_similarity) & (ratio > lo) & (ratio < hi)
                & (dist <= self.reid_radius * np.sqrt(np.maximum(missed, 1.0))[:, None]))
        return np.where((sim < 0) & reid, app, sim)

    def _match(self, tracks: list[_Track], poses: Poses, cols: np.ndarray, ok: np.ndarray,
               colours: np.ndarray | None, iou_threshold: float, assign: dict[int, _Track]) -> np.ndarray:
        """Match ``tracks`` to the people ``cols``, record them in ``assign``; the columns left over."""
        sim = self._similarity(tracks, poses, cols, ok, colours, iou_threshold)
        taken = set()
        for i, j in _greedy(sim):
            assign[int(cols[j])] = tracks[i]
            taken.add(j)
        return np.array([c for j, c in enumerate(cols) if j not in taken], np.int64)

    def _duplicates(self, poses: Poses, ok: np.ndarray) -> np.ndarray:
        """People whose pose repeats a more confident person's (one person boxed twice)."""
        drop = np.zeros(len(poses), bool)
        if self.duplicate_oks is None or len(poses) < 2:
            return drop
        b = poses.boxes.astype(np.float64)
        scale = np.sqrt(np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1.0))
        oks = keypoint_similarity(poses.keypoints, ok, poses.keypoints, ok, scale)
        order = np.argsort(-poses.box_scores, kind="stable")
        for n, a in enumerate(order):
            if not drop[a]:
                drop[order[n + 1:][oks[a, order[n + 1:]] >= self.duplicate_oks]] = True
        return drop

    def _reach(self, tracks: list[_Track], boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
        """(N,) bool: which boxes the second pass's gate could let one of ``tracks`` (predicted) take, whatever
        their poses; ``regions`` (N, 4) xyxy: where each box's keypoints can land (its crop's extent).

        Exact bounds of the gate: the box IoU (>= ``low_iou_threshold``), or the OKS-style similarity, which is
        at most its best joint's term, so a pose whose crop lies farther from every confident predicted joint
        than that term allows cannot reach ``keypoint_threshold``."""
        out = np.zeros(len(boxes), bool)
        if not tracks or not len(boxes):
            return out
        out |= (iou_matrix(np.stack([t.box for t in tracks]), boxes) >= self.low_iou_threshold - 1e-9).any(0)
        if not self.use_keypoints:
            return out
        thr = self.keypoint_threshold
        if thr <= 0:
            return np.ones(len(boxes), bool)
        for t in tracks:
            if not t.keypoint_ok.any():
                continue
            b = t.box
            sigma = _KAPPA * max(math.sqrt(max((b[2] - b[0]) * (b[3] - b[1]), 1.0)), 1.0)
            reach = (sigma * math.sqrt(2.0 * math.log(1.0 / thr)) if thr < 1 else 0.0) + 1.0
            kp = t.predicted_keypoints()[t.keypoint_ok]
            dx = np.maximum(np.maximum(regions[None, :, 0] - kp[:, None, 0], kp[:, None, 0] - regions[None, :, 2]), 0)
            dy = np.maximum(np.maximum(regions[None, :, 1] - kp[:, None, 1], kp[:, None, 1] - regions[None, :, 3]), 0)
            out |= (np.hypot(dx, dy) <= reach).any(0)
        return out

    def _pose_deferred(self, poses: Poses, deferred: Deferred, tracks: list[_Track], drop: np.ndarray) -> np.ndarray:
        """Pose the deferred boxes the second pass may give to ``tracks``, in place in ``poses``; their rows."""
        rows = np.asarray(deferred.index, np.int64)
        cand = ~drop[rows]
        cand[cand] = self._reach(tracks, np.asarray(poses.boxes, np.float64)[rows[cand]],
                                 np.asarray(deferred.regions, np.float64).reshape(-1, 4)[cand])
        ask = np.sort(rows[cand])
        if not len(ask):
            return ask
        got = deferred.pose(ask)
        if len(got) != len(ask):
            raise ValueError(f"deferred posing gave {len(got)} poses for {len(ask)} boxes")
        poses.keypoints[ask], poses.scores[ask] = got.keypoints, got.scores
        for name in ("attention", "part_attention"):
            mine, theirs = getattr(poses, name), getattr(got, name)
            if mine is not None and theirs is not None:
                mine[ask] = theirs
        if poses.transforms is not None and got.transforms is not None:
            for i, tf in zip(ask.tolist(), got.transforms):
                poses.transforms[i] = tf
        return ask

    # -- the step ---------------------------------------------------------------------------
    def update(self, poses: Poses, high_score: float | None = None, image: np.ndarray | None = None,
               verify_score: float | None = None, deferred: Deferred | None = None) -> Poses:
        """This frame's ``poses`` with ``track_ids`` set (-1: not, or not yet, a track); tracks advance one frame.

        ``high_score``: the detector's own threshold, when ``poses`` also holds the
        boxes of a detector run lower (e.g. 0.1): those below it only continue tracks.
        ``image``: the frame (BGR), for the colours of each person's clothes.
        ``verify_score``: boxes from this score up count as confident where their pose is
        (see the class).  People left out of the result: unmatched low-score boxes and
        duplicates; without either, the result is ``poses`` itself, ids set in place.
        ``deferred``: rows not posed yet, all under the band whose poses are judged; those the second
        pass may take are posed between the passes (written into ``poses``), the others stay unposed.
        """
        ok = poses.scores >= self.min_score
        drop = self._duplicates(poses, ok)
        n = len(poses)
        boxes = np.asarray(poses.boxes, np.float64)
        high = ~drop if high_score is None else (poses.box_scores >= high_score) & ~drop
        verifying = high_score is not None and verify_score is not None and verify_score < high_score
        if verifying:
            vouched = (poses.box_scores >= verify_score) & (poses.scores.mean(1) >= self.verify_keypoints) & ~drop
            high |= vouched
        colours = person_colours(image, poses, self.min_score) if image is not None else None
        for t in self.tracks:
            t.kalman.predict(lost=t.missed > 0)
        confirmed = [t for t in self.tracks if t.id >= 0]
        assign: dict[int, _Track] = {}
        rest = self._match(confirmed, poses, np.nonzero(high)[0], ok, colours, self.iou_threshold, assign)
        taken = {id(t) for t in assign.values()}
        recent = [t for t in confirmed if t.missed == 0 and id(t) not in taken]
        if deferred is not None and len(deferred.index):
            if high[np.asarray(deferred.index, np.int64)].any():
                raise ValueError("a deferred box must score under the band whose poses are judged")
            asked = self._pose_deferred(poses, deferred, recent, drop)
            if len(asked):  # their poses now count: duplicates and clothes
                ok = poses.scores >= self.min_score
                drop = self._duplicates(poses, ok)
                if colours is not None:
                    colours[asked] = person_colours(image, _subset(poses, np.isin(np.arange(n), asked)),
                                                    self.min_score)
        self._match(recent, poses, np.nonzero(~high & ~drop)[0], ok, colours, self.low_iou_threshold, assign)
        rest = self._match([t for t in self.tracks if t.id < 0], poses, rest, ok, colours, self.iou_threshold, assign)
        crowded = iou_matrix(boxes, boxes) - np.eye(n) > self.colour_update_iou if n else np.zeros((0, 0), bool)
        for j, t in assign.items():
            t.see(boxes[j], poses.keypoints[j], ok[j])
            if colours is not None and colours[j].any():
                if t.colours is None:
                    t.colours = colours[j].copy()
                elif not crowded[j].any():  # someone overlapping would mix their clothes in
                    t.colours = self.colour_memory * t.colours + (1 - self.colour_memory) * colours[j]
        seen = {id(t) for t in assign.values()}
        kept = []
        for t in self.tracks:
            if id(t) not in seen:
                t.missed += 1
            if t.missed <= (0 if t.id < 0 else self.max_missed):  # a tentative track ends at its first miss
                kept.append(t)
        self.tracks = kept
        if len(rest):
            floor = -np.inf if high_score is None else high_score + self.new_track_margin
            sure = poses.scores[rest].mean(1) >= self.new_track_keypoints
            if self._frames == 0:  # no tracks yet to tell a pose model's confidence by: everyone found is a person
                sure[:] = True
            start = poses.box_scores[rest] >= floor
            if verifying:  # the pose vouches instead of the margin (the box is >= verify_score: it is in ``high``)
                start |= poses.scores[rest].mean(1) >= max(self.new_track_keypoints, self.verify_keypoints)
            rest = rest[sure & start]
        if len(rest) and assign:
            inside = _contained(boxes[rest], np.stack([t.box for t in assign.values()])).max(1)
            rest = rest[inside < self.new_track_inside]
        for j in rest:
            t = _Track(BoxKalman(boxes[j]), poses.keypoints[j].astype(np.float64), ok[j].copy(),
                       cxcywh(boxes[j])[:2], colours[j].copy() if colours is not None and colours[j].any() else None)
            self.tracks.append(t)
            assign[int(j)] = t
        for t in self.tracks:
            if t.id < 0 and (t.hits >= self.min_hits or self._frames == 0):
                t.id, self._next = self._next, self._next + 1
        self._frames += 1
        ids = np.full(n, -1, np.int64)
        for j, t in assign.items():
            ids[j] = t.id
        keep = high | np.isin(np.arange(n), list(assign))
        if keep.all():
            poses.track_ids = ids
            return poses
        out = _subset(poses, keep)
        out.track_ids = ids[keep]
        return out


def boxes_from_keypoints(poses: Poses, frame_wh: tuple[int, int], min_score: float = 0.2,
                         margin: float = 0.12) -> Detections:
    """Boxes around each person's confident keypoints (for frames without detection)."""
    w, h = frame_wh
    boxes, scores = [], []
    for i in range(len(poses)):
        ok = poses.scores[i] >= min_score
        if ok.sum() < 3:
            continue
        pts = poses.keypoints[i][ok]
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        m = margin * max(x1 - x0, y1 - y0)
        box = np.array([max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, w - 1), min(y1 + m, h - 1)], np.float32)
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            boxes.append(box)
            scores.append(float(poses.box_scores[i]))
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))
