"""The job's manifest: ``DIR/manifest.jsonl``, one JSON object per line, appended as videos start and finish.

A line is a video's record at that moment; the last line for an input is its state.

``status`` is ``started`` (handed to a worker; its output names are claimed), ``done``
(outputs in place), ``failed`` (``error`` says why, in one line) or ``interrupted``
(Ctrl-C/SIGTERM stopped it; a rerun does it again).  Each line is flushed and fsynced
before the next video is handed out, so after a crash at most the line being written is
lost; a torn last line is cut off when the manifest is opened again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["STATUSES", "ManifestError", "Manifest", "read_manifest"]

STATUSES = ("started", "done", "failed", "interrupted")
FIELDS = ("input", "status", "frames", "seconds", "persons", "error", "outputs")


class ManifestError(ValueError):
    """A manifest that cannot be read or written (a user can fix it: one line, exit code 2)."""


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The last record per input (``{}`` when there is no manifest yet).

    A last line without its newline (the process died while writing it) is ignored;
    :class:`Manifest` cuts it off before appending.  Any other line that is not a JSON
    record with ``input`` and a known ``status`` is an error: the file is not guessed at.
    """
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read the manifest {path}: {getattr(e, 'strerror', None) or e}") from None
    lines = text.split("\n")
    if lines and lines[-1]:
        log.warning("%s: the last line is incomplete (a crash while writing it); ignoring it", path)
    records: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise ManifestError(f"{path} line {n} is not JSON; fix or move the file") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("input"), str) or rec.get("status") not in STATUSES:
            raise ManifestError(f"{path} line {n} is not a manifest record (needs 'input' and a 'status' of "
                                f"{', '.join(STATUSES)})")
        records[rec["input"]] = rec
    return records


class Manifest:
    """Appends records to the manifest, one durable line each (the driver is its only writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = path.open("a", encoding="utf-8")
        except OSError as e:
            raise ManifestError(f"cannot write the manifest {path}: {e.strerror or e}") from None
        try:
            self._lock()
            self.records = read_manifest(path)
            self._truncate_torn_line()
        except BaseException:
            self._f.close()
            raise

    def _lock(self) -> None:
        """One job per output folder: two drivers appending to one manifest would hand out the same videos."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks here
            return
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ManifestError(f"another batch job is writing {self.path} (it is locked); wait for it to end "
                                f"or give another --out") from None
        except OSError as e:  # pragma: no cover - a filesystem without locks (some network mounts)
            log.debug("cannot lock %s (%s); going on without a lock", self.path, e)

    def _truncate_torn_line(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def stem(self, input_path: str) -> str | None:
        """The output stem an earlier run gave ``input_path`` (``None``: never seen)."""
        rec = self.records.get(input_path)
        return rec.get("stem") if rec else None

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (the standard fields first, then the rest) and make it durable."""
        rec = {k: record.get(k) for k in FIELDS}
        rec.update({k: v for k, v in record.items() if k not in rec})
        rec.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        try:
            os.fsync(self._f.fileno())
        except OSError:  # pragma: no cover - some network filesystems do not fsync
            pass
        self.records[str(rec["input"])] = rec

    def close(self) -> None:
        self._f.close()  # also releases the lock

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
