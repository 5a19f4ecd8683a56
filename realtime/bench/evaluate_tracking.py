"""``python -m realtime.bench.evaluate_tracking``: how well do track ids follow people?

Runs the detector and the pose model on synthetic demo videos (whose ground truth
carries each person's true, stable id), then the tracker on what they found, and
scores the ids against the truth:

- **ids per true person**: distinct ids the tracker gave out over the video, divided by
  the people who were ever in view (1.0 is perfect; false detections that start tracks
  count too), and the mean number of ids each true person was matched to;
- **ID switches** (CLEAR-MOT): a person matched to another id than the one they last had;
- **IDF1** (Ristani et al. 2016): the F1 score of detections matched under the best
  one-to-one pairing of true people with ids over the whole video;
- **MOTA** = 1 - (misses + false positives + switches) / true detections, with its counts.

A detection matches a person at box IoU >= 0.5.  People with fewer than half their
joints in view (stepping in at an edge, or mostly hidden) are "don't care": no miss
when not found, and a box on them is neither a hit nor a false positive.

The tracker is fed as the pipeline feeds it: the detector is run at a low threshold
(``--low-conf``) and the tracker told the detector's own, so its second pass can use
the low-score boxes, and it gets each frame for its colour cue (``--no-low-score``,
``--no-image``: without them).  ``--video PATH`` runs a real video instead (no truth:
ids and track lengths, and annotated frames with ``--frames-out``).  A tracker whose
``update`` takes neither argument (an older one) is fed the confident boxes alone, so
the same command measures it too.  Torch-free.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from realtime.tracking import Tracker, iou_matrix
from realtime.types import Poses

log = logging.getLogger(__name__)

__all__ = ["FrameTruth", "FrameTracks", "IdentityMetrics", "linear_assignment", "identity_metrics", "pooled",
           "TrackStep", "track_demo", "track_video", "subset", "refinds", "main"]

MATCH_IOU = 0.5


@dataclass
class FrameTruth:
    """One frame's true people: boxes (G, 4), ids (G,), and which are "don't care" (G,)."""

    boxes: np.ndarray
    ids: np.ndarray
    ignore: np.ndarray


@dataclass
class FrameTracks:
    """One frame's tracker output: boxes (P, 4) and ids (P,)."""

    boxes: np.ndarray
    ids: np.ndarray

    @classmethod
    def of(cls, poses: Poses) -> "FrameTracks":
        """The tracked people of a tracker's output (untracked ones, id -1, are not track output)."""
        m = poses.track_ids >= 0
        return cls(poses.boxes[m].astype(np.float64), poses.track_ids[m].copy())


@dataclass
class IdentityMetrics:
    """Identity and CLEAR-MOT scores of one tracked video (or several pooled)."""

    frames: int
    people: int  # true people ever in view
    ids: int  # distinct ids the tracker gave out
    ids_matched_per_person: float  # mean distinct ids per true person among its matches
    switches: int
    idf1: float
    idp: float
    idr: float
    mota: float
    gt: int  # true detections counted (in view)
    tp: int
    fp: int
    fn: int

    @property
    def ids_per_person(self) -> float:
        return self.ids / max(self.people, 1)


# ----------------------------------------------------------------------------- assignment
def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the minimum-cost one-to-one assignment of a (n, m) matrix (min(n, m) pairs).

    The shortest-augmenting-path form of the Hungarian method (O(n^2 m)); here so that
    the runtime needs no SciPy (``scipy.optimize.linear_sum_assignment`` gives the same).
    """
    c = np.asarray(cost, np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be 2-D, got {c.shape}")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not np.isfinite(c).all():
        raise ValueError("cost must be finite")
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)  # p[j]: the row (1-based) assigned to column j; column 0 is the free slot
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.nonzero(p[1:])[0]
    rows = p[1:][cols] - 1
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    return (cols, rows) if transposed else (rows, cols)


def _match(iou: np.ndarray, thr: float, keep: Iterable[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Pairs (row, col) with IoU >= ``thr``: the ``keep`` pairs still valid, then the best IoU assignment of the rest.

    Each row and column pairs once: two people who last had the same id (one took it while the
    other was missed) both "keep" it, and the one its box overlaps more gets it.
    """
    pairs: list[tuple[int, int]] = []
    for g, p in sorted(keep, key=lambda gp: -iou[gp]):
        if iou[g, p] >= thr and all(g != g2 and p != p2 for g2, p2 in pairs):
            pairs.append((g, p))
    rows = [g for g in range(iou.shape[0]) if g not in {g for g, _ in pairs}]
    cols = [p for p in range(iou.shape[1]) if p not in {p for _, p in pairs}]
    if rows and cols:
        sub = iou[np.ix_(rows, cols)]
        r, c = linear_assignment(np.where(sub >= thr, -sub, 1.0))
        pairs += [(rows[i], cols[j]) for i, j in zip(r, c) if sub[i, j] >= thr]
    return pairs


