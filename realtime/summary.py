"""What a run did: counts, timings, and the demo's accuracy against its ground truth.

Kept apart from the pipeline's threads so that reports (``python -m realtime.run``'s
closing lines, the benchmarks, the Ray batch records) read one object.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.tracking import iou_matrix
from realtime.types import Poses

__all__ = ["Summary", "StageTimer", "score_demo", "DEMO_MIN_VISIBLE", "LATENCY_WINDOW"]

LATENCY_WINDOW = 10_000  # frames of latency kept for the summary's mean and p95


@dataclass
class Summary:
    """What happened in a run: counts, timings, and the demo's accuracy against its ground truth."""

    frames_in: int = 0
    frames_out: int = 0
    persons: int = 0
    dropped: int = 0
    corrupt: int = 0
    seconds: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    gt_people: int = 0
    gt_found: int = 0
    pck_hits: int = 0
    pck_total: int = 0
    # capture -> drawn/written, the last LATENCY_WINDOW frames (bounded: a camera may run for days)
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW), repr=False)
    live: bool = False  # latency is reported for live sources (files are read ahead, so theirs is queueing)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    @property
    def recall(self) -> float | None:
        return self.gt_found / self.gt_people if self.gt_people else None

    @property
    def pck(self) -> float | None:
        return self.pck_hits / self.pck_total if self.pck_total else None

    def text(self) -> str:
        """The closing summary printed by ``python -m realtime.run``."""
        lines = [f"frames in {self.frames_in}, out {self.frames_out}, persons {self.persons}, dropped "
                 f"{self.dropped}, corrupt {self.corrupt}{' (interrupted)' if self.interrupted else ''}",
                 f"{self.fps:.1f} frames/s end to end over {self.seconds:.1f} s"
                 + (f"; latency (capture to output) ms mean {np.mean(self.latency_ms):.0f}, "
                    f"p95 {np.percentile(self.latency_ms, 95):.0f}" if self.latency_ms and self.live else ""),
                 "per-frame ms (stages overlap in threads): "
                 + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())]
        if self.recall is not None:
            lines.append(f"demo ground truth: detection recall {self.recall:.3f} (IoU >= 0.5, people with half "
                         f"their joints in view), "
                         f"PCK@0.2 {self.pck if self.pck is not None else float('nan'):.3f} "
                         f"over {self.pck_total} visible joints of detected people")
        return "\n".join(lines)


class StageTimer:
    """Seconds spent per stage (added from several threads), reported per frame."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, name: str, seconds: float) -> None:
        self.total[name] += seconds
        self.count[name] += 1

    def per_frame_ms(self, frames: int) -> dict[str, float]:
        return {k: 1000 * v / max(1, frames) for k, v in self.total.items()}


DEMO_MIN_VISIBLE = 0.5  # a person counts for recall when at least half of their joints are in view


def score_demo(summary: Summary, gt: Any, poses: Poses) -> None:
    """Detection recall and PCK@0.2 (torso) of this frame against the demo's ground truth.

    Recall counts the people with at least half of their joints visible (one stepping in
    at the frame's edge with a sliver showing is not yet "in the picture"); a detection
    matches a person at box IoU >= 0.5.  PCK is over the visible joints of every matched person.
    """
    from mca.metrics import torso_size

    if gt is None or not getattr(gt, "people", None):
        return
    gt_boxes = np.stack([p.box for p in gt.people])
    in_view = [float(np.mean(p.visible)) >= DEMO_MIN_VISIBLE for p in gt.people]
    summary.gt_people += sum(in_view)
    if not len(poses):
        return
    iou = iou_matrix(gt_boxes, poses.boxes)
    pairs = sorted(((iou[g, j], g, j) for g in range(iou.shape[0]) for j in range(iou.shape[1]) if iou[g, j] >= 0.5),
                   reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    for _v, g, j in pairs:
        if g in used_g or j in used_p:
            continue
        used_g.add(g)
        used_p.add(j)
        summary.gt_found += int(in_view[g])
        person = gt.people[g]
        if person.joints.shape[0] != poses.keypoints.shape[1]:
            continue
        norm = float(torso_size(person.joints[None], _demo_joint_set(person.joints.shape[0]))[0])
        d = np.linalg.norm(poses.keypoints[j] - person.joints, axis=1)
        vis = person.visible.astype(bool)
        summary.pck_hits += int(((d <= 0.2 * norm) & vis).sum())
        summary.pck_total += int(vis.sum())


def _demo_joint_set(k: int) -> str:
    return "mpii16" if k == 16 else "coco17"
