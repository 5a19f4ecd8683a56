"""The pipeline's last stage: draw, encode, write JSON and show, in the writer thread.

The outputs are opened together in the calling thread before the first frame is read
(so an unwritable one fails the run before it starts, and a half-opened set leaves no
empty files behind) and are closed on every exit, so what was processed before a fault
is kept: the MP4 playable, the JSON a complete list, the JSON Lines complete lines.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from realtime.sinks import CocoJsonWriter, JsonlWriter, Mp4Writer, Window, open_mp4_writer
from realtime.summary import StageTimer, Summary

if TYPE_CHECKING:
    from realtime.draw import Renderer
    from realtime.pipeline import PipelineConfig
    from realtime.types import Frame, Poses

log = logging.getLogger(__name__)

__all__ = ["WriterStage", "overlay_text"]


def overlay_text(fps: float | None, latency_ms: float | None, people: int) -> str:
    """The text drawn top left: frame rate once there is one, latency only for live sources, people."""
    parts = []
    if fps:
        parts.append(f"{fps:5.1f} fps")
    if latency_ms is not None:
        parts.append(f"{latency_ms:4.0f} ms")
    parts.append(f"{people} {'person' if people == 1 else 'people'}")
    return "  ".join(parts)


class WriterStage:
    """Opens the outputs of ``cfg``, then ``run(next_item)`` writes each (frame, poses) until ``next_item``
    returns ``end``; on any exit the outputs are closed."""

    def __init__(self, cfg: "PipelineConfig", fps: float, live: bool, joint_names: tuple[str, ...],
                 renderer: "Renderer", timer: StageTimer, summary: Summary,
                 progress: Callable[[int], None] | None = None, on_quit: Callable[[], None] | None = None,
                 time_base: Any = None) -> None:
        self.cfg, self.fps, self.live, self.joint_names = cfg, fps, live, joint_names
        self.renderer, self.timer, self.summary, self.progress = renderer, timer, summary, progress
        self.on_quit, self.time_base = on_quit, time_base
        self.stack = ExitStack()
        self.mp4: Mp4Writer | None = None
        self.coco: CocoJsonWriter | None = None
        self.jsonl: JsonlWriter | None = None
        self.window: Window | None = None
        self.first_timestamp: float | None = None  # where the MP4's time 0 lies in the source (for its sound)

    def open(self) -> "WriterStage":
        """Open every output now; if one cannot be opened, those opened are closed and the files they made removed."""
        cfg, made = self.cfg, []
        try:
            for path, make, attr in ((cfg.json_path, lambda p: CocoJsonWriter(p), "coco"),
                                     (cfg.jsonl_path, lambda p: JsonlWriter(p, self.joint_names), "jsonl"),
                                     (cfg.output, lambda p: open_mp4_writer(p, self.fps, cfg.encoder, timestamps=self.live,
                                                                           time_base=self.time_base), "mp4")):
                if path is None:
                    continue
                existed = Path(path).exists()
                setattr(self, attr, self.stack.enter_context(make(path)))
                if not existed:
                    made.append(Path(path))
            if cfg.show:
                self.window = self.stack.enter_context(Window())
        except BaseException:
            self.stack.close()
            for p in made:
                p.unlink(missing_ok=True)
            raise
        return self

    def close(self) -> None:
        """Close every output (each one even if another fails; the first failure is raised)."""
        self.stack.close()

    def run(self, next_item: Callable[[], Any], end: object) -> None:
        """The writer thread's loop; closes the outputs when ``next_item()`` returns ``end`` or on an error."""
        with self.stack:
            self._loop(next_item, end)

    def _loop(self, next_item: Callable[[], Any], end: object) -> None:
        cfg, summary, timer = self.cfg, self.summary, self.timer
        fps_ema, last, lat_ema = 0.0, None, None
        while True:
            item = next_item()
            if item is end:
                return
            frame, poses = item
            if self.first_timestamp is None:
                self.first_timestamp = frame.timestamp
            t0 = time.perf_counter()
            if last is not None:
                rate = 1 / max(t0 - last, 1e-6)
                fps_ema = 0.9 * fps_ema + 0.1 * rate if fps_ema else rate
            last = t0
            latency = 1000 * (t0 - frame.captured)
            summary.latency_ms.append(latency)
            if self.live:
                lat_ema = latency if lat_ema is None else 0.9 * lat_ema + 0.1 * latency
            if self.mp4 is not None or self.window is not None:
                text = overlay_text(fps_ema or None, lat_ema, len(poses)) if cfg.overlay else None
                img = self.renderer.draw(frame.image, poses, text)
                t1 = time.perf_counter()
                timer.add("draw", t1 - t0)
                if self.mp4 is not None:
                    self.mp4.write(img, frame.timestamp)
                    timer.add("encode", time.perf_counter() - t1)
                if self.window is not None and not self.window.show(img) and self.on_quit is not None:
                    self.on_quit()  # the user closed the window (q / Esc)
            self._write_json(frame, poses)
            summary.frames_out += 1
            summary.persons += len(poses)
            if self.progress is not None:
                self.progress(1)

    def _write_json(self, frame: "Frame", poses: "Poses") -> None:
        if self.coco is not None:
            self.coco.write(frame.index, poses, frame.file)
        if self.jsonl is not None:
            self.jsonl.write(frame.index, frame.timestamp, poses, frame.file)
