"""``python -m mca.summary``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mca
from mca.summary import main, model_stats


@pytest.mark.parametrize("name", [n for n in mca.list_models() if n not in ("mca_paper", "mca_4s")])
def test_summary_prints_each_config(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name]) == 0
    out = capsys.readouterr().out
    stats = model_stats(name)
    assert name in out and f"{stats.params:,d}" in out and f"{stats.macs:,d}" in out


def test_summary_unknown_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["not_a_model"]) == 2
    assert "valid:" in capsys.readouterr().err


def test_summary_cli_markdown() -> None:
    r = subprocess.run([sys.executable, "-m", "mca.summary", "mca_tiny", "--markdown"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("| config |") and "`mca_tiny`" in r.stdout
