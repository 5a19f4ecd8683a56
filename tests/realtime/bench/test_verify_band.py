"""realtime.bench.verify_band: a judged box counts as output only where an output person's box lies over it."""

from __future__ import annotations

import numpy as np

from realtime.bench.verify_band import judged_output
from realtime.types import Poses


def _poses(boxes: list[list[float]]) -> Poses:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Poses(np.zeros((len(b), 2, 2), np.float32), np.ones((len(b), 2), np.float32), b, np.ones(len(b)))


def test_judged_boxes_out_by_label() -> None:
    judged = [{"image": "v#1", "box": [0, 0, 10, 20], "label": "P"},  # the same box out: counted
              {"image": "v#1", "box": [100, 0, 110, 20], "label": "F"},  # nothing there: not
              {"image": "v#1", "box": [0, 0, 10, 10], "label": "D"},  # IoU 0.5 with the first output: counted
              {"image": "v#2", "box": [0, 0, 10, 20], "label": "P"},  # a frame with nobody out
              {"image": "v#3", "box": [0, 0, 10, 20], "label": "M"}]  # a frame not run
    outputs = {"v#1": _poses([[0, 0, 10, 20], [104, 0, 114, 20]]), "v#2": _poses([])}
    assert judged_output(judged, outputs) == {"P": 1, "D": 1}
    assert judged_output(judged, outputs, iou=0.6) == {"P": 1}
