"""The realtime pipeline: source -> detect -> crop -> pose -> decode -> track/smooth -> draw -> sinks.

Three threads overlap the work: a reader (decode), the inference thread (detect,
crop, pose, track, smooth) and a writer (draw, encode, JSON, window).  They talk
through bounded queues; every ``put`` waits with a timeout and re-checks a stop
event, so shutdown (end of file, Ctrl-C, SIGTERM, an error) never hangs and
whatever was processed is written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime.detectors import PersonDetector
from realtime.draw import Renderer
from realtime.pose import Cropper, PoseEstimator
from realtime.sinks import CocoJsonWriter, JsonlWriter, Mp4Writer, Window
from realtime.sources import VideoSource
from realtime.tracking import Smoother, Tracker, boxes_from_keypoints, iou_matrix
from realtime.types import Detections, Frame, Poses

log = logging.getLogger(__name__)

__all__ = ["PipelineConfig", "Summary", "Pipeline"]

_END = object()


@dataclass
class PipelineConfig:
    detect_every: int = 1
    max_persons: int = 16
    smooth: bool = True
    show: bool = False
    show_attention: bool = False
    output: Path | None = None
    json_path: Path | None = None
    jsonl_path: Path | None = None
    queue_size: int = 8
    overlay: bool = True


@dataclass
class Summary:
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
        lines = [f"frames in {self.frames_in}, out {self.frames_out}, persons {self.persons}, dropped "
                 f"{self.dropped}, corrupt {self.corrupt}{' (interrupted)' if self.interrupted else ''}",
                 f"{self.fps:.1f} frames/s end to end over {self.seconds:.1f} s",
                 "per-frame ms: " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())]
        if self.recall is not None:
            lines.append(f"demo ground truth: detection recall {self.recall:.3f} (IoU >= 0.5), "
                         f"PCK@0.2 {self.pck if self.pck is not None else float('nan'):.3f} "
                         f"over {self.pck_total} visible joints of detected people")
        return "\n".join(lines)


class _Timer:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, name: str, seconds: float) -> None:
        self.total[name] += seconds
        self.count[name] += 1

    def per_frame_ms(self, frames: int) -> dict[str, float]:
        return {k: 1000 * v / max(1, frames) for k, v in self.total.items()}


def _put(q: queue.Queue, item: Any, stop: threading.Event, drain_on_stop: bool = False) -> bool:
    """Put with a timeout loop; gives up when ``stop`` is set (unless draining)."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop.is_set() and not drain_on_stop:
                return False


def _score_demo(summary: Summary, gt: Any, poses: Poses) -> None:
    """Detection recall and PCK@0.2 (torso) of this frame against the demo's ground truth."""
    from mca.metrics import torso_size

    if gt is None or not getattr(gt, "people", None):
        return
    gt_boxes = np.stack([p.box for p in gt.people])
    summary.gt_people += len(gt_boxes)
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
        summary.gt_found += 1
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