# ----------------------------------------------------------------------------- metrics
def _drop_dont_care(truth: FrameTruth, tracks: FrameTracks, thr: float) -> tuple[FrameTruth, FrameTracks]:
    """Remove "don't care" people and the boxes on them (matched to them among all people)."""
    if not truth.ignore.any():
        return truth, tracks
    iou = iou_matrix(truth.boxes, tracks.boxes)
    on_ignored = {p for g, p in _match(iou, thr) if truth.ignore[g]}
    keep_p = np.array([p not in on_ignored for p in range(len(tracks.ids))], bool)
    keep_g = ~truth.ignore
    return (FrameTruth(truth.boxes[keep_g], truth.ids[keep_g], truth.ignore[keep_g]),
            FrameTracks(tracks.boxes[keep_p], tracks.ids[keep_p]))


def identity_metrics(truth: list[FrameTruth], tracks: list[FrameTracks], thr: float = MATCH_IOU) -> IdentityMetrics:
    """ID switches, IDF1, MOTA and ids per person of ``tracks`` against ``truth`` (same frames, in order).

    Boxes with id -1 (not, or not yet, a track) are left out, as are "don't care" people
    and the boxes on them.
    """
    if len(truth) != len(tracks):
        raise ValueError(f"{len(truth)} frames of truth but {len(tracks)} of tracks")
    all_ids = {int(i) for f in tracks for i in f.ids if i >= 0}
    people: set[int] = set()
    last: dict[int, int] = {}  # true id -> the track id it last matched
    matched_ids: dict[int, set[int]] = {}
    idtp: dict[tuple[int, int], int] = {}
    n_gt = n_pred = tp = switches = 0
    for t_raw, p_raw in zip(truth, tracks):
        tracked = p_raw.ids >= 0  # boxes without an id are not track output
        t, p = _drop_dont_care(t_raw, FrameTracks(p_raw.boxes[tracked], p_raw.ids[tracked]), thr)
        gt_ids, pr_ids = t.ids.astype(int).tolist(), p.ids.astype(int).tolist()
        people.update(gt_ids)
        n_gt += len(gt_ids)
        n_pred += len(pr_ids)
        iou = iou_matrix(t.boxes, p.boxes)
        col_of = {tid: j for j, tid in enumerate(pr_ids)}
        keep = [(g, col_of[last[gid]]) for g, gid in enumerate(gt_ids) if last.get(gid) in col_of]
        for g, j in _match(iou, thr, keep):
            gid, pid = gt_ids[g], pr_ids[j]
            tp += 1
            if gid in last and last[gid] != pid:
                switches += 1
            last[gid] = pid
            matched_ids.setdefault(gid, set()).add(pid)
        for g, gid in enumerate(gt_ids):  # IDF1 counts every frame a pair overlaps, not only CLEAR matches
            for j, pid in enumerate(pr_ids):
                if iou[g, j] >= thr:
                    idtp[gid, pid] = idtp.get((gid, pid), 0) + 1
    gts, prs = sorted(people), sorted({pid for _, pid in idtp})
    best = 0
    if gts and prs:
        m = np.zeros((len(gts), len(prs)))
        gi, pi = {g: i for i, g in enumerate(gts)}, {p: i for i, p in enumerate(prs)}
        for (g, p), v in idtp.items():
            m[gi[g], pi[p]] = v
        r, c = linear_assignment(-m)
        best = int(m[r, c].sum())
    fn, fp = n_gt - tp, n_pred - tp
    return IdentityMetrics(
        frames=len(truth), people=len(people), ids=len(all_ids),
        ids_matched_per_person=float(np.mean([len(v) for v in matched_ids.values()])) if matched_ids else 0.0,
        switches=switches, idf1=2 * best / max(n_gt + n_pred, 1), idp=best / max(n_pred, 1), idr=best / max(n_gt, 1),
        mota=1 - (fn + fp + switches) / max(n_gt, 1), gt=n_gt, tp=tp, fp=fp, fn=fn)


