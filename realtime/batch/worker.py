"""One batch worker: loads the models once, then runs ``realtime.pipeline`` on one video at a time.

Ray-free on purpose: the Ray layer (:mod:`realtime.batch.runner`) wraps this class as a
long-lived actor, and tests can drive it directly.  Each video runs exactly the stages
``python -m realtime.run`` runs (``open_source`` -> :class:`~realtime.pipeline.Pipeline`
with a fresh tracker) on models built the same way, so its outputs are the same.  They
are written into ``DIR/.partial/<stem>/`` and moved into ``DIR`` only when the video is
complete, so a file in ``DIR`` is never half written.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.batch.inputs import OUTPUT_EXTS, PARTIAL_DIR

log = logging.getLogger(__name__)

__all__ = ["WorkerSettings", "VideoJob", "VideoWorker", "one_line"]


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker needs: the models and the pipeline options (``realtime.run``'s, same defaults)."""

    pose: str | None = None  # a file or a bundled name; None: mca_tiny_real, as realtime.run on a file
    detector: str | None = None  # None: ssdlite
    backend: str = "ort"
    precision: str | None = None
    device: str | None = None
    threads: int = 1  # ONNX Runtime threads per model
    conf: float | None = None
    max_persons: int = 16
    detect_every: int = 1
    smooth: bool = True
    crop_padding: float | None = None
    flip_test: bool = False
    max_frames: int | None = None
    video: bool = True  # write the annotated MP4 (JSON and JSON Lines are always written)
    int8: str | None = None  # INT8 on ONNX Runtime's CPU provider: auto/on/off (None: realtime.run's default)
    kpt_thr: float | None = None  # joints under this confidence are not drawn (None: the pipeline's default)
    audio: bool = True  # carry a video's sound into its MP4
    verify_conf: float | str | None = "auto"  # pose-verified boxes under the threshold (PipelineConfig.verify_conf)
    pace: bool = False  # read at the video's own frame rate (as live feeds arrive) instead of as fast as it decodes


