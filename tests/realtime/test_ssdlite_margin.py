"""tools/ssdlite_margin.py: the judged list is read exactly (an unjudged box is an error), and the rule counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sm():
    return load_tool("ssdlite_margin")


def test_judged_list_round_trip_and_errors(sm) -> None:
    text = "# header\n3: vtest.avi#600 score 0.219 box 685,200,719,268 -> D\n\n7: a.jpg score 0.3 box -1,2,30,40 -> P\n"
    got = sm.parse_labels(text)
    assert got == [{"tile": 3, "image": "vtest.avi#600", "score": 0.219, "box": [685.0, 200.0, 719.0, 268.0],
                    "label": "D"},
                   {"tile": 7, "image": "a.jpg", "score": 0.3, "box": [-1.0, 2.0, 30.0, 40.0], "label": "P"}]
    with pytest.raises(ValueError, match="line 2: label '\\?'"):
        sm.parse_labels("x\n1: v#1 score 0.2 box 1,2,3,4 -> ?\n")
    with pytest.raises(ValueError, match="no judged boxes"):
        sm.parse_labels("# nothing\n")


def test_rule_keeps_boxes_at_or_over_the_threshold(sm) -> None:
    kept = sm.kept_by_rule(["P", "P", "F", "D"], [0.5, 0.49, 0.6, 0.2], (0.5, 0.7))
    assert kept[0.5] == {"P": 1, "F": 1} and kept[0.7] == {}


def test_the_committed_judgement_covers_the_band(sm) -> None:
    """The list in docs/ is complete: every tile judged, numbered 1..N, all inside 0.20-0.35."""
    boxes = sm.parse_labels((REPO / "docs" / "ssdlite_margin_labels.txt").read_text())
    assert [b["tile"] for b in boxes] == list(range(1, len(boxes) + 1))
    assert all(0.2 <= b["score"] < 0.35 for b in boxes)