def pooled(rows: list[IdentityMetrics]) -> IdentityMetrics:
    """Several videos as one: counts summed, IDF1/IDP/IDR/MOTA from the summed counts."""
    s = {k: sum(getattr(r, k) for r in rows) for k in ("frames", "people", "ids", "switches", "gt", "tp", "fp", "fn")}
    idtp_p = sum(r.idp * (r.tp + r.fp) for r in rows)
    idtp_r = sum(r.idr * r.gt for r in rows)
    n_pred = s["tp"] + s["fp"]
    return IdentityMetrics(
        ids_matched_per_person=sum(r.ids_matched_per_person * r.people for r in rows) / max(s["people"], 1),
        idf1=2 * idtp_r / max(s["gt"] + n_pred, 1), idp=idtp_p / max(n_pred, 1), idr=idtp_r / max(s["gt"], 1),
        mota=1 - (s["fn"] + s["fp"] + s["switches"]) / max(s["gt"], 1), **s)


# ----------------------------------------------------------------------------- running
def subset(poses: Poses, keep: np.ndarray) -> Poses:
    """The people of ``poses`` selected by a boolean mask."""
    idx = np.nonzero(keep)[0]
    return Poses(poses.keypoints[idx], poses.scores[idx], poses.boxes[idx], poses.box_scores[idx])


class TrackStep:
    """One tracker fed as the pipeline would: ``step(poses, image) -> FrameTracks``.

    ``high_score``: the detector's own threshold; the poses hold boxes down to a lower
    one, and the tracker's second pass gets those below it (``None``: they are dropped
    first, as in a pipeline whose detector applies its own threshold).  ``image``: give
    the tracker the frame (its colour cue).  A tracker whose ``update`` takes neither
    (an older one) gets the confident people alone, so the same command measures it.
    """

    def __init__(self, tracker: Any, high_score: float | None, use_image: bool = True) -> None:
        params = inspect.signature(tracker.update).parameters
        self.tracker, self.high_score = tracker, high_score
        self.pass_low = high_score is not None and "high_score" in params
        self.pass_image = use_image and "image" in params

    def __call__(self, poses: Poses, image: np.ndarray) -> Poses:
        kw: dict[str, Any] = {"image": image} if self.pass_image else {}
        if self.pass_low:
            kw["high_score"] = self.high_score
        elif self.high_score is not None:
            poses = subset(poses, poses.box_scores >= self.high_score)
        return self.tracker.update(poses, **kw)


def _poses(detector: Any, pose: Any, cropper: Any, image: np.ndarray, max_persons: int) -> Poses:
    det = detector.detect(image).top(max_persons)
    return pose.estimate(cropper.crop(image, det))


def track_demo(detector: Any, pose: Any, step: TrackStep, seed: int, frames: int, people: int,
               size: tuple[int, int], max_persons: int = 16, min_visible: float = 0.5,
               progress: Callable[[int], None] | None = None) -> tuple[list[FrameTruth], list[FrameTracks]]:
    """One demo video through detector, pose model and tracker: its true people and the tracks, per frame."""
    from realtime.pose import Cropper
    from realtime.sources import DemoSource

    info = pose.info
    cropper = Cropper(info.input_size, info.heatmap_size, info.crop_padding)
    truth, tracks = [], []
    joint_set = "coco17" if info.num_joints == 17 else "mpii16"
    for f in DemoSource(frames, size, people, seed=seed, joint_set=joint_set).frames():
        tracks.append(FrameTracks.of(step(_poses(detector, pose, cropper, f.image, max_persons), f.image)))
        ppl = f.ground_truth.people
        truth.append(FrameTruth(np.array([p.box for p in ppl], np.float64).reshape(-1, 4),
                                np.array([p.track_id for p in ppl], np.int64),
                                np.array([float(np.mean(p.visible)) < min_visible for p in ppl], bool)))
        if progress:
            progress(1)
    return truth, tracks


