"""The benchmarks' one user-facing error (one line for the CLI)."""

from __future__ import annotations

__all__ = ["BenchError"]


class BenchError(RuntimeError):
    """Something the user asked for cannot be benchmarked here (one line for the CLI)."""
