"""Which videos a batch job runs on, and the output names each one gets.

Inputs are files, folders, globs, or text files listing paths.  Expansion happens
on the driver, so the paths must be ones every worker sees at the same place (one
machine, or a filesystem shared by the cluster).
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Iterable

from realtime.sources import VIDEO_EXTS

log = logging.getLogger(__name__)

__all__ = ["InputError", "LIST_EXTS", "OUTPUT_EXTS", "RESERVED_STEMS", "PARTIAL_DIR", "expand_inputs",
           "assign_stems"]

LIST_EXTS = {".txt", ".lst", ".list"}  # a text file of paths, one a line
OUTPUT_EXTS = {"video": ".mp4", "json": ".json", "jsonl": ".jsonl"}
RESERVED_STEMS = {"manifest"}  # DIR/manifest.jsonl is the job's own file
PARTIAL_DIR = ".partial"  # DIR/.partial/<stem>/: a video's outputs while it runs, moved into DIR when done


class InputError(ValueError):
    """An input the user can fix (missing file, empty glob, bad list): one line, exit code 2."""


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _videos_in(folder: Path, recursive: bool) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and p.suffix.lower() in VIDEO_EXTS)


def _read_list(path: Path) -> list[str]:
    """Lines of a path list: blank lines and '#' comments skipped, relative paths taken from the list's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the path list {path}: {getattr(e, 'strerror', None) or e}") from None
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        p = Path(s).expanduser()
        out.append(str(p if p.is_absolute() else path.parent / p))
    return out


def _expand_one(spec: str, recursive: bool, from_list: Path | None) -> list[Path]:
    where = f" (listed in {from_list})" if from_list else ""
    p = Path(spec).expanduser()
    if p.is_dir():
        found = _videos_in(p, recursive)
        if not found:
            log.warning("no videos (%s) in %s%s", ", ".join(sorted(VIDEO_EXTS)), p, where)
        return found
    if p.is_file():
        if p.suffix.lower() in LIST_EXTS:
            if from_list is not None:
                raise InputError(f"{p}: a path list inside a path list ({from_list}) is not supported")
            found = []
            for item in _read_list(p):
                found += _expand_one(item, recursive, p)
            return found
        return [p]  # named explicitly: taken whatever its extension (a bad one fails alone, in the manifest)
    if _is_glob(spec):
        found = sorted(Path(m) for m in glob.glob(str(p), recursive=True)
                       if Path(m).is_file() and Path(m).suffix.lower() in VIDEO_EXTS)
        if not found:
            raise InputError(f"no videos match {spec}{where}")
        return found
    raise InputError(f"no such file or folder: {spec}{where}")


def expand_inputs(specs: Iterable[str], recursive: bool = False) -> list[Path]:
    """Absolute video paths for ``specs``, in the order given (folders and globs sorted), duplicates dropped.

    A folder gives the video files in it (``recursive``: and below); a glob the video files it
    matches (``**`` recurses); a ``.txt``/``.lst``/``.list`` file one input per line; any other
    file is taken as a video.  Raises :class:`InputError` for a path that does not exist, a glob
    that matches nothing, or when nothing at all is found.
    """
    seen: set[str] = set()
    out: list[Path] = []
    for spec in specs:
        for p in _expand_one(spec, recursive, None):
            a = Path(os.path.abspath(p))
            key = os.path.normcase(os.path.realpath(a))
            if key not in seen:
                seen.add(key)
                out.append(a)
    if not out:
        raise InputError("no videos found in the inputs given")
    return out


def _taken_on_disk(out_dir: Path, stem: str) -> bool:
    return any((out_dir / (stem + ext)).exists() for ext in OUTPUT_EXTS.values()) or \
        (out_dir / PARTIAL_DIR / stem).exists()


def assign_stems(inputs: list[Path], out_dir: Path, known: dict[str, str]) -> dict[str, str]:
    """Each input's output stem: ``DIR/<stem>.mp4``, ``.json``, ``.jsonl``.

    ``known`` (input -> stem, from the manifest) keeps the names of earlier runs, so a rerun
    writes a video's outputs where it wrote them before.  A new input is named after its file
    (``clip.mp4`` -> ``clip``); when that name is taken by another input, by a file already in
    ``DIR`` the manifest does not own, or is reserved (``manifest``), it gets ``clip-2``,
    ``clip-3``, ... so nothing that exists is ever overwritten.  Names compare case-insensitively
    (macOS and Windows filesystems).
    """
    stems = {str(i): known[str(i)] for i in inputs if str(i) in known}
    claimed = {s.lower() for s in known.values()} | RESERVED_STEMS
    for i in inputs:
        if str(i) in stems:
            continue
        base = i.stem or "video"
        stem, n = base, 1
        while stem.lower() in claimed or _taken_on_disk(out_dir, stem):
            n += 1
            stem = f"{base}-{n}"
        stems[str(i)] = stem
        claimed.add(stem.lower())
    return stems