@dataclass(frozen=True)
class VideoJob:
    """One work unit: a video, where its outputs go, and which attempt this is."""

    input: str
    out_dir: str
    stem: str
    attempt: int = 1

    def outputs(self, video: bool = True) -> dict[str, str]:
        """Output file names (relative to ``out_dir``), by kind."""
        return {k: self.stem + ext for k, ext in OUTPUT_EXTS.items() if video or k != "video"}


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one line: its message's first line, with the type when the message alone is vague."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = msg if msg and type(e).__name__ in ("SourceError", "SinkError", "ModelError") else \
        f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _quiet_native_logs() -> None:
    """FFmpeg's and OpenCV's own messages would go to the worker's log for every odd frame; errors only."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import av.logging

        av.logging.set_level(av.logging.ERROR)
    except (ImportError, AttributeError):  # pragma: no cover - old PyAV
        pass


def _limit_opencv_threads(n: int) -> None:
    """OpenCV's resize and warps would use every core of the node in each worker; a worker gets its share.

    (Same results: OpenCV splits the image into stripes, each computed the same way.  The H.264 encoder and
    decoder threads are the sinks' and sources' own and not capped here.)
    """
    import cv2

    cv2.setNumThreads(max(1, n))


class VideoWorker:
    """Holds a detector and a pose estimator; ``process(job)`` runs one video and returns its record.

    ``progress()`` and ``stop()`` may be called from another thread while ``process`` runs
    (the Ray actor has two threads: one works, one answers).
    """

    def __init__(self, settings: WorkerSettings) -> None:
        from realtime.detectors import PersonDetector
        from realtime.models import load_model, resolve_model
        from realtime.pose import PoseEstimator

        _quiet_native_logs()
        self.settings = s = settings
        _limit_opencv_threads(s.threads)
        pose_path = resolve_model(s.pose, "pose")
        # as realtime.run: the pose model's attention outputs are not computed (they are only drawn on request)
        pose_backend = load_model(pose_path, backend=s.backend, precision=s.precision, device=s.device,
                                  threads=s.threads, int8=s.int8,
                                  outputs=["heatmaps"] if pose_path.suffix == ".onnx" else None)
        det_backend = load_model(resolve_model(s.detector, "detector"), backend=s.backend, precision=s.precision,
                                 device=s.device, threads=s.threads, int8=s.int8)
        self.estimator = PoseEstimator(pose_backend, flip_test=s.flip_test)
        self.detector = PersonDetector(det_backend, conf=s.conf, max_persons=s.max_persons)
        self._lock = threading.Lock()
        self._frames = 0
        self._pipeline: Any = None
        self._source: Any = None
        self._stopped = False
        self.where = f"{socket.gethostname()}:{os.getpid()}"

    def ready(self) -> dict[str, Any]:
        """Who this worker is and what it runs on (the driver waits for this before handing out videos)."""
        return {"worker": self.where, "pose": Path(self.estimator.backend.path).name,
                "detector": Path(self.detector.backend.path).name,
                "backend": type(self.estimator.backend).__name__, "threads": self.settings.threads}

    def progress(self) -> int:
        """Frames written so far of the video being processed."""
        return self._frames

    def _tick(self, n: int) -> None:
        self._frames += n

    def stop(self) -> None:
        """Stop the running video soon (Ctrl-C twice on the driver); it is recorded as interrupted."""
        with self._lock:
            self._stopped = True
            for part in (self._pipeline, self._source):
                if part is not None:
                    part.stop()

    def process(self, job: VideoJob | dict[str, Any]) -> dict[str, Any]:
        """Run one video; never raises for a bad video: the record says ``failed`` and why, in one line."""
        from realtime.pipeline import Pipeline, PipelineConfig
        from realtime.sources import open_source

        if isinstance(job, dict):
            job = VideoJob(**job)
        s = self.settings
        out_dir = Path(job.out_dir)
        names = job.outputs(s.video)
        rec: dict[str, Any] = {"input": job.input, "status": "failed", "frames": 0, "seconds": 0.0, "persons": 0,
                               "error": None, "outputs": None, "stem": job.stem, "attempts": job.attempt,
                               "worker": self.where, "corrupt_frames": 0}
        partial = out_dir / PARTIAL_DIR / job.stem
        t0 = time.perf_counter()
        with self._lock:
            self._frames, self._stopped = 0, False
        try:
            shutil.rmtree(partial, ignore_errors=True)  # what an earlier, killed attempt left
            partial.mkdir(parents=True, exist_ok=True)
            source = open_source(job.input, max_frames=s.max_frames, joint_set=self.estimator.info.joint_set,
                                 pace=s.pace)
            cfg = PipelineConfig(detect_every=s.detect_every, max_persons=s.max_persons, smooth=s.smooth,
                                 crop_padding=s.crop_padding, audio=s.audio,
                                 kpt_thr=PipelineConfig.kpt_thr if s.kpt_thr is None else s.kpt_thr,
                                 verify_conf=s.verify_conf,
                                 output=partial / names["video"] if s.video else None,
                                 json_path=partial / names["json"], jsonl_path=partial / names["jsonl"])
            pipeline = Pipeline(self.detector, self.estimator, cfg, progress=self._tick)
            with self._lock:
                self._pipeline, self._source = pipeline, source
                if self._stopped:
                    pipeline.stop()
                    source.stop()
            with source:
                summary = pipeline.run(source)
            rec.update(frames=summary.frames_out, persons=summary.persons, corrupt_frames=summary.corrupt)
            if self._stopped or summary.interrupted:
                rec.update(status="interrupted", error="stopped before the end of the video")
            elif summary.frames_out == 0:
                rec["error"] = f"no frames could be read from {job.input}"
            else:
                for name in names.values():
                    os.replace(partial / name, out_dir / name)
                rec.update(status="done", outputs=names)
        except Exception as e:  # noqa: BLE001 - one bad video must not stop the job: recorded, in one line
            rec["error"] = one_line(e)
        finally:
            with self._lock:
                self._pipeline = self._source = None
            shutil.rmtree(partial, ignore_errors=True)
            try:
                (out_dir / PARTIAL_DIR).rmdir()  # gone once no video is in flight
            except OSError:
                pass
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        return rec
