"""Upright pictures: a video's display matrix (phones record sideways and tag the rotation) and EXIF.

Decoders hand out frames as stored; players turn them by the display matrix.  The
pipeline turns them here, before detection, so people are upright for the models and
the output needs no tag of its own.
"""

from __future__ import annotations

import logging
import math
import struct
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["display_orientation", "apply_orientation"]


def display_orientation(frame: Any) -> tuple[int, bool]:
    """(quarter turns counter-clockwise, then mirror left-right) from a PyAV frame's display matrix.

    The matrix is FFmpeg's 3x3 (16.16 fixed point); a mirrored one has a negative
    determinant and is read as a rotation followed by a horizontal flip.  Rotations
    that are not multiples of 90 degrees are left alone (with a warning).
    """
    raw = None
    for sd in getattr(frame, "side_data", ()) or ():
        if "DISPLAYMATRIX" in str(getattr(sd, "type", "")):
            raw = bytes(sd)
            break
    if raw is None or len(raw) < 36:
        return 0, False
    a, b, _, c, d = (v / 65536 for v in struct.unpack("<5i", raw[:20]))
    flip = a * d - b * c < 0
    if flip:  # mirror after the rotation: undo it on the first column
        a, c = -a, -c
    angle = math.atan2(c, a)
    k = round(angle / (math.pi / 2))
    if abs(angle - k * math.pi / 2) > 0.02:
        log.warning("display rotation of %.0f degrees is not a multiple of 90; frames are used as stored",
                    math.degrees(angle))
        return 0, False
    return k % 4, flip


def apply_orientation(image: np.ndarray, quarter_turns: int, flip: bool) -> np.ndarray:
    """``image`` turned ``quarter_turns`` x 90 degrees counter-clockwise, then mirrored if ``flip``."""
    if quarter_turns:
        image = np.rot90(image, quarter_turns)
    if flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image) if quarter_turns or flip else image
