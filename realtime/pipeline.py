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
from collections import defaultdict, deque
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
from realtime.types import Frame, Poses

log = logging.getLogger(__name__)

__all__ = ["PipelineConfig", "Summary", "Pipeline"]

_END = object()


LATENCY_WINDOW = 10_000  # frames of latency kept for the summary's mean and p95


@dataclass
class PipelineConfig:
    """Settings of one run (what the command line sets)."""

    detect_every: int = 1  # run the detector every N frames, follow people from their keypoints in between
    max_persons: int = 16
    smooth: bool = True
    crop_padding: float | None = None  # None: the model's own (metadata mca.crop_padding, else 1.25)
    show: bool = False
    show_attention: str | None = None  # None, "holistic" or "parts"
    output: Path | None = None
    json_path: Path | None = None
    jsonl_path: Path | None = None
    queue_size: int = 8  # frames between stages for files (live sources keep 1: newest wins)
    overlay: bool = True  # FPS / latency text on the frames


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


DEMO_MIN_VISIBLE = 0.5  # a person counts for recall when at least half of their joints are in view


def _score_demo(summary: Summary, gt: Any, poses: Poses) -> None:
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


class Pipeline:
    """Wire the stages; ``run(source)`` processes until the source ends or ``stop()``.

    Threads: the reader decodes (files: every frame, in order, blocking when the
    inference falls behind; live sources: a one-frame queue where a newer frame
    replaces a waiting one, counted as dropped), the detector thread detects, the
    calling thread runs crop -> pose -> track -> smooth, the writer draws, encodes
    and writes JSON.
    """

    def __init__(self, detector: PersonDetector, pose: PoseEstimator, cfg: PipelineConfig,
                 progress: Callable[[int], None] | None = None) -> None:
        self.detector, self.pose, self.cfg = detector, pose, cfg
        info = pose.info
        self.cropper = Cropper(info.input_size, info.heatmap_size, cfg.crop_padding or info.crop_padding)
        self.tracker = Tracker()
        self.smoother = Smoother() if cfg.smooth else None
        self.renderer = Renderer(info.skeleton, attention=cfg.show_attention)
        pose.attention = cfg.show_attention is not None  # copy attention maps only when they are drawn
        self.stop_event = threading.Event()
        self.progress = progress
        self.timer = _Timer()
        self.errors: list[BaseException] = []
        self.detector_runs = 0
        self._frames_seen = 0

    def stop(self) -> None:
        """Stop reading; frames already read are finished and written (thread- and signal-safe)."""
        self.stop_event.set()

    # -- stages ---------------------------------------------------------------------------
    def detect(self, frame: Frame) -> Detections:
        """The detector on one frame (an oracle detector reads the frame's ground truth)."""
        detect_frame = getattr(self.detector, "detect_frame", None)
        det = detect_frame(frame) if detect_frame is not None else self.detector.detect(frame.image)
        self.detector_runs += 1
        return det

    def process(self, frame: Frame, previous: Poses | None, det: Detections | None = None) -> Poses:
        """Crop, estimate, track, smooth one frame; ``det`` from the detector thread, else detect or follow here."""
        t = time.perf_counter
        t0 = t()
        if det is None:
            every = max(1, self.cfg.detect_every)
            if previous is None or not len(previous) or every == 1 or self._frames_seen % every == 0:
                det = self.detect(frame)
            else:
                det = boxes_from_keypoints(previous, frame.size)
        self._frames_seen += 1
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
        if t1 - t0 > 1e-4:
            self.timer.add("detect", t1 - t0)
        for name, dt in (("crop", t2 - t1), ("pose", t3 - t2), ("track", t4 - t3)):
            self.timer.add(name, dt)
        return poses

    def _detector_thread(self, q_in: queue.Queue, q_det: queue.Queue) -> None:
        """Detect on frame ``n`` while the pose stage works on frame ``n - 1`` (frames on which
        ``--detect-every`` skips the detector go through with ``None``: followed from keypoints)."""
        stop = self.stop_event
        every = max(1, self.cfg.detect_every)
        n = 0
        try:
            while True:
                frame = q_in.get()
                if frame is _END:
                    break
                det = None
                if n % every == 0 and not stop.is_set():
                    t0 = time.perf_counter()
                    det = self.detect(frame)
                    self.timer.add("detect", time.perf_counter() - t0)
                n += 1
                _put(q_det, (frame, det), stop, drain_on_stop=True)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.errors.append(e)
            stop.set()
            while q_in.get() is not _END:  # let the reader finish
                pass
        finally:
            _put(q_det, _END, stop, drain_on_stop=True)

    def _reader(self, source: VideoSource, q_in: queue.Queue, summary: Summary) -> None:
        stop = self.stop_event
        t = time.perf_counter()
        try:
            for frame in source.frames():
                self.timer.add("read", time.perf_counter() - t)
                if source.is_live:
                    while True:  # newest wins: a frame still waiting for inference is stale
                        try:
                            q_in.put_nowait(frame)
                            break
                        except queue.Full:
                            try:
                                q_in.get_nowait()
                                summary.dropped += 1
                            except queue.Empty:
                                pass
                elif not _put(q_in, frame, stop):
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

    def _writer(self, source: VideoSource, q_out: queue.Queue, summary: Summary) -> None:
        cfg, stop = self.cfg, self.stop_event
        try:
            with ExitStack() as stack:
                mp4 = (stack.enter_context(Mp4Writer(cfg.output, source.fps, timestamps=source.is_live))
                       if cfg.output else None)
                coco = stack.enter_context(CocoJsonWriter(cfg.json_path)) if cfg.json_path else None
                jsonl = (stack.enter_context(JsonlWriter(cfg.jsonl_path, self.pose.info.joint_names))
                         if cfg.jsonl_path else None)
                win = stack.enter_context(Window()) if cfg.show else None
                fps_ema, last, lat_ema = 0.0, None, 0.0
                while True:
                    item = q_out.get()
                    if item is _END:
                        break
                    frame, poses = item
                    t0 = time.perf_counter()
                    if last is not None:
                        fps_ema = 0.9 * fps_ema + 0.1 / max(t0 - last, 1e-6) if fps_ema else 1 / max(t0 - last, 1e-6)
                    last = t0
                    latency = 1000 * (t0 - frame.captured)
                    lat_ema = 0.9 * lat_ema + 0.1 * latency if lat_ema else latency
                    summary.latency_ms.append(latency)
                    if mp4 is not None or win is not None:
                        text = (f"{fps_ema:5.1f} fps  {lat_ema:4.0f} ms  {len(poses)} people"
                                if cfg.overlay else None)
                        img = self.renderer.draw(frame.image, poses, text)
                        t1 = time.perf_counter()
                        self.timer.add("draw", t1 - t0)
                        if mp4 is not None:
                            mp4.write(img, frame.timestamp)
                            self.timer.add("encode", time.perf_counter() - t1)
                        if win is not None and not win.show(img):
                            stop.set()
                    if coco is not None:
                        coco.write(frame.index, poses)
                    if jsonl is not None:
                        jsonl.write(frame.index, frame.timestamp, poses)
                    summary.frames_out += 1
                    summary.persons += len(poses)
                    if self.progress:
                        self.progress(1)
        except BaseException as e:  # noqa: BLE001 - re-raised by run() after the other threads end
            self.errors.append(e)
            stop.set()
            while q_out.get() is not _END:  # keep the inference thread from blocking on a full queue
                pass

    def run(self, source: VideoSource) -> Summary:
        """Process ``source`` to the end (or ``stop()``); outputs are closed and playable on every exit."""
        cfg = self.cfg
        summary = Summary(live=source.is_live)
        q_in: queue.Queue = queue.Queue(maxsize=1 if source.is_live else max(1, cfg.queue_size))
        q_out: queue.Queue = queue.Queue(maxsize=max(1, cfg.queue_size))
        stop = self.stop_event
        # Frames flow reader -> detector -> (this thread: crop, pose, track) -> writer.  The detector
        # gets its own thread so that detection of frame n overlaps the pose model on frame n - 1.
        q_det: queue.Queue = queue.Queue(maxsize=1 if source.is_live else max(1, cfg.queue_size))
        reader = threading.Thread(target=self._reader, args=(source, q_in, summary), name="reader", daemon=True)
        detector = threading.Thread(target=self._detector_thread, args=(q_in, q_det), name="detector", daemon=True)
        writer = threading.Thread(target=self._writer, args=(source, q_out, summary), name="writer", daemon=True)
        t_start = time.perf_counter()
        reader.start()
        detector.start()
        writer.start()
        previous: Poses | None = None
        try:
            while True:
                try:
                    item = q_det.get(timeout=0.1)
                except queue.Empty:
                    if not detector.is_alive() and q_det.empty():
                        break
                    continue
                if item is _END:
                    break
                frame, det = item
                poses = self.process(frame, previous, det)
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
            source.stop()
            # Let the reader and the detector finish their puts, then flush the writer with what was processed.
            while detector.is_alive():
                try:
                    q_det.get(timeout=0.1)
                except queue.Empty:
                    pass
            _put(q_out, _END, stop, drain_on_stop=True)
            writer.join()
        summary.seconds = time.perf_counter() - t_start
        lost = summary.frames_in - summary.dropped - summary.frames_out  # dropped so far: stale live frames
        summary.dropped += source.dropped
        summary.corrupt = source.corrupt
        summary.stage_ms = self.timer.per_frame_ms(max(1, summary.frames_out))
        if lost > 0 and not summary.interrupted and not self.errors:
            log.warning("%d frames read but not written", lost)
        if self.errors:
            raise self.errors[0]
        return summary
