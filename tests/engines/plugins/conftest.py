"""NVIDIA's own code for the plugin tests: ``tensorrt-cu12/cu13-bindings`` wheels from PyPI (pure-Python part).

The wheels (about 1.3 MB each) are fetched once with ``pip download --no-deps`` into ``~/.cache/mca-pose/wheels``
(``MCA_POSE_WHEELS`` overrides it), outside the repository; a test skips, saying why, when the index is unreachable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# (CUDA major, version): the first TensorRT with aot_impl, the one tensorrt-stubs describes, and the newest 11.x.
BINDINGS = [("cu12", "10.9.0.34"), ("cu12", "10.13.3.9"), ("cu12", "11.4.0.106"), ("cu13", "11.4.0.106")]


def wheel_cache() -> Path:
    return Path(os.environ.get("MCA_POSE_WHEELS") or Path.home() / ".cache" / "mca-pose" / "wheels")


def cached_wheel(requirement: str, pattern: str) -> Path:
    """A wheel from the cache, fetched with ``pip download --no-deps`` if needed (skips when pip cannot)."""
    cache = wheel_cache()
    found = sorted(cache.glob(pattern))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", str(cache), requirement]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot fetch {requirement} with pip: {e}")
        found = sorted(cache.glob(pattern))
        if r.returncode or not found:
            last = (r.stderr.strip().splitlines() or ["no wheel for this platform"])[-1]
            pytest.skip(f"package index unreachable or no {requirement} wheel here: {last}")
    return found[-1]


def bindings_wheel(cuda: str, version: str) -> Path:
    """The cached NVIDIA bindings wheel of one TensorRT version and CUDA major."""
    return cached_wheel(f"tensorrt-{cuda}-bindings=={version}", f"tensorrt_{cuda}_bindings-{version}-*.whl")


def extract_plugin_package(wheel: Path, dest: Path) -> Path:
    """Only ``tensorrt_bindings/plugin/*.py`` (NVIDIA's pure Python); the compiled ``tensorrt.so`` stays out."""
    root = dest / "tensorrt_bindings"
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.startswith("tensorrt_bindings/plugin/") and n.endswith(".py")]
        if not names:
            pytest.fail(f"{wheel.name} has no tensorrt_bindings/plugin package")
        z.extractall(dest, names)
    return root


@pytest.fixture(scope="session")
def nvidia_plugin_package(tmp_path_factory):
    """``get(cuda, version) -> dir`` holding NVIDIA's ``plugin/`` package of that wheel."""
    done: dict[tuple[str, str], Path] = {}

    def get(cuda: str, version: str) -> Path:
        if (cuda, version) not in done:
            wheel = bindings_wheel(cuda, version)
            done[(cuda, version)] = extract_plugin_package(wheel, tmp_path_factory.mktemp(f"{cuda}-{version}"))
        return done[(cuda, version)]

    return get
