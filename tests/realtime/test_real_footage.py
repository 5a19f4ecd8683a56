"""Real footage: the bundled SSDLite pedestrian detector on the shared MPII photos and vtest.avi.

Skipped where the shared data (``../shared`` beside the checkout, or ``$MCA_SHARED``) is absent, as in users' clones.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

import engines
from realtime.detectors import PersonDetector
from realtime.run import DEFAULT_DETECTOR, main
from tests.realtime.conftest import shared_data_dir

SHARED = shared_data_dir()
PHOTOS = sorted((SHARED / "real-people").glob("*.jpg"))
VTEST = SHARED / "real-video" / "vtest.avi"

needs_shared = pytest.mark.skipif(not PHOTOS, reason="the shared data (../shared/data or $MCA_SHARED/data) is "
                                                     "absent: only the project's machines have it")


@needs_shared
@pytest.mark.parametrize("photo", PHOTOS, ids=[p.name for p in PHOTOS])
def test_ssdlite_finds_a_person_in_each_real_photo(photo: Path) -> None:
    det = PersonDetector(engines.load(DEFAULT_DETECTOR, backend="ort"), conf=0.3)
    found = det.detect(cv2.imread(str(photo)))
    assert len(found) >= 1
    h, w = cv2.imread(str(photo)).shape[:2]
    assert (found.boxes[:, 2] <= w).all() and (found.boxes[:, 3] <= h).all()


@pytest.mark.skipif(not VTEST.exists(),
                    reason="real-video/vtest.avi of the shared data (../shared or $MCA_SHARED) is absent")
def test_real_video_end_to_end_frames_out_equal_frames_in(models, tmp_path) -> None:
    import av

    out, js = tmp_path / "vtest.mp4", tmp_path / "vtest.jsonl"
    assert main(["--source", str(VTEST), "--frames", "60", "--pose", str(models["pose"]), "--output", str(out),
                 "--jsonl", str(js), "--quiet"]) == 0
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(c.streams.video[0]))
    lines = js.read_text().splitlines()[1:]
    assert n == 60 and len(lines) == 60
    people = sum(len(json.loads(ln)["people"]) for ln in lines)
    assert people >= 60, "the pedestrians should be detected in most frames"


@pytest.mark.skipif(not VTEST.exists(),
                    reason="real-video/vtest.avi of the shared data (../shared or $MCA_SHARED) is absent")
def test_unreachable_low_boxes_are_not_posed_and_nothing_changes() -> None:
    """The default real-footage pipeline leaves unposed the low-score boxes no left-over track can take: on
    vtest.avi fewer crops are posed and every frame's people, keypoints and ids are those of posing every box."""
    import numpy as np

    from realtime.models import load_model, resolve_model
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.pose import PoseEstimator
    from realtime.sources import FileSource

    def pipeline(skip: bool) -> Pipeline:
        det = PersonDetector(load_model(resolve_model("ssdlite", "detector"), backend="ort", threads=1, int8="off"))
        pose = PoseEstimator(load_model(resolve_model("mca_tiny_real", "pose"), backend="ort", threads=1,
                                        int8="off", outputs=["heatmaps"]))
        return Pipeline(det, pose, PipelineConfig(skip_unreachable=skip))

    every, lazy = pipeline(False), pipeline(True)
    pa = pb = None
    with FileSource(VTEST, max_frames=40) as src:
        for frame in src.frames():
            pa, pb = every.process(frame, pa), lazy.process(frame, pb)
            assert pb.track_ids.tolist() == pa.track_ids.tolist()
            np.testing.assert_array_equal(pb.keypoints, pa.keypoints)
            np.testing.assert_array_equal(pb.scores, pa.scores)
    assert every.boxes_posed == every.boxes_seen == lazy.boxes_seen
    assert lazy.boxes_posed < 0.95 * every.boxes_posed
