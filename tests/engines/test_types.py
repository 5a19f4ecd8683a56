"""CI check 4 (issue #13): mypy on ``engines/`` against NVIDIA's TensorRT API as ``tensorrt-stubs`` 10.13 types it;
and the layering rule (``engines`` imports nothing from ``realtime`` or ``calibration``).

``tensorrt-stubs`` is fetched with ``pip download --no-deps`` and put on MYPYPATH, never installed: it depends on
the full ``tensorrt`` (whose libraries cannot be installed without a GPU toolchain), and installed it would add a
``tensorrt/`` folder that makes ``importlib.util.find_spec("tensorrt")`` succeed on a machine without TensorRT.
Its 10.13.0.35.1 release has syntax errors that stop mypy (parameters named ``in``; one parameter without a default
after defaulted ones); they are repaired here, textually, before checking.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.engines.plugins.conftest import cached_wheel

REPO = Path(__file__).resolve().parents[2]
STUBS = "10.13.0.35.1"
CONFIG = """[mypy]
python_version = 3.10
ignore_missing_imports = True
follow_imports = silent

[mypy-tensorrt.*,tensorrt_bindings.*]
ignore_errors = True

[mypy-torch.*,triton.*,onnxruntime.*]
follow_imports = skip
"""


def _stubs(dest: Path) -> Path:
    wheel = cached_wheel(f"tensorrt-stubs=={STUBS}", f"tensorrt_stubs-{STUBS}-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest, [n for n in z.namelist() if n.endswith(".pyi")])
    api = dest / "tensorrt_bindings" / "tensorrt.pyi"
    text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", api.read_text())
    text = text.replace("power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = ...)")
    api.write_text(text)
    return dest


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (the 'dev' extra)")
def test_mypy_on_engines_with_tensorrt_stubs(tmp_path) -> None:
    stubs = _stubs(tmp_path / "stubs")
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(CONFIG)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(cfg), "--cache-dir",
                        str(tmp_path / "cache"), "engines/"], cwd=REPO, capture_output=True, text=True, timeout=1200,
                       env={"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Success" in r.stdout


def test_engines_imports_nothing_from_realtime_or_calibration() -> None:
    bad = []
    for f in sorted((REPO / "engines").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{f.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in ("realtime", "calibration")]
    assert not bad, bad


def test_engines_detector_families_are_the_runtimes() -> None:
    from engines.detector_meta import DETECTOR_FAMILY_NAMES
    from realtime.detectors import DETECTOR_FAMILIES

    assert set(DETECTOR_FAMILY_NAMES) <= set(DETECTOR_FAMILIES)
