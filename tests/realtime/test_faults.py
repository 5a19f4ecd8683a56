"""Faults injected into a real run of the command line: full disks, stalled inputs, signals (issue 17).

Each case runs ``python -m realtime.run`` in a subprocess, as a user or a service manager
would, and checks the exit code, the one ``error:`` line and what was kept on disk.
A full disk is a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored): writes past it fail
with EFBIG exactly as they fail with ENOSPC on a full file system, without needing root.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.realtime.conftest import synthetic_frames, write_video
from tests.realtime.test_run import REPO

CLI = "import sys\nfrom realtime.run import main; raise SystemExit(main(sys.argv[1:]))"


def _limit_file_size(limit: int):  # noqa: ANN202 - a preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def cli(args: list[str], file_limit: int | None = None, **kw) -> subprocess.Popen:
    """The command line in a subprocess (stdout/stderr piped, text)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limit_file_size(file_limit) if file_limit is not None else None, **kw)


def models_args(models) -> list[str]:
    return ["--pose", str(models["pose"]), "--detector", str(models["detector"])]


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "c.mp4", synthetic_frames(30, (160, 120)), fps=10)


def test_mp4_on_a_full_disk_from_the_first_write(models, clip, tmp_path) -> None:
    """Issue 17.2: the MP4 cannot be written at all; closing the failed container crashed (exit 139)."""
    p = cli(["--source", str(clip), *models_args(models), "-o", str(tmp_path / "out.mp4"), "--quiet"], file_limit=0)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2, (p.returncode, err)
    assert "Traceback" not in err and len(error_lines(err)) == 1, err
    assert "out.mp4" in error_lines(err)[0] and "File too large" in error_lines(err)[0]


def mpegts_bytes(path: Path, n: int, size: tuple[int, int] = (160, 120), fps: int = 10) -> bytes:
    from tests.realtime.test_cli_sources import write_mpegts

    return write_mpegts(path, synthetic_frames(n, size), fps).read_bytes()


def open_fifo_for_writing(path: Path, timeout: float = 60.0):  # noqa: ANN201 - a binary file
    """The write end of a FIFO, once the run has opened the read end (never blocks the test forever)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:  # ENXIO: no reader yet
                raise
            time.sleep(0.05)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb")


def jsonl_frames(path: Path) -> int:
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def wait_until_idle(path: Path, at_least: int, timeout: float = 90.0, quiet: float = 1.5) -> int:
    """Wait until ``path`` (JSONL) has ``at_least`` frames and has not grown for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = jsonl_frames(path)
        if n != last:
            last, since = n, time.monotonic()
        elif n >= at_least and time.monotonic() - since >= quiet:
            return n
        time.sleep(0.1)
    raise AssertionError(f"the run wrote {last} frames, expected at least {at_least}")