def track_video(detector: Any, pose: Any, step: TrackStep, path: Path, frames: int | None, draw: Iterable[int] = (),
                out_dir: Path | None = None, max_persons: int = 16,
                progress: Callable[[int], None] | None = None) -> list[FrameTracks]:
    """A real video through detector, pose model and tracker; frames ``draw`` annotated into ``out_dir``."""
    import cv2

    from realtime.draw import Renderer
    from realtime.pose import Cropper
    from realtime.sources import FileSource

    info = pose.info
    cropper = Cropper(info.input_size, info.heatmap_size, info.crop_padding)
    renderer, wanted = Renderer(info.skeleton), set(draw)
    if out_dir is not None and wanted:
        out_dir.mkdir(parents=True, exist_ok=True)
    tracks = []
    with FileSource(path, max_frames=frames) as src:
        for i, f in enumerate(src.frames()):
            out = step(_poses(detector, pose, cropper, f.image, max_persons), f.image)
            tracks.append(FrameTracks.of(out))
            if out_dir is not None and i in wanted:
                cv2.imwrite(str(out_dir / f"frame_{i:05d}.png"), renderer.draw(f.image, out, f"frame {i}"))
            if progress:
                progress(1)
    return tracks


# ----------------------------------------------------------------------------- report
def _table(rows: list[tuple[str, IdentityMetrics]]) -> str:
    lines = ["| video | frames | people | ids | ids per person | ids matched per person | ID switches | IDF1 | "
             "IDP | IDR | MOTA | misses | false pos. |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in rows:
        b = "**" if name == "all" else ""
        lines.append(f"| {name} | {m.frames} | {m.people} | {m.ids} | {b}{m.ids_per_person:.2f}{b} | "
                     f"{m.ids_matched_per_person:.2f} | {b}{m.switches}{b} | {b}{m.idf1:.3f}{b} | {m.idp:.3f} | "
                     f"{m.idr:.3f} | {m.mota:.3f} | {m.fn} | {m.fp} |")
    return "\n".join(lines)


def refinds(tracks: list[FrameTracks]) -> list[tuple[int, int, float]]:
    """Each time an id comes back after frames without it: (id, frames missed, distance from where it was
    last seen in heights of its last box).  Without truth, a long jump hints at an id taken by someone else."""
    last: dict[int, tuple[int, np.ndarray]] = {}
    out = []
    for n, f in enumerate(tracks):
        for box, i in zip(f.boxes, f.ids.tolist()):
            if i < 0:
                continue
            if i in last and last[i][0] < n - 1:
                b = last[i][1]
                d = np.linalg.norm((box[:2] + box[2:]) / 2 - (b[:2] + b[2:]) / 2) / max(b[3] - b[1], 1.0)
                out.append((i, n - last[i][0] - 1, float(d)))
            last[i] = (n, np.asarray(box, np.float64))
    return out


def _video_report(tracks: list[FrameTracks]) -> str:
    life: dict[int, int] = {}
    for f in tracks:
        for i in f.ids.tolist():
            if i >= 0:
                life[i] = life.get(i, 0) + 1
    boxes = sum(len(f.ids) for f in tracks)
    n = np.array(sorted(life.values()))
    if not len(n):
        return f"{len(tracks)} frames, no people"
    back = refinds(tracks)
    gaps = np.array([g for _, g, _ in back])
    far = sum(d > 1.0 for _, _, d in back)
    return (f"{len(tracks)} frames, {boxes} tracked boxes ({boxes / len(tracks):.1f} a frame), {len(life)} ids; "
            f"frames per id: median {np.median(n):.0f}, mean {n.mean():.1f}; ids seen on >= 25 frames: "
            f"{int((n >= 25).sum())}, on < 5 frames: {int((n < 5).sum())}\n"
            f"re-found after a gap: {len(back)} times"
            + (f" (gap median {np.median(gaps):.0f}, max {gaps.max()} frames), {far} of them more than one "
               f"body height from where last seen" if len(back) else ""))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m realtime.bench.evaluate_tracking", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pose", help="pose ONNX (default: bundled mca_tiny_synth; mca_tiny_real with --video)")
    ap.add_argument("--detector", help="detector ONNX (default: bundled yolo_synth; ssdlite with --video)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13, 14],
                    help="demo video seeds (default: five the tracker's settings were not tuned on)")
    ap.add_argument("--frames", type=int, default=300, help="frames per demo video (or of --video; 0: all)")
    ap.add_argument("--people", type=int, default=4, help="people per demo video")
    ap.add_argument("--size", default="1280x720", help="demo WIDTHxHEIGHT")
    ap.add_argument("--low-conf", type=float, default=0.1,
                    help="detector threshold for the recording: boxes between it and the detector's own threshold "
                         "are the tracker's second pass (default 0.1)")
    ap.add_argument("--conf", type=float, help="the detector's own threshold (default: its family's)")
    ap.add_argument("--no-low-score", action="store_true",
                    help="give the tracker only the boxes at or above --conf (no second pass)")
    ap.add_argument("--no-image", action="store_true", help="do not give the tracker the frame (no colour cue)")
    ap.add_argument("--video", type=Path, help="a real video instead of the demo (no ground truth: ids and lengths)")
    ap.add_argument("--frames-out", type=Path, help="with --video: write annotated frames here")
    ap.add_argument("--draw", type=int, nargs="+", default=[100, 300, 500, 700],
                    help="frame indices to draw (with --frames-out)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from realtime.detectors import DETECTOR_FAMILIES, PersonDetector
    from realtime.models import ModelError, load_model, resolve_model
    from realtime.pose import PoseEstimator

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must be WIDTHxHEIGHT, got {args.size!r}", file=sys.stderr)
        return 2
    if args.frames < 0 or args.people < 0 or not 0 <= args.low_conf <= 1 or (args.video is None and not args.frames):
        print("error: --frames (> 0 for the demo) and --people must be >= 0, --low-conf in [0, 1]", file=sys.stderr)
        return 2
    if args.video is not None and not args.video.is_file():
        print(f"error: video {args.video} not found", file=sys.stderr)
        return 2
    demo = args.video is None
    try:
        pose = PoseEstimator(load_model(resolve_model(args.pose, "pose", demo), backend="ort"), attention=False)
        backend = load_model(resolve_model(args.detector, "detector", demo), backend="ort")
        family = PersonDetector(backend).family
        conf = DETECTOR_FAMILIES[family].default_conf if args.conf is None else args.conf
        detector = PersonDetector(backend, conf=conf if args.no_low_score else min(conf, args.low_conf))
    except (ModelError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    high = None if args.no_low_score else conf
    step = lambda: TrackStep(Tracker(), high, use_image=not args.no_image)  # noqa: E731
    probe = step()  # what this tracker takes (an older one: neither low-score boxes nor the frame)
    setting = (f"detector {family} at {conf:g}, "
               + (f"low-score boxes from {args.low_conf:g}" if probe.pass_low else "no low-score boxes")
               + ("" if probe.pass_image else ", no image (no colour cue)"))
    if not demo:
        bar = None if args.quiet else tqdm(desc="frames", unit="frame")
        tracks = track_video(detector, pose, step(), args.video, args.frames or None, args.draw, args.frames_out,
                             progress=bar.update if bar is not None else None)
        if bar is not None:
            bar.close()
        print(f"{args.video.name}: {setting}")
        print(_video_report(tracks))
        if args.frames_out:
            print(f"annotated frames in {args.frames_out}")
        return 0
    rows = []
    bar = None if args.quiet else tqdm(total=len(args.seeds) * args.frames, desc="frames", unit="frame")
    for s in args.seeds:
        truth, tracks = track_demo(detector, pose, step(), s, args.frames, args.people, (w, h),
                                   progress=bar.update if bar is not None else None)
        rows.append((str(s), identity_metrics(truth, tracks)))
    if bar is not None:
        bar.close()
    rows.append(("all", pooled([m for _, m in rows])))
    print(f"track ids against the demo's true ids: {args.people} people, {args.frames} frames, {w}x{h}, {setting}; "
          f"matched at IoU >= {MATCH_IOU}")
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps([{"video": n, **asdict(m), "ids_per_person": m.ids_per_person}
                                         for n, m in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