class Pipeline:
    """Wire the stages; ``run(source)`` processes until the source ends or ``stop()``."""

    def __init__(self, detector: PersonDetector, pose: PoseEstimator, cfg: PipelineConfig,
                 progress: Callable[[int], None] | None = None) -> None:
        self.detector, self.pose, self.cfg = detector, pose, cfg
        info = pose.info
        self.cropper = Cropper(info.input_size, info.heatmap_size)
        self.tracker = Tracker()
        self.smoother = Smoother() if cfg.smooth else None
        self.renderer = Renderer(info.skeleton, attention=cfg.show_attention)
        self.stop_event = threading.Event()
        self.progress = progress
        self.timer = _Timer()
        self.errors: list[BaseException] = []

    def stop(self) -> None:
        """Stop reading; frames already read are finished and written."""
        self.stop_event.set()

    # -- stages ---------------------------------------------------------------------------
    def process(self, frame: Frame, previous: Poses | None) -> Poses:
        """Detect (or follow), crop, estimate, track, smooth one frame."""
        t = time.perf_counter
        t0 = t()
        if previous is None or self.cfg.detect_every <= 1 or frame.index % self.cfg.detect_every == 0:
            det = self.detector.detect(frame.image)
        else:
            det = boxes_from_keypoints(previous, frame.size)
        det = det.top(self.cfg.max_persons)
        t1 = t()
        crops = self.cropper.crop(frame.image, det)
        t2 = t()
        poses = self.pose.estimate(crops)
        t3 = t()
        poses = self.tracker.update(poses)
        if self.smoother is not None:
            poses = self.smoother.smooth(poses, frame.timestamp)
        t4 = t()
        for name, dt in (("detect", t1 - t0), ("crop", t2 - t1), ("pose", t3 - t2), ("track", t4 - t3)):
            self.timer.add(name, dt)
        return poses

    def run(self, source: VideoSource) -> Summary:
        cfg = self.cfg
        summary = Summary()
        q_in: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        q_out: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        stop = self.stop_event

        def reader() -> None:
            t = time.perf_counter()
            try:
                for frame in source.frames():
                    self.timer.add("read", time.perf_counter() - t)
                    if not _put(q_in, frame, stop):
                        break
                    summary.frames_in += 1
                    if stop.is_set():
                        break
                    t = time.perf_counter()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.errors.append(e)
                stop.set()
            finally:
                _put(q_in, _END, stop, drain_on_stop=True)

        def writer() -> None:
            try:
                with ExitStack() as stack:
                    mp4 = stack.enter_context(Mp4Writer(cfg.output, source.fps)) if cfg.output else None
                    coco = stack.enter_context(CocoJsonWriter(cfg.json_path)) if cfg.json_path else None
                    jsonl = (stack.enter_context(JsonlWriter(cfg.jsonl_path, self.pose.info.joint_names))
                             if cfg.jsonl_path else None)
                    win = stack.enter_context(Window()) if cfg.show else None
                    t_start, n = time.perf_counter(), 0
                    while True:
                        item = q_out.get()
                        if item is _END:
                            break
                        frame, poses = item
                        t0 = time.perf_counter()
                        if mp4 is not None or win is not None:
                            fps = n / max(1e-6, time.perf_counter() - t_start)
                            text = f"{fps:5.1f} fps  {len(poses)} people" if cfg.overlay else None
                            img = self.renderer.draw(frame.image, poses, text)
                            t1 = time.perf_counter()
                            self.timer.add("draw", t1 - t0)
                            if mp4 is not None:
                                mp4.write(img)
                                self.timer.add("encode", time.perf_counter() - t1)
                            if win is not None and not win.show(img):
                                stop.set()
                        if coco is not None:
                            coco.write(frame.index, poses)
                        if jsonl is not None:
                            jsonl.write(frame.index, frame.timestamp, poses)
                        summary.frames_out += 1
                        summary.persons += len(poses)
                        n += 1
                        if self.progress:
                            self.progress(1)
            except BaseException as e:  # noqa: BLE001
                self.errors.append(e)
                stop.set()
                while q_out.get() is not _END:  # keep the producer from blocking
                    pass

        threads = [threading.Thread(target=reader, name="reader", daemon=True),
                   threading.Thread(target=writer, name="writer", daemon=True)]
        t_start = time.perf_counter()
        for th in threads:
            th.start()
        previous: Poses | None = None
        try:
            while True:
                try:
                    frame = q_in.get(timeout=0.1)
                except queue.Empty:
                    if not threads[0].is_alive() and q_in.empty():
                        break
                    continue
                if frame is _END:
                    break
                poses = self.process(frame, previous)
                previous = poses
                if frame.ground_truth is not None:
                    _score_demo(summary, frame.ground_truth, poses)
                _put(q_out, (frame, poses), stop, drain_on_stop=True)
        except KeyboardInterrupt:
            summary.interrupted = True
            stop.set()
        except BaseException as e:  # noqa: BLE001 - re-raised after the outputs are closed
            self.errors.append(e)
            stop.set()
        finally:
            stop.set()
            # Let the reader finish its put, then flush the writer with what was processed.
            while threads[0].is_alive():
                try:
                    q_in.get(timeout=0.1)
                except queue.Empty:
                    pass
            _put(q_out, _END, stop, drain_on_stop=True)
            threads[1].join()
        summary.seconds = time.perf_counter() - t_start
        summary.dropped, summary.corrupt = source.dropped, source.corrupt
        summary.stage_ms = self.timer.per_frame_ms(max(1, summary.frames_out))
        if summary.frames_out < summary.frames_in and not summary.interrupted and not self.errors:
            log.warning("%d frames read but not written", summary.frames_in - summary.frames_out)
        if self.errors:
            raise self.errors[0]
        return summary