def summary_counts(out: str) -> tuple[int, int]:
    m = re.search(r"frames in (\d+), out (\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def decoded_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_the_input_stalls(models, tmp_path, sig) -> None:
    """Issue 17.3: a FIFO whose writer stops sending; the first signal must close valid outputs at once.

    The old code waited on the stalled queue forever: two signals did nothing, a third exited
    130 with the MP4 unplayable and the JSON left as .tmp.
    """
    fifo = tmp_path / "in.ts"
    os.mkfifo(fifo)
    data = mpegts_bytes(tmp_path / "src.ts", 60)
    outs = {"mp4": tmp_path / "out.mp4", "json": tmp_path / "out.json", "jsonl": tmp_path / "out.jsonl"}
    p = cli(["--source", str(fifo), *models_args(models), "-o", str(outs["mp4"]), "--json", str(outs["json"]),
             "--jsonl", str(outs["jsonl"])])
    try:
        with open_fifo_for_writing(fifo) as w:
            w.write(data)
            w.flush()  # and then nothing more: the writer stalls, keeping the FIFO open
            wait_until_idle(outs["jsonl"], at_least=20)
            p.send_signal(sig)
            t0 = time.monotonic()
            out, err = p.communicate(timeout=30)
            stop_s = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, (p.returncode, err)
    assert "stopping" in err
    n_in, n_out = summary_counts(out)
    assert n_in == n_out >= 20, "every frame read was written"
    assert decoded_frames(outs["mp4"]) == n_out == jsonl_frames(outs["jsonl"])
    assert {r["image_id"] for r in json.loads(outs["json"].read_text())} <= set(range(n_out))
    assert not outs["json"].with_suffix(".json.tmp").exists()
    print(f"stopped {stop_s:.2f} s after {signal.Signals(sig).name}")


def _signal_on_pose_calls(monkeypatch, calls: set[int], delay: float = 0.05) -> None:
    """SIGINT to this process when the pose stage reaches the given calls (slowed, so frames wait in the queues)."""
    from realtime.pose import PoseEstimator

    orig = PoseEstimator.estimate
    count = [0]

    def estimate(self, crops):  # noqa: ANN001, ANN202
        count[0] += 1
        if count[0] in calls:
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(delay)
        return orig(self, crops)

    monkeypatch.setattr(PoseEstimator, "estimate", estimate)


def _in_process_args(models, clip, tmp_path) -> list[str]:
    return ["--source", str(clip), *models_args(models), "-o", str(tmp_path / "out.mp4"),
            "--jsonl", str(tmp_path / "out.jsonl")]


def test_second_ctrl_c_exits_130_with_outputs_closed(models, clip, tmp_path, monkeypatch, capsys) -> None:
    """Issue 17.3/17.8: a second Ctrl-C while the first is finishing exits 130 (it exited 0)."""
    from realtime.run import main

    _signal_on_pose_calls(monkeypatch, {5, 6})
    assert main(_in_process_args(models, clip, tmp_path)) == 130
    assert "interrupted" in capsys.readouterr().err
    n = decoded_frames(tmp_path / "out.mp4")
    assert 1 <= n < 30 and jsonl_frames(tmp_path / "out.jsonl") == n, "what was written is closed and valid"


def test_first_ctrl_c_finishes_every_frame_read(models, clip, tmp_path, monkeypatch, capsys, caplog) -> None:
    """Issue 19: the first Ctrl-C stops reading and finishes the frames in flight: frames in == out."""
    from realtime.run import main

    _signal_on_pose_calls(monkeypatch, {5})
    assert main(_in_process_args(models, clip, tmp_path)) == 0
    n_in, n_out = summary_counts(capsys.readouterr().out)
    assert 5 <= n_in == n_out < 30 and decoded_frames(tmp_path / "out.mp4") == n_out
    assert any("SIGINT: stopping" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def clip90(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip90") / "c.mp4", synthetic_frames(90, (320, 240)), fps=10)


def _three_outputs(tmp_path: Path) -> dict[str, Path]:
    return {"mp4": tmp_path / "out.mp4", "json": tmp_path / "out.json", "jsonl": tmp_path / "out.jsonl"}


def _output_args(outs: dict[str, Path]) -> list[str]:
    return ["-o", str(outs["mp4"]), "--json", str(outs["json"]), "--jsonl", str(outs["jsonl"])]


def test_disk_full_mid_run_keeps_the_json_written(models, clip90, tmp_path) -> None:
    """Issue 17.6: the MP4 fills the disk after some frames: one error line, exit 2 (was a traceback, exit 1);
    the JSON and JSON Lines hold every frame written before it, complete."""
    outs = _three_outputs(tmp_path)
    p = cli(["--source", str(clip90), *models_args(models), *_output_args(outs), "--quiet"], file_limit=120_000)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 2, (p.returncode, err)
    assert "Traceback" not in err and len(error_lines(err)) == 1, err
    assert "out.mp4" in error_lines(err)[0] and "File too large" in error_lines(err)[0]
    lines = outs["jsonl"].read_text().splitlines()
    frames = [json.loads(x)["frame"] for x in lines[1:]]  # every line complete
    assert 5 <= len(frames) < 90 and frames == list(range(len(frames)))
    results = json.loads(outs["json"].read_text())  # a complete list
    assert {r["image_id"] for r in results} == set(frames)


def test_jsonl_reader_going_away_leaves_a_playable_mp4(models, clip90, tmp_path) -> None:
    """Issue 19 (sinks): a writer failing mid-run (the JSON Lines consumer closes its FIFO) still leaves the MP4
    finalised and playable with the frames written; one error line, exit 2."""
    fifo = tmp_path / "poses.jsonl"
    os.mkfifo(fifo)
    mp4 = tmp_path / "out.mp4"
    p = cli(["--source", str(clip90), *models_args(models), "-o", str(mp4), "--jsonl", str(fifo), "--quiet"])
    try:
        deadline = time.monotonic() + 60
        while True:  # the read end, once the run has opened the write end
            try:
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with os.fdopen(fd, "rb") as r:
            got = b""
            while got.count(b"\n") < 11:  # the joint names and 10 frames, then the consumer goes away
                chunk = r.read(65536) if select.select([r], [], [], 60)[0] else b"timeout"
                assert chunk and chunk != b"timeout", "the run stopped writing"
                got += chunk
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 2, (p.returncode, err)
    assert len(error_lines(err)) == 1 and "Broken pipe" in error_lines(err)[0], err
    n = decoded_frames(mp4)
    assert 10 <= n < 90, "the MP4 is finalised with the frames written before the failure"


@pytest.mark.parametrize("flag", ["--json", "-o"])
def test_json_and_mp4_never_replace_a_fifo(models, clip, tmp_path, flag) -> None:
    """Issue 17.7: --json renamed its temporary file over whatever was at PATH (a FIFO, a device node)."""
    target = tmp_path / ("x.json" if flag == "--json" else "x.mp4")
    os.mkfifo(target)
    p = cli(["--source", str(clip), *models_args(models), flag, str(target), "--quiet", "--frames", "3"])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and len(error_lines(err)) == 1 and "FIFO" in error_lines(err)[0], err
    assert stat.S_ISFIFO(os.lstat(target).st_mode), "the FIFO is still there"


def test_unwritable_jsonl_is_found_before_the_run(models, clip, tmp_path) -> None:
    """Issue 17.6: --jsonl /dev/full fails before any frame, and leaves no empty MP4 behind."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    mp4 = tmp_path / "out.mp4"
    p = cli(["--source", str(clip), *models_args(models), "-o", str(mp4), "--jsonl", "/dev/full", "--quiet"])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and error_lines(err) == ["error: cannot write /dev/full: No space left on device"], err
    assert not mp4.exists()
