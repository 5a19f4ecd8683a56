"""Sinks: the MP4 is H.264/yuv420p at the right size and rate, JSON files are complete and loadable."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from realtime.sinks import CocoJsonWriter, JsonlWriter, Mp4Writer, SinkError
from realtime.types import Poses


def _probe(path):
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return dict(n=len(frames), size=(s.codec_context.width, s.codec_context.height), rate=s.average_rate,
                    codec=s.codec_context.name, pix=s.codec_context.pix_fmt,
                    times=[float(f.time) for f in frames], first=frames[0].to_ndarray(format="bgr24"))


@pytest.mark.parametrize("size,fps,rate", [
    ((64, 48), 25.0, Fraction(25)),
    ((63, 47), 12.0, Fraction(12)),  # odd: padded to 64x48
    ((48, 80), 30000 / 1001, Fraction(30000, 1001)),  # NTSC rate kept exactly, portrait
    ((33, 17), 0.0, Fraction(25)),  # unknown rate: 25
])
def test_mp4_codec_size_rate(tmp_path, size, fps, rate) -> None:
    w, h = size
    with Mp4Writer(tmp_path / "o.mp4", fps) as mp4:
        for i in range(5):
            mp4.write(np.full((h, w, 3), 30 * i, np.uint8))
    p = _probe(tmp_path / "o.mp4")
    assert (p["n"], p["size"], p["codec"], p["pix"]) == (5, (w + w % 2, h + h % 2), "h264", "yuv420p")
    assert p["rate"] == rate
    data = (tmp_path / "o.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "faststart: the index precedes the media for browsers"


def test_mp4_fits_later_frames_of_another_size(tmp_path) -> None:
    with Mp4Writer(tmp_path / "o.mp4", 10) as mp4:
        mp4.write(np.zeros((40, 80, 3), np.uint8))
        mp4.write(np.full((80, 40, 3), 255, np.uint8))  # portrait photo after a landscape one
    import av

    with av.open(str(tmp_path / "o.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 2 and frames[1].shape == (40, 80, 3)
    assert frames[1][:, 40].mean() > 200 and frames[1][:, 2].mean() < 30  # fitted, centred, black sides


def test_mp4_live_timestamps(tmp_path) -> None:
    """Live sources: frames keep their capture times (ms), so drops do not fast-forward the video."""
    times = [0.0, 0.04, 0.2, 0.21, 0.5]
    with Mp4Writer(tmp_path / "o.mp4", 25, timestamps=True) as mp4:
        for t in times:
            mp4.write(np.zeros((32, 32, 3), np.uint8), t)
    assert _probe(tmp_path / "o.mp4")["times"] == pytest.approx(times, abs=1e-3)


def _poses(n: int, k: int = 3) -> Poses:
    kps = np.arange(n * k * 2, dtype=np.float32).reshape(n, k, 2)
    return Poses(kps, np.full((n, k), 0.5), np.tile([[1, 2, 11, 22]], (n, 1)), np.full(n, 0.8),
                 track_ids=np.arange(n))


def test_coco_results_layout(tmp_path) -> None:
    with CocoJsonWriter(tmp_path / "r.json") as w:
        w.write(0, _poses(2))
        w.write(1, _poses(0))
        w.write(2, _poses(1))
        assert not (tmp_path / "r.json").exists(), "moved into place only when closed"
        w._f.flush()
        assert (tmp_path / "r.json.tmp").read_text().startswith("[{"), "streamed to disk, not held in memory"
        assert w.count == 3
    res = json.loads((tmp_path / "r.json").read_text())
    assert [r["image_id"] for r in res] == [0, 0, 2] and {r["category_id"] for r in res} == {1}
    assert res[1]["keypoints"] == [6, 7, 0.5, 8, 9, 0.5, 10, 11, 0.5]
    assert res[0]["bbox"] == [1, 2, 10, 20] and res[0]["score"] == pytest.approx(0.8 * 0.5)
    assert not (tmp_path / "r.json.tmp").exists()


def test_jsonl_one_line_per_frame_with_track_ids(tmp_path) -> None:
    with JsonlWriter(tmp_path / "r.jsonl", ("a", "b", "c")) as w:
        w.write(0, 0.0, _poses(2))
        w.write(1, 0.1, _poses(0))
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines[0] == {"joint_names": ["a", "b", "c"]}
    assert [p["track_id"] for p in lines[1]["people"]] == [0, 1] and lines[2] == {"frame": 1, "time": 0.1,
                                                                                 "people": []}


@pytest.mark.parametrize("sink", ["mp4", "json", "jsonl"])
def test_unwritable_place_is_a_sink_error(tmp_path, sink) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" / "out"  # a 'directory' that is a file
    make = {"mp4": lambda: Mp4Writer(target.with_suffix(".mp4"), 10), "json": lambda: CocoJsonWriter(target),
            "jsonl": lambda: JsonlWriter(target, ("a",))}[sink]
    with pytest.raises(SinkError, match="cannot write"):
        with make():
            pass


def _odd_poses() -> Poses:
    """Two people with values that show every rounding: 1.23456 etc., track ids 7 and -1."""
    kps = np.array([[[1.23456, 2.34567], [3.45678, 4.56789]], [[10.0049, 20.0051], [30.5, 40.25]]], np.float64)
    scores = np.array([[0.98765, 0.12344], [0.5, 0.25]], np.float64)
    boxes = np.array([[1.004, 2.006, 11.5149, 22.2251], [0.0, 0.0, 3.0, 4.0]], np.float64)
    return Poses(kps, scores, boxes, np.array([0.876543, 0.5]), track_ids=np.array([7, -1]))


def test_coco_and_jsonl_records_exactly(tmp_path) -> None:
    """Field by field as the README gives them: COCO keypoints [x, y, score] and bbox [x, y, w, h] to 2 decimals,
    score = box score x mean joint score to 4, track_id, ``file`` only when given; JSON Lines: box to 2, box score
    to 4, keypoints to 2, scores to 3, time to 4."""
    p = _odd_poses()
    with CocoJsonWriter(tmp_path / "r.json") as w:
        w.write(5, p, file="a.jpg")
        w.write(6, p)
    with JsonlWriter(tmp_path / "r.jsonl", ("l", "r")) as j:
        j.write(5, 0.123456, p, file="a.jpg")
        j.write(6, 2.0, p)
    coco = json.loads((tmp_path / "r.json").read_text())
    first = {"image_id": 5, "category_id": 1, "keypoints": [1.23, 2.35, 0.99, 3.46, 4.57, 0.12],
             "score": round(0.876543 * (0.98765 + 0.12344) / 2, 4), "bbox": [1.0, 2.01, 10.51, 20.22],
             "track_id": 7, "file": "a.jpg"}
    assert coco[0] == first and first["score"] == 0.487
    assert coco[1]["keypoints"] == [10.0, 20.01, 0.5, 30.5, 40.25, 0.25] and coco[1]["track_id"] == -1
    assert coco[1]["bbox"] == [0.0, 0.0, 3.0, 4.0] and coco[1]["score"] == 0.1875
    assert "file" not in coco[2] and coco[2]["image_id"] == 6 and len(coco) == 4
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines[1] == {"frame": 5, "time": 0.1235, "file": "a.jpg", "people": [
        {"track_id": 7, "box": [1.0, 2.01, 11.51, 22.23], "box_score": 0.8765,
         "keypoints": [[1.23, 2.35], [3.46, 4.57]], "scores": [0.988, 0.123]},
        {"track_id": -1, "box": [0.0, 0.0, 3.0, 4.0], "box_score": 0.5,
         "keypoints": [[10.0, 20.01], [30.5, 40.25]], "scores": [0.5, 0.25]}]}
    assert "file" not in lines[2] and lines[2]["frame"] == 6 and lines[2]["time"] == 2.0


@pytest.mark.parametrize("sink", ["json", "jsonl"])
def test_writing_to_a_writer_that_is_not_open_says_how_to_open_it(tmp_path, sink) -> None:
    w = CocoJsonWriter(tmp_path / "r.json") if sink == "json" else JsonlWriter(tmp_path / "r.jsonl", ("a",))
    args = (0, _poses(1)) if sink == "json" else (0, 0.0, _poses(1))
    with pytest.raises(SinkError, match=r"r\.jsonl? is not open \(use (CocoJsonWriter|JsonlWriter) as a context "
                                        r"manager\)"):
        w.write(*args)


def test_output_path_rules_and_their_messages(tmp_path) -> None:
    """check_output_path: a regular file or a new path (also in folders still to be made) is fine; a folder, a FIFO or
    a device is refused with what it is (streams=True lets the line-by-line outputs write to a FIFO or /dev/null);
    a new path under a file is the system's 'Not a directory', without the errno."""
    import os

    from realtime.sinks import check_output_path

    (tmp_path / "f.json").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    for ok in (tmp_path / "f.json", tmp_path / "new.json", tmp_path / "a" / "b" / "new.json"):
        check_output_path(ok)
    check_output_path(tmp_path / "fifo", streams=True)
    check_output_path("/dev/null", streams=True)
    refused = {tmp_path: f"output {tmp_path} is a directory; give a file name",
               tmp_path / "fifo": f"cannot write {tmp_path / 'fifo'}: it is a FIFO; give a regular file or a new path",
               Path("/dev/null"): "cannot write /dev/null: it is a device; give a regular file or a new path",
               tmp_path / "f.json" / "x" / "y.json": f"cannot write {tmp_path / 'f.json' / 'x' / 'y.json'}: Not a directory"}
    for path, msg in refused.items():
        with pytest.raises(SinkError) as e:
            check_output_path(path)
        assert str(e.value) == msg
    with pytest.raises(SinkError, match="is a directory"):
        check_output_path(tmp_path, streams=True)


