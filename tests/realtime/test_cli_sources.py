"""The command line on every kind of source, as a user runs it (with the progress bar, without --quiet)."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from realtime.run import main
from tests.realtime.conftest import synthetic_frames, write_video
from tests.realtime.test_run import REPO, _decode, _run_subprocess


def _outs(tmp_path: Path) -> list[str]:
    return ["--output", str(tmp_path / "out.mp4"), "--jsonl", str(tmp_path / "out.jsonl")]


def _models(models) -> list[str]:
    return ["--pose", str(models["pose"]), "--detector", str(models["detector"])]


def _jsonl_frames(tmp_path: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()[1:]]


def _write_stream(path: Path, frames: list[np.ndarray], fps: int, fmt: str) -> Path:
    """Frames encoded with libx264 into a container-less or streaming format (``h264``, ``mpegts``)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        c.mux(s.encode())
    return path


def write_raw_h264(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """An elementary H.264 stream (no container, no timestamps: the rate is only in the SPS)."""
    return _write_stream(path, frames, fps, "h264")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "c.mp4", synthetic_frames(12, (160, 120)), fps=10)


def test_folder_holding_a_video_with_the_progress_bar(models, clip, tmp_path) -> None:
    """A folder with a video has no known length; without --quiet this crashed in tqdm (issue 17.1)."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.mp4").write_bytes(clip.read_bytes())
    assert main(["--source", str(d), *_models(models), *_outs(tmp_path)]) == 0
    assert _decode(tmp_path / "out.mp4")[0] == 12


def test_raw_h264_with_the_progress_bar(models, tmp_path) -> None:
    src = write_raw_h264(tmp_path / "in.h264", synthetic_frames(8, (160, 120)), fps=10)
    assert main(["--source", str(src), *_models(models), *_outs(tmp_path)]) == 0
    assert _decode(tmp_path / "out.mp4")[0] == 8


def write_mpegts(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """An MPEG-TS stream (what `ffmpeg ... -f mpegts -` pipes): through a pipe it has no known length."""
    return _write_stream(path, frames, fps, "mpegts")


@pytest.fixture(scope="module")
def clip_ts(tmp_path_factory) -> Path:
    return write_mpegts(tmp_path_factory.mktemp("clip_ts") / "c.ts", synthetic_frames(12, (160, 120)), fps=10)


@pytest.mark.parametrize("spec,container", [("-", "ts"), ("/dev/stdin", "ts"), ("-", "mp4")])
def test_pipe_on_stdin_with_the_progress_bar(models, clip, clip_ts, tmp_path, spec, container) -> None:
    """`ffmpeg ... -f mpegts - | python -m realtime.run --source -` (a pipe: not seekable; a TS has no length)."""
    src = clip_ts if container == "ts" else clip
    args = ["--source", spec, *_models(models), *_outs(tmp_path)]
    code = "import sys\nfrom realtime.run import main; raise SystemExit(main(sys.argv[1:]))"
    cat = subprocess.Popen(["cat", str(src)], stdout=subprocess.PIPE)
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, stdin=cat.stdout, capture_output=True,
                       text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    cat.wait()
    assert p.returncode == 0, p.stderr
    assert _decode(tmp_path / "out.mp4")[0] == 12 and len(_jsonl_frames(tmp_path)) == 12


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a: object) -> None:
        pass


def test_live_stream_with_the_progress_bar(models, clip, tmp_path) -> None:
    """An http:// stream is read like a camera (live: unknown length, newest frame wins)."""
    handler = functools.partial(_Quiet, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
        p = _run_subprocess(["--source", url, *_models(models), *_outs(tmp_path)])
        out, err = p.communicate(timeout=120)
    finally:
        server.shutdown()
    assert p.returncode == 0, err
    n = _decode(tmp_path / "out.mp4")[0]
    assert 1 <= n <= 12 and len(_jsonl_frames(tmp_path)) == n
    assert "frames in" in out, "the closing summary is printed"
