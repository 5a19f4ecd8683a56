"""The threaded pipeline with fake backends: detect-every-N, live drops, stop, errors, demo scoring."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mca.joints import MPII16
from realtime.detectors import PersonDetector
from realtime.models import Backend, TensorSpec, load_model
from realtime.pipeline import Pipeline, PipelineConfig, Summary, _score_demo
from realtime.pose import PoseEstimator
from realtime.sources import FileSource, LiveSource
from realtime.types import Detections, Poses
from tests.realtime.conftest import constant_yolo_onnx, write_video


class FakePose(Backend):
    """16 joints on a 4x4 grid over the person's box (boxes can be rebuilt from keypoints); counts calls."""

    def __init__(self, delay: float = 0.0, fail_on_call: int | None = None) -> None:
        meta = {"mca.kind": "pose", "mca.input_size": "64", "mca.heatmap_size": "16",
                "mca.joint_names": json.dumps(list(MPII16.names)),
                "mca.flip_index": json.dumps(list(MPII16.flip_index)),
                "mca.skeleton": json.dumps([list(e) for e in MPII16.skeleton]), "mca.joint_set": "mpii16"}
        super().__init__(path="fake_pose", inputs=[TensorSpec("crops", (None, 64, 64, 3), np.dtype(np.uint8))],
                         outputs=[TensorSpec("heatmaps", (None, 16, 16, 16), np.dtype(np.float32))], metadata=meta)
        self.delay, self.fail_on_call, self.calls = delay, fail_on_call, 0

    def run(self, crops: np.ndarray) -> list[np.ndarray]:
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("inference failed (test)")
        time.sleep(self.delay)
        hm = np.zeros((len(crops), 16, 16, 16), np.float32)
        grid = (2, 5, 9, 13)  # spans the person's box inside the 1.25x padded crop, like a real body
        for j in range(16):
            hm[:, j, grid[j // 4], grid[j % 4]] = 0.9
        return [hm]


class Counting:
    """Wraps a backend and counts run() calls."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def run(self, *a: np.ndarray) -> list[np.ndarray]:
        self.calls += 1
        return self.inner.run(*a)


@pytest.fixture(scope="module")
def det_path(tmp_path_factory):
    return constant_yolo_onnx(tmp_path_factory.mktemp("det") / "d.onnx", [(32, 32, 16, 32, 0.9)], size=64)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = [np.full((120, 160, 3), 8 * i, np.uint8) for i in range(30)]
    return write_video(tmp_path_factory.mktemp("clip") / "c.mp4", frames, fps=30)


def _pipeline(det_path, cfg, pose=None, progress=None):
    det = Counting(load_model(det_path, backend="ort"))
    pipe = Pipeline(PersonDetector(det), PoseEstimator(pose or FakePose()), cfg, progress=progress)
    return pipe, det


@pytest.mark.parametrize("every,frames,runs", [(1, 10, 10), (3, 10, 4), (5, 10, 2), (20, 10, 1)])
def test_detect_every_n_follows_people_in_between(det_path, clip, every, frames, runs) -> None:
    pipe, det = _pipeline(det_path, PipelineConfig(detect_every=every, smooth=False))
    src = FileSource(clip, max_frames=frames)
    with src:
        summary = pipe.run(src)
    assert det.calls == runs and pipe.detector_runs == runs
    assert summary.frames_out == frames and summary.persons == frames, "followed from keypoints in between"


def test_file_source_is_lossless_even_when_inference_is_slow(det_path, clip, tmp_path) -> None:
    cfg = PipelineConfig(smooth=False, queue_size=2, output=tmp_path / "o.mp4", jsonl_path=tmp_path / "o.jsonl")
    pipe, _ = _pipeline(det_path, cfg, pose=FakePose(delay=0.01))
    with FileSource(clip) as src:
        summary = pipe.run(src)
    assert (summary.frames_in, summary.frames_out, summary.dropped) == (30, 30, 0)
    frames = [json.loads(x)["frame"] for x in (tmp_path / "o.jsonl").read_text().splitlines()[1:]]
    assert frames == list(range(30)), "in order"


def test_live_source_drops_stale_frames_instead_of_queueing(det_path, clip) -> None:
    """A camera-like source faster than inference: frames are dropped and counted, never reordered."""
    order = []
    pipe, _ = _pipeline(det_path, PipelineConfig(smooth=False), pose=FakePose(delay=0.03))
    pipe.renderer = SimpleNamespace(draw=lambda img, poses, text=None: img)
    src = LiveSource(str(clip), cv2.CAP_FFMPEG)
    orig = pipe.process

    def spy(frame, previous, det=None):
        order.append(frame.index)
        return orig(frame, previous, det)

    pipe.process = spy
    with src:
        summary = pipe.run(src)
    assert summary.dropped > 0 and summary.frames_out < 30
    assert summary.frames_out + summary.dropped <= 30
    assert order == sorted(order) and len(order) == summary.frames_out


def test_stop_finishes_frames_in_flight_and_closes_outputs(det_path, clip, tmp_path) -> None:
    import av

    cfg = PipelineConfig(output=tmp_path / "o.mp4", json_path=tmp_path / "o.json")
    holder = {}
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] == 5:
            holder["pipe"].stop()

    pipe, _ = _pipeline(det_path, cfg, progress=progress)
    holder["pipe"] = pipe
    with FileSource(clip) as src:
        summary = pipe.run(src)
    assert 5 <= summary.frames_out < 30 and summary.frames_out == summary.frames_in
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == summary.frames_out
    assert len(json.loads((tmp_path / "o.json").read_text())) == summary.frames_out


def test_inference_error_is_raised_after_outputs_are_closed(det_path, clip, tmp_path) -> None:
    import av

    cfg = PipelineConfig(output=tmp_path / "o.mp4", queue_size=2)
    pipe, _ = _pipeline(det_path, cfg, pose=FakePose(fail_on_call=6))
    t0 = time.perf_counter()
    with FileSource(clip) as src, pytest.raises(RuntimeError, match="inference failed"):
        pipe.run(src)
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5  # the frames before the failure, playable
    assert not [t for t in threading.enumerate() if t.name in ("reader", "writer")], "no thread left behind"
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("meta,override,expect", [(None, None, 1.25), ("1.1", None, 1.1), ("1.1", 1.3, 1.3)])
def test_crop_padding_from_metadata_or_override(det_path, meta, override, expect) -> None:
    pose = FakePose()
    if meta is not None:
        pose.metadata["mca.crop_padding"] = meta
    pipe, _ = _pipeline(det_path, PipelineConfig(crop_padding=override), pose=pose)
    assert pipe.cropper.padding == pytest.approx(expect)
    crops = pipe.cropper.crop(np.zeros((200, 200, 3), np.uint8), Detections([[50, 20, 90, 180]], [0.9]))
    # the crop spans padding x the box's longer side (160 px) across its 64 px
    assert crops.transforms[0].frame_to_input[0, 0] == pytest.approx(64 / (expect * 160))


def _gt_scene(joints: np.ndarray, visible: int = 16):
    box = np.array([*joints.min(0), *joints.max(0)], np.float32)
    vis = np.arange(16) < visible
    return SimpleNamespace(people=[SimpleNamespace(joints=joints, visible=vis, box=box)])


@pytest.mark.parametrize("shift_torso,visible,people,found,pck", [
    (0.0, 16, 1, 1, 1.0),
    (0.1, 16, 1, 1, 1.0),
    (0.3, 16, 1, 1, 0.0),  # beyond 0.2 torso: every joint misses
    (None, 16, 1, 0, None),  # nobody detected
    (0.0, 8, 1, 1, 1.0),  # half the joints in view: counts for recall
    (0.0, 5, 0, 0, 1.0),  # a sliver at the frame edge: not counted for recall, its visible joints still scored
])
def test_demo_scoring_recall_and_pck(shift_torso, visible, people, found, pck) -> None:
    rng = np.random.default_rng(1)
    joints = rng.uniform(100, 300, (16, 2)).astype(np.float32)
    gt = _gt_scene(joints, visible)
    torso = np.linalg.norm(joints[MPII16.index("r_shoulder")] - joints[MPII16.index("l_hip")])
    summary = Summary()
    if shift_torso is None:
        poses = Poses.empty(16)
    else:
        kps = joints + [shift_torso * torso, 0.0]
        poses = Poses(kps[None], np.ones((1, 16)), [gt.people[0].box], [0.9])
    _score_demo(summary, gt, poses)
    assert (summary.gt_people, summary.gt_found) == (people, found)
    assert summary.pck == (pytest.approx(pck) if pck is not None else None)
    if pck is not None:
        assert summary.pck_total == visible


def test_detector_runs_only_on_its_own_thread(tmp_path, clip) -> None:
    """gpu-review row 11: with --detect-every N and nobody to follow, the pose stage used to run the detector
    itself while the detector thread might be inside it (a TensorRT context is one thread's)."""
    det_path = constant_yolo_onnx(tmp_path / "none.onnx", [(1, 1, 1, 1, 0.0)])  # never finds anybody
    threads: list[str] = []

    class Where(Counting):
        def run(self, *a: np.ndarray) -> list[np.ndarray]:
            threads.append(threading.current_thread().name)
            return super().run(*a)

    pipe = Pipeline(PersonDetector(Where(load_model(det_path, backend="ort"))), PoseEstimator(FakePose()),
                    PipelineConfig(detect_every=3, smooth=False))
    with FileSource(clip, max_frames=12) as src:
        summary = pipe.run(src)
    assert summary.frames_out == 12
    assert len(threads) == 12, "nobody to follow: every frame is detected"
    assert set(threads) == {"detector"}, threads


class BrightDetector:
    """A person in the middle of bright pictures, nobody in dark ones (the photo of a cat)."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        if image.mean() < 100:
            return Detections()
        h, w = image.shape[:2]
        return Detections([[w * 0.3, h * 0.1, w * 0.7, h * 0.9]], [0.9])


def test_folder_photos_carry_nothing_over(tmp_path) -> None:
    """Issue 17.5: with --detect-every, tracking and smoothing, a person on one photo was followed into the next
    (a skeleton drawn on a photo of a cat); the JSON outputs name the file of each frame."""
    from realtime.sources import ImageDirSource

    d = tmp_path / "photos"
    d.mkdir()
    for name, level in (("1_person.png", 200), ("2_cat.png", 20), ("3_person.png", 200)):
        cv2.imwrite(str(d / name), np.full((120, 160, 3), level, np.uint8))
    det = BrightDetector()
    cfg = PipelineConfig(detect_every=10, smooth=True, jsonl_path=tmp_path / "o.jsonl", json_path=tmp_path / "o.json")
    pipe = Pipeline(det, PoseEstimator(FakePose()), cfg)
    with ImageDirSource(d) as src:
        summary = pipe.run(src)
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()[1:]]
    assert [(ln["file"], len(ln["people"])) for ln in lines] == [("1_person.png", 1), ("2_cat.png", 0),
                                                                  ("3_person.png", 1)]
    assert det.calls == 3 and summary.persons == 2
    assert {r["file"] for r in json.loads((tmp_path / "o.json").read_text())} == {"1_person.png", "3_person.png"}


def test_the_tracker_gets_its_second_pass_and_the_frame(det_path, clip) -> None:
    """The tracker's ByteTrack pass and colour cue need the detector's own threshold and the frame; the detector
    runs lower (``track_low_score``), also when one detector serves a second pipeline (the batch worker)."""
    calls = []
    det = PersonDetector(load_model(det_path, backend="ort"))
    own = det.conf
    for _ in range(2):
        pipe = Pipeline(det, PoseEstimator(FakePose()), PipelineConfig())
        real = pipe.tracker.update

        def spy(poses, **kw):  # noqa: ANN001, ANN202
            calls.append(kw)
            return real(poses, **kw)

        pipe.tracker.update = spy
        with FileSource(clip, max_frames=1) as src:
            frame = next(iter(src.frames()))
        pipe.process(frame, None)
        assert det.conf == 0.1 and calls[-1]["high_score"] == own
        assert calls[-1]["image"] is frame.image
    off = Pipeline(PersonDetector(load_model(det_path, backend="ort")), PoseEstimator(FakePose()),
                   PipelineConfig(track_low_score=None))
    assert off.track_high is None and off.detector.conf == own


@pytest.mark.parametrize("name,conf,verify,expect", [
    ("ssdlite", None, "auto", 0.2),  # the SSD family's band, judged on vtest.avi (tools/ssdlite_margin.py)
    ("yolo_synth", None, "auto", None),  # not judged for YOLO: none
    ("ssdlite", 0.5, "auto", None),  # a threshold of the user's own: no band assumed
    ("ssdlite", 0.5, 0.3, 0.3),  # unless asked for
    ("ssdlite", None, None, None),  # --verify-conf off
    ("ssdlite", None, 0.05, None),  # under track_low_score (0.1): the detector does not report those boxes
    ("yolo_synth", None, 0.3, None),  # over the threshold (0.25): no band
])
def test_verified_band_from_the_detector_family_or_the_config(name, conf, verify, expect) -> None:
    from realtime.models import resolve_model

    det = PersonDetector(load_model(resolve_model(name, "detector"), backend="ort"), conf=conf)
    pipe = Pipeline(det, PoseEstimator(FakePose()), PipelineConfig(verify_conf=verify))
    assert pipe.verify_conf == expect


def test_parse_verify_conf() -> None:
    from realtime.pipeline import parse_verify_conf

    assert [parse_verify_conf(v) for v in (None, "off", " OFF ", "0.25")] == ["auto", None, None, 0.25]
    for bad in ("0", "1", "-0.1", "x", ""):
        with pytest.raises(ValueError) as e:
            parse_verify_conf(bad)
        assert str(e.value) == f"--verify-conf must be 'off' or between 0 and 1, got {bad}"
