"""Faults injected into a real run of the command line: full disks, stalled inputs, signals (issue 17).

Each case runs ``python -m realtime.run`` in a subprocess, as a user or a service manager
would, and checks the exit code, the one ``error:`` line and what was kept on disk.
A full disk is a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored): writes past it fail
with EFBIG exactly as they fail with ENOSPC on a full file system, without needing root.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
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
