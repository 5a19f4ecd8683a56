"""Carry a video file's sound into the annotated MP4 (after the video is written).

The pipeline works on pictures only; once the MP4 is closed, its video packets and the
source's audio are muxed into a new file (the video copied untouched, the audio copied
when MP4 can hold its codec, else encoded to AAC), cut to the video's span, and moved
over the MP4.  If anything fails the video-only MP4 stays and a warning says why.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

__all__ = ["carry_audio"]

MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus"}  # copied as they are; anything else becomes AAC


def _timed(packets: Iterator[Any]) -> Iterator[tuple[float, Any]]:
    for pkt in packets:
        if pkt.dts is None and pkt.pts is None:
            continue  # a flush packet
        t = pkt.dts if pkt.dts is not None else pkt.pts
        yield float(t * pkt.time_base), pkt


class _AacEncoder:
    """Audio that MP4 cannot hold (PCM in an AVI, Vorbis ...) re-encoded to AAC in the encoder's frame size."""

    def __init__(self, out: Any, src: Any) -> None:
        import av

        rate = src.rate or 48000
        channels = src.codec_context.channels or 2
        # an unnamed layout ('1 channels', as PCM in an AVI has) is refused by the AAC encoder
        layout = {1: "mono", 2: "stereo"}.get(channels, src.layout)
        self.out, self.stream = out, out.add_stream("aac", rate=rate)
        self.stream.layout = layout
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self.fifo = av.AudioFifo()
        self.samples = 0

    def _drain(self, final: bool = False) -> None:
        size = self.stream.codec_context.frame_size or 1024
        while self.fifo.samples >= size or (final and self.fifo.samples):
            frame = self.fifo.read(min(size, self.fifo.samples) if final else size)
            frame.pts, self.samples = self.samples, self.samples + frame.samples
            self.out.mux(self.stream.encode(frame))

    def add(self, frames: Any) -> None:
        for frame in frames:
            frame.pts = None
            for f in self.resampler.resample(frame):
                self.fifo.write(f)
        self._drain()

    def finish(self) -> None:
        self._drain(final=True)
        self.out.mux(self.stream.encode(None))


def carry_audio(video: str | os.PathLike, source: str | os.PathLike, start: float = 0.0) -> bool:
    """Mux ``source``'s first audio stream into ``video`` (an MP4 whose time 0 is ``start`` s into the source).

    Returns True when the MP4 now has sound; on any failure it is left as it was.
    """
    import av

    video, tmp = Path(video), Path(video).with_name(Path(video).name + ".audio.tmp")
    try:
        with av.open(str(video)) as vin, av.open(str(source)) as ain:
            vs, as_ = vin.streams.video[0], ain.streams.audio[0]
            end = float(vin.duration / 1e6) if vin.duration else None
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                ov = out.add_stream_from_template(vs)
                copy = as_.codec_context.name in MP4_AUDIO
                enc = None if copy else _AacEncoder(out, as_)
                oa = out.add_stream_from_template(as_) if copy else enc.stream
                vpk = _timed(vin.demux(vs))
                apk = _timed(ain.demux(as_))
                v, a = next(vpk, None), next(apk, None)
                while v is not None or a is not None:
                    if a is None or (v is not None and v[0] <= a[0] - start):
                        v[1].stream = ov
                        out.mux(v[1])
                        v = next(vpk, None)
                        continue
                    t, pkt = a
                    a = next(apk, None)
                    if t < start or (end is not None and t - start >= end):
                        continue
                    if copy:
                        shift = int(round(start / pkt.time_base))
                        pkt.pts = None if pkt.pts is None else pkt.pts - shift
                        pkt.dts = None if pkt.dts is None else pkt.dts - shift
                        pkt.stream = oa
                        out.mux(pkt)
                    else:
                        enc.add(pkt.decode())
                if enc is not None:
                    enc.finish()
        os.replace(tmp, video)
        return True
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as e:
        log.warning("the sound of %s could not be carried into %s (%s); the video has none", Path(source).name,
                    video.name, getattr(e, "strerror", None) or e)
        tmp.unlink(missing_ok=True)
        return False
    except BaseException:  # a second Ctrl-C: the silent MP4 stays, the half-made one goes
        tmp.unlink(missing_ok=True)
        raise