def test_mp4_file_timestamps_snap_to_the_grid_and_keep_real_gaps(tmp_path) -> None:
    """A file's own times (ms-rounded, starting at 5 s, 30 fps): near-grid times are put on the exact 1/30 grid, a
    real gap (0.5 s) and an off-grid time (0.62 s) are kept, times start at zero, and a frame without a time comes
    one clock tick (1/90000 s) after the last."""
    times = [5.0, 5.033, 5.067, 5.1, 5.5, 5.62]
    with Mp4Writer(tmp_path / "o.mp4", 30, time_base=Fraction(1, 1000)) as mp4:
        for t in times:
            mp4.write(np.zeros((32, 32, 3), np.uint8), t)
        mp4.write(np.zeros((32, 32, 3), np.uint8))
    got = _probe(tmp_path / "o.mp4")["times"]
    assert got == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30, 0.5, 0.62, 0.62 + 1 / 90000], abs=2e-6)


@pytest.mark.parametrize("size", [(63, 48), (64, 47)])
def test_mp4_one_odd_side_is_padded_by_repeating_the_edge(tmp_path, size) -> None:
    """Only the odd side grows by one, at the right or bottom, as a copy of the last column or row."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, -1] = 255  # the last column (63 wide) or
    img[-1, :] = 255  # the last row (47 high) bright: the padding must repeat it
    with Mp4Writer(tmp_path / "o.mp4", 10) as mp4:
        mp4.write(img)
    p = _probe(tmp_path / "o.mp4")
    assert p["size"] == (64, 48) and p["n"] == 1
    first = p["first"].astype(int)
    assert first[:, 63].mean() > 200 and first[47, :].mean() > 200, "the padding repeats the bright edge"
    assert first[:h - 2, :w - 2].mean() < 30 and first[0, :w - 2].mean() < 30, "nothing added at the top or left"
