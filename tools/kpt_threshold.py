"""The joint-score distribution of a run and Otsu's threshold on it: how the drawing's --kpt-thr default was chosen.

    python -m realtime.run --source ../shared/data/real-people --jsonl /tmp/photos.jsonl --quiet
    python tools/kpt_threshold.py /tmp/photos.jsonl

Otsu's threshold splits the scores into the two groups with the largest between-group
variance (here: joints the model sees, joints it guesses).  Torch-free; reads JSON Lines
written by ``python -m realtime.run --jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def otsu(scores: np.ndarray, step: float = 0.01) -> float:
    """The threshold t in (0, 1) maximising n_low * n_high * (mean_high - mean_low)^2."""
    best_v, best_t = -1.0, float("nan")
    for t in np.arange(step, 1.0, step):
        lo, hi = scores[scores < t], scores[scores >= t]
        if len(lo) and len(hi):
            v = len(lo) * len(hi) * float(hi.mean() - lo.mean()) ** 2
            if v > best_v:
                best_v, best_t = v, float(t)
    return best_t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsonl", type=Path, help="per-frame JSON Lines from python -m realtime.run --jsonl")
    args = p.parse_args(argv)
    try:
        lines = args.jsonl.read_text().splitlines()[1:]
    except OSError as e:
        print(f"error: cannot read {args.jsonl}: {e.strerror or e}", file=sys.stderr)
        return 2
    scores = np.array([s for ln in lines for person in json.loads(ln)["people"] for s in person["scores"]])
    if not len(scores):
        print("error: no people in the file", file=sys.stderr)
        return 2
    people = sum(len(json.loads(ln)["people"]) for ln in lines)
    pct = np.percentile(scores, [10, 25, 50, 75, 90])
    print(f"{people} people, {len(scores)} joint scores; percentiles 10/25/50/75/90: "
          + " ".join(f"{v:.2f}" for v in pct))
    print(f"Otsu threshold: {otsu(scores):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
