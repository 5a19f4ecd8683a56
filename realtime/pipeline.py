"""The realtime pipeline: source -> detect -> crop -> pose -> decode -> track/smooth -> draw -> sinks.

Four threads overlap the work: a reader (decode), the detector, the calling thread
(crop, pose, track, smooth) and a writer (draw, encode, JSON, window).  They talk
through bounded queues.  Every wait has a timeout and looks at the stop event, so a
stop (end of file, Ctrl-C, SIGTERM, an error) never hangs, even when the source
blocks forever in a read (a stalled pipe): reading ends, the frames in flight are
finished (within ``stop_timeout``) and written, and the outputs are closed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime.detectors import PersonDetector
from realtime.draw import KPT_THR, Renderer
from realtime.pose import Cropper, PoseEstimator
from realtime.sources import VideoSource
from realtime.summary import DEMO_MIN_VISIBLE, LATENCY_WINDOW, StageTimer, Summary, score_demo
from realtime.tracking import Deferred, Smoother, Tracker, boxes_from_keypoints
from realtime.types import Detections, Frame, Poses
from realtime.writer import WriterStage

log = logging.getLogger(__name__)

__all__ = ["PipelineConfig", "Summary", "Pipeline", "DEMO_MIN_VISIBLE", "LATENCY_WINDOW", "parse_verify_conf"]

_score_demo = score_demo  # the name the benchmarks import
_END = object()
POLL = 0.05  # seconds: the longest a waiting thread goes without looking at the stop event


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
    overlay: bool = True  # FPS (and, for live sources, latency) text on the frames
    kpt_thr: float = KPT_THR  # joints under this confidence are not drawn
    audio: bool = True  # carry a video file's sound into the MP4
    stop_timeout: float = 1.5  # after stop(): seconds to finish the frames in flight (the rest are not written)
    # The tracker's second pass (ByteTrack): the detector also reports boxes down to this score, and those under its
    # own threshold only continue tracks (realtime.bench.evaluate_tracking: 7.80 -> 1.10 ids per person on the demo
    # with it and the colour cue). None: confident boxes only.
    track_low_score: float | None = 0.1
    # Boxes from this score up to the detector's threshold are kept where the pose model finds a person in them
    # (mean joint score >= 0.5, Tracker.verify_keypoints): "auto" takes the detector family's (SSD 0.2, YOLO none),
    # None keeps none. Needs track_low_score at or under it (the detector must report those boxes).
    verify_conf: float | str | None = "auto"
    # Low-score boxes (under the verify band) that no track seen last frame can take are left out of the output
    # whatever their pose, so they are not posed (Tracker.reachable); False poses every box.
    skip_unreachable: bool = True
    encoder: str = "libx264"  # the MP4's H.264 encoder: libx264, or h264_nvenc where PyAV's FFmpeg has NVENC


def parse_verify_conf(text: str | None) -> float | str | None:
    """The ``--verify-conf`` option: not given -> "auto" (the detector family's band), "off" -> None, else a score
    in (0, 1); anything else is a ValueError that says so."""
    if text is None:
        return "auto"
    if text.strip().lower() == "off":
        return None
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v < 1:
        raise ValueError(f"--verify-conf must be 'off' or between 0 and 1, got {text}")
    return v


def _with_unposed(posed: Poses, det: Detections, need: np.ndarray, cropper: Cropper) -> Poses:
    """``posed`` (the boxes ``need`` marks) widened back to every box of ``det``, in order; a box not posed has
    no confident joint (the tracker still sees its box: it counts in who overlaps whom)."""
    n, k = len(det), posed.keypoints.shape[1]
    idx = np.nonzero(need)[0]
    kps = np.zeros((n, k, 2), np.float32)
    kps[:] = ((det.boxes[:, :2] + det.boxes[:, 2:]) / 2)[:, None]
    kps[idx] = posed.keypoints
    scores = np.zeros((n, k), np.float32)
    scores[idx] = posed.scores

    def widen(maps: np.ndarray | None) -> np.ndarray | None:
        if maps is None:
            return None
        out = np.zeros((n,) + maps.shape[1:], maps.dtype)
        out[idx] = maps
        return out

    transforms = None
    if posed.transforms is not None:
        own = dict(zip(idx.tolist(), posed.transforms))
        transforms = [own[i] if i in own else cropper.transform(det.boxes[i]) for i in range(n)]
    return Poses(kps, scores, det.boxes.copy(), det.scores.copy(), attention=widen(posed.attention),
                 part_attention=widen(posed.part_attention), transforms=transforms)


class _Abandoned(Exception):
    """The frame in hand cannot be finished: the detector thread is gone or the stop deadline passed."""


class _DetectorThread:
    """The only thread that runs the detector (a TensorRT execution context belongs to one thread).

    It detects on frame ``n`` while the pose stage works on frame ``n - 1``; frames that
    ``--detect-every`` skips go through with ``None`` (followed from keypoints).  When the
    pose stage has nobody to follow on a skipped frame it asks here with :meth:`request`
    instead of running the detector itself; requests are answered before new frames.
    After a stop, frames still in the read-ahead queue are discarded (and no longer
    counted as read); those past it are finished.
    """

    def __init__(self, pipeline: "Pipeline", q_in: queue.Queue, q_det: queue.Queue,
                 reading_over: Callable[[], bool], summary: Summary) -> None:
        self.pipeline, self.q_in, self.q_det, self.reading_over = pipeline, q_in, q_det, reading_over
        self.summary = summary
        self.requests: queue.Queue = queue.Queue()
        self.done = threading.Event()  # set by the pose stage: it will take and ask nothing more
        self.thread = threading.Thread(target=self._loop, name="detector", daemon=True)

    def request(self, frame: Frame, give_up: Callable[[], bool]) -> Detections:
        """Detections of ``frame`` from the detector thread (raises :class:`_Abandoned` if it cannot answer)."""
        answer: list[Any] = [None, None]
        ready = threading.Event()
        self.requests.put((frame, answer, ready))
        while not ready.wait(POLL):
            if not self.thread.is_alive() or give_up():
                raise _Abandoned
        if answer[1] is not None:
            raise answer[1]
        return answer[0]

    def _serve(self) -> None:
        while True:
            try:
                frame, answer, ready = self.requests.get_nowait()
            except queue.Empty:
                return
            try:
                answer[0] = self.pipeline._timed_detect(frame)
            except BaseException as e:  # noqa: BLE001 - raised in the asking thread
                answer[1] = e
            finally:
                ready.set()

    def _hand_on(self, item: Any) -> None:
        while not self.done.is_set():
            self._serve()
            try:
                self.q_det.put(item, timeout=0.01)
                return
            except queue.Full:
                pass

    def _loop(self) -> None:
        p = self.pipeline
        every = max(1, p.cfg.detect_every)
        n = 0
        try:
            while not self.done.is_set():
                self._serve()
                try:
                    frame = self.q_in.get(timeout=0.01)
                except queue.Empty:
                    if self.reading_over():
                        break
                    continue
                if p.stop_event.is_set():  # stopped: frames read ahead but not started are not read after all
                    with p._gate:
                        self.summary.frames_in -= 1
                    continue
                if frame.new_scene:  # a folder's next photo or video: detect, do not follow
                    n = 0
                det = p._timed_detect(frame) if n % every == 0 else None
                n += 1
                self._hand_on((frame, det))
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            p._fail(e)
        finally:
            self._hand_on(_END)
            while not self.done.wait(0.01):  # frames before _END may still need a detection
                self._serve()


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
        self.track_high = self._lower_detector_threshold(detector, cfg.track_low_score)
        verify = getattr(detector, "verify_conf", None) if cfg.verify_conf == "auto" else cfg.verify_conf
        low = cfg.track_low_score
        self.verify_conf = float(verify) if verify is not None and self.track_high is not None and \
            low is not None and low <= float(verify) < self.track_high else None
        self.smoother = Smoother() if cfg.smooth else None
        self.renderer = Renderer(info.skeleton, min_score=cfg.kpt_thr, attention=cfg.show_attention)
        pose.attention = cfg.show_attention is not None  # copy attention maps only when they are drawn
        self.stop_event = threading.Event()
        self.progress = progress
        self.timer = StageTimer()
        self.errors: list[BaseException] = []
        self.detector_runs = 0
        self.boxes_seen = self.boxes_posed = 0  # boxes the pose stage got, and how many of them it posed
        self._posing_s = 0.0  # seconds of _estimate in the frame in hand
        self._frames_seen = 0
        self._detect_now: Callable[[Frame], Detections] = self._timed_detect  # run(): via the detector thread
        self._gate = threading.Lock()  # the reader admits a frame and the detector closes reading under it
        self._reader_done = threading.Event()
        self._inference_over = threading.Event()

    @staticmethod
    def _lower_detector_threshold(detector: object, low: float | None) -> float | None:
        """Run a thresholded detector down to ``low`` for the tracker's second pass; its own threshold, which the
        tracker is told (None: no second pass, e.g. the ground-truth detector, which has no threshold)."""
        conf = getattr(detector, "own_conf", None) or getattr(detector, "conf", None)  # a detector used again
        if low is None or not isinstance(conf, float) or low >= conf:
            return None
        detector.own_conf = conf  # type: ignore[attr-defined]
        detector.conf = low  # type: ignore[attr-defined]
        return conf

    def stop(self) -> None:
        """Stop reading; frames already read are finished and written (thread- and signal-safe)."""
        self.stop_event.set()

    def _fail(self, e: BaseException) -> None:
        self.errors.append(e)
        self.stop_event.set()

    # -- stages ---------------------------------------------------------------------------
    def detect(self, frame: Frame) -> Detections:
        """The detector on one frame (an oracle detector reads the frame's ground truth)."""
        detect_frame = getattr(self.detector, "detect_frame", None)
        det = detect_frame(frame) if detect_frame is not None else self.detector.detect(frame.image)
        self.detector_runs += 1
        return det

    def _timed_detect(self, frame: Frame) -> Detections:
        t0 = time.perf_counter()
        det = self.detect(frame)
        self.timer.add("detect", time.perf_counter() - t0)
        return det

    def process(self, frame: Frame, previous: Poses | None, det: Detections | None = None) -> Poses:
        """Crop, estimate, track, smooth one frame; ``det`` from the detector thread, else detect or follow here."""
        t = time.perf_counter
        if frame.new_scene:  # unrelated to the frame before: nobody is followed, tracked or smoothed across
            previous, self._frames_seen = None, 0
            self.tracker = Tracker()
            self.smoother = Smoother() if self.cfg.smooth else None
        if det is None:
            every = max(1, self.cfg.detect_every)
            if previous is None or not len(previous) or every == 1 or self._frames_seen % every == 0:
                det = self._detect_now(frame)
            else:
                det = boxes_from_keypoints(previous, frame.size)
        self._frames_seen += 1
        det = det.top(self.cfg.max_persons)
        self._posing_s = 0.0
        deferred = self._deferred(frame, det)
        if deferred is None:
            poses = self._estimate(frame.image, det)
        else:
            now = np.ones(len(det), bool)
            now[deferred.index] = False
            poses = _with_unposed(self._estimate(frame.image, Detections(det.boxes[now], det.scores[now])), det,
                                  now, self.cropper)
        t3 = t()
        posing = self._posing_s
        poses = self.tracker.update(poses, high_score=self.track_high, image=frame.image,
                                    verify_score=self.verify_conf, deferred=deferred)
        if self.smoother is not None:
            poses = self.smoother.smooth(poses, frame.timestamp)
        self.boxes_seen += len(det)
        self.timer.add("track", t() - t3 - (self._posing_s - posing))  # less the deferred boxes posed inside
        return poses

    def _estimate(self, image: np.ndarray, det: Detections) -> Poses:
        """Crop and pose the people ``det`` boxes (timed as the crop and pose stages)."""
        t0 = time.perf_counter()
        estimate_frame = getattr(self.pose, "estimate_frame", None)
        if estimate_frame is not None:  # the graph chain (realtime.chain): crop and pose in one device pass
            t1 = t0
            poses = estimate_frame(image, det)
        else:
            crops = self.cropper.crop(image, det)
            t1 = time.perf_counter()
            poses = self.pose.estimate(crops)
        t2 = time.perf_counter()
        self.timer.add("crop", t1 - t0)
        self.timer.add("pose", t2 - t1)
        self._posing_s += t2 - t0
        self.boxes_posed += len(det)
        return poses

    def _deferred(self, frame: Frame, det: Detections) -> Deferred | None:
        """The boxes whose posing waits for the tracker (None: pose all now): those under the band whose pose is
        judged (the verify band, else the detector's own threshold) are kept only if a track takes them."""
        floor = self.verify_conf if self.verify_conf is not None else self.track_high
        if not self.cfg.skip_unreachable or floor is None or not len(det):
            return None
        low = np.nonzero(det.scores < floor)[0]
        if not len(low):
            return None

        def pose(rows: np.ndarray) -> Poses:
            return self._estimate(frame.image, Detections(det.boxes[rows], det.scores[rows]))

        return Deferred(low, self.cropper.regions(det.boxes[low]), pose)

    # -- threads --------------------------------------------------------------------------
    def _admit(self, frame: Frame, q_in: queue.Queue, summary: Summary, live: bool) -> bool:
        """Queue a frame read by the reader; False once stopped (the frame is not counted)."""
        while True:
            with self._gate:
                if self.stop_event.is_set():
                    return False
                try:
                    q_in.put_nowait(frame)
                    summary.frames_in += 1
                    return True
                except queue.Full:
                    if live:  # newest wins: a frame still waiting for inference is stale
                        try:
                            q_in.get_nowait()
                            summary.dropped += 1
                        except queue.Empty:
                            pass
                        continue
            self.stop_event.wait(0.005)

    def _reading_over(self, q_in: queue.Queue) -> bool:
        """True when no frame will enter ``q_in`` again and it is empty (read to the end, or stopped)."""
        if self._reader_done.is_set():
            return q_in.empty()
        if self.stop_event.is_set():
            with self._gate:  # the reader admits nothing after this, even if it is blocked in a read
                pass
            return q_in.empty()
        return False

    def _reader(self, source: VideoSource, q_in: queue.Queue, summary: Summary) -> None:
        t = time.perf_counter()
        try:
            for frame in source.frames():
                self.timer.add("read", time.perf_counter() - t)
                if not self._admit(frame, q_in, summary, source.is_live):
                    break
                t = time.perf_counter()
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            self._fail(e)
        finally:
            self._reader_done.set()

    def _next_item(self, q_out: queue.Queue) -> Any:
        """The writer's next frame, or _END (also when the calling thread is gone without sending it)."""
        while True:
            try:
                return q_out.get(timeout=POLL)
            except queue.Empty:
                if self._inference_over.is_set() and q_out.empty():
                    return _END

    def _writer(self, stage: WriterStage, q_out: queue.Queue) -> None:
        try:
            stage.run(lambda: self._next_item(q_out), _END)
        except BaseException as e:  # noqa: BLE001 - re-raised by run() after the other threads end
            self._fail(e)
            while self._next_item(q_out) is not _END:  # keep the calling thread from blocking on a full queue
                pass

    def run(self, source: VideoSource) -> Summary:
        """Process ``source`` to the end (or ``stop()``); outputs are closed and playable on every exit.

        A ``KeyboardInterrupt`` (a second Ctrl-C) is re-raised after the outputs are closed.
        """
        cfg, stop = self.cfg, self.stop_event
        summary = Summary(live=source.is_live)
        depth = 1 if source.is_live else max(1, cfg.queue_size)
        q_in: queue.Queue = queue.Queue(maxsize=depth)
        q_det: queue.Queue = queue.Queue(maxsize=min(2, depth))  # read-ahead is in q_in; this only overlaps
        q_out: queue.Queue = queue.Queue(maxsize=max(1, cfg.queue_size))
        self._reader_done.clear()
        self._inference_over.clear()
        stage = WriterStage(cfg, source.fps, source.is_live, self.pose.info.joint_names, self.renderer, self.timer,
                            summary, self.progress, on_quit=self.stop, time_base=getattr(source, "time_base", None))
        stage.open()  # before any frame is read: an output that cannot be written fails the run here
        detector = _DetectorThread(self, q_in, q_det, lambda: self._reading_over(q_in), summary)
        reader = threading.Thread(target=self._reader, args=(source, q_in, summary), name="reader", daemon=True)
        writer = threading.Thread(target=self._writer, args=(stage, q_out), name="writer", daemon=True)
        deadline: list[float] = []

        def past_deadline() -> bool:
            if stop.is_set() and not deadline:
                deadline.append(time.monotonic() + cfg.stop_timeout)
            return bool(deadline) and time.monotonic() > deadline[0]

        self._detect_now = lambda f: detector.request(f, past_deadline)
        t_start = time.perf_counter()
        reader.start()
        detector.thread.start()
        writer.start()
        previous: Poses | None = None
        try:
            while not past_deadline():
                try:
                    item = q_det.get(timeout=POLL)
                except queue.Empty:
                    if not detector.thread.is_alive() and q_det.empty():
                        break
                    continue
                if item is _END:
                    break
                frame, det = item
                try:
                    poses = self.process(frame, previous, det)
                except _Abandoned:
                    break
                previous = poses
                if frame.ground_truth is not None:
                    score_demo(summary, frame.ground_truth, poses)
                if not self._hand_to_writer(q_out, (frame, poses), writer):
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        except BaseException as e:  # noqa: BLE001 - re-raised after the outputs are closed
            self._fail(e)
        finally:
            self._inference_over.set()
            detector.done.set()
            stop.set()
            source.stop()
            self._detect_now = self._timed_detect
            self._hand_to_writer(q_out, _END, writer)
            while writer.is_alive():  # the outputs are being closed; a second Ctrl-C still gets through
                writer.join(POLL)
            reader.join(POLL)
            detector.thread.join(POLL)
        summary.seconds = time.perf_counter() - t_start
        lost = summary.frames_in - summary.dropped - summary.frames_out  # dropped so far: stale live frames
        summary.dropped += source.dropped
        summary.corrupt = source.corrupt
        summary.stage_ms = self.timer.per_frame_ms(max(1, summary.frames_out))
        if reader.is_alive():
            log.debug("the source is blocked in a read; it is left to end with the process")
        if self.errors:
            raise self.errors[0]
        audio = getattr(source, "audio_path", None)
        if cfg.audio and audio is not None and stage.mp4 is not None and stage.mp4.frames:
            from realtime.audio import carry_audio

            carry_audio(cfg.output, audio, stage.first_timestamp or 0.0)
        if lost > 0:
            log.warning("%d frames read were not written (%s)", lost,
                        f"not finished within {cfg.stop_timeout:g} s of the stop" if deadline else "lost")
        return summary

    @staticmethod
    def _hand_to_writer(q_out: queue.Queue, item: Any, writer: threading.Thread) -> bool:
        """Queue ``item`` for the writer; False when the writer has ended (an output failed)."""
        while writer.is_alive():
            try:
                q_out.put(item, timeout=POLL)
                return True
            except queue.Full:
                pass
        return False
