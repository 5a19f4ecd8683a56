"""End to end: python -m realtime.run on generated videos, outputs, faults, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.run import main
from tests.realtime.conftest import synthetic_frames, write_video

REPO = Path(__file__).resolve().parents[2]


def _decode(path: Path) -> tuple[int, tuple[int, int], float, str, str]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, (s.codec_context.width, s.codec_context.height), float(s.average_rate), s.codec_context.name, \
            s.codec_context.pix_fmt


def _args(models, src, tmp_path, *extra) -> list[str]:
    return ["--source", str(src), "--pose", str(models["pose"]), "--detector", str(models["detector"]),
            "--output", str(tmp_path / "out.mp4"), "--json", str(tmp_path / "out.json"),
            "--jsonl", str(tmp_path / "out.jsonl"), "--quiet", *extra]


def test_video_end_to_end(models, video, tmp_path) -> None:
    assert main(_args(models, video, tmp_path)) == 0
    n, size, fps, codec, pix = _decode(tmp_path / "out.mp4")
    assert (n, size, codec, pix) == (24, (320, 240), "h264", "yuv420p")
    assert fps == pytest.approx(10.0)
    data = (tmp_path / "out.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "faststart: the index precedes the media for browsers"
    res = json.loads((tmp_path / "out.json").read_text())
    assert len(res) == 24 and {r["image_id"] for r in res} == set(range(24))  # one fixed box per frame after NMS
    assert all(len(r["keypoints"]) == 16 * 3 for r in res)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["joint_names"][9] == "head_top" and len(lines) == 25
    assert {p["track_id"] for ln in lines[1:] for p in json.loads(ln)["people"]} == {0}


def test_coco_results_load_in_pycocotools(models, video, tmp_path) -> None:
    from pycocotools.coco import COCO

    assert main(_args(models, video, tmp_path, "--frames", "5")) == 0
    gt = {"images": [{"id": i, "width": 320, "height": 240} for i in range(5)], "annotations": [],
          "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(16)], "skeleton": []}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    coco = COCO(str(tmp_path / "gt.json"))
    dt = coco.loadRes(str(tmp_path / "out.json"))
    assert len(dt.getAnnIds()) == 5


@pytest.mark.parametrize("size,gray", [((161, 243), False), ((96, 64), True), ((240, 426), False)])
def test_odd_tiny_portrait_and_grayscale_videos(models, tmp_path, size, gray) -> None:
    w, h = size
    frames = [np.full((h, w, 3), 40 + 10 * i, np.uint8) for i in range(6)]
    if gray:
        frames = [np.repeat(f[..., :1], 3, axis=2) for f in frames]
    src = write_video(tmp_path / "in.mkv", frames, fps=12, codec="ffv1")  # lossless, any size
    assert main(_args(models, src, tmp_path)) == 0
    n, out_size, fps, _, _ = _decode(tmp_path / "out.mp4")
    assert n == 6 and out_size == (w + (w & 1), h + (h & 1)) and fps == pytest.approx(12.0)


def test_image_folder_source(models, tmp_path) -> None:
    import cv2

    d = tmp_path / "imgs"
    d.mkdir()
    for i, img in enumerate(synthetic_frames(3, (200, 150))):
        cv2.imwrite(str(d / f"{i:03d}.png"), img)
    (d / "notes.txt").write_text("ignored")
    assert main(_args(models, d, tmp_path)) == 0
    assert _decode(tmp_path / "out.mp4")[0] == 3


@pytest.mark.parametrize("case,match", [
    ("missing", "no such file"),
    ("not_video", "cannot open video"),
    ("pose_as_detector", "pose model"),
    ("detector_as_pose", "person detector"),
    ("overwrite_input", "refusing to overwrite"),
    ("attention_missing", "--show-attention needs"),
    ("bad_camera", "cannot open camera"),
    ("missing_model", "model not found"),
])
def test_faults_are_one_line_exit_2(models, video, tmp_path, capsys, case, match) -> None:
    src, extra = str(video), []
    pose, det = str(models["pose"]), str(models["detector"])
    out = tmp_path / "o.mp4"
    if case == "missing":
        src = str(tmp_path / "nope.mp4")
    elif case == "not_video":
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(os.urandom(4096))
        src = str(bad)
    elif case == "pose_as_detector":
        det = pose
    elif case == "detector_as_pose":
        pose = det
    elif case == "overwrite_input":
        out = Path(video)
    elif case == "attention_missing":
        extra = ["--show-attention"]
    elif case == "bad_camera":
        src = "97"
    elif case == "missing_model":
        pose = str(tmp_path / "none.onnx")
    rc = main(["--source", src, "--pose", pose, "--detector", det, "--output", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) >= 1 and err[-1].startswith("error:") and match in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_show_attention_overlay_runs(models, video, tmp_path) -> None:
    args = _args(models, video, tmp_path, "--frames", "4", "--show-attention")
    args[args.index("--pose") + 1] = str(models["pose_att"])
    assert main(args) == 0
    assert _decode(tmp_path / "out.mp4")[0] == 4


def test_corrupt_frames_are_skipped_and_the_rest_processed(models, tmp_path) -> None:
    """An MJPEG AVI with a few frames' JPEG data destroyed: those are skipped, the rest written."""
    import cv2

    path = tmp_path / "mjpeg.avi"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for f in synthetic_frames(20, (160, 120)):
        wr.write(f)
    wr.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) >= 20
    for s in starts[5:8]:  # wipe the entropy-coded data of frames 5..7
        for j in range(s + 700, min(s + 1400, len(data))):
            data[j] = 0xFF if j % 2 else 0x00
    path.write_bytes(bytes(data))
    assert main(_args(models, path, tmp_path)) == 0
    n = _decode(tmp_path / "out.mp4")[0]
    assert 15 <= n <= 20


def _run_subprocess(args: list[str], env_extra: dict | None = None, block_torch: bool = False) -> subprocess.Popen:
    code = ("import sys; sys.modules['torch'] = None\n" if block_torch else "") + \
        "import sys\nfrom realtime.run import main; raise SystemExit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_runtime_needs_no_torch(models, video, tmp_path) -> None:
    p = _run_subprocess(_args(models, video, tmp_path, "--frames", "3"), block_torch=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert _decode(tmp_path / "out.mp4")[0] == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_file_leaves_playable_mp4_and_valid_json(models, tmp_path, sig) -> None:
    total = 3000
    src = write_video(tmp_path / "long.mp4", synthetic_frames(10, (160, 120)) * (total // 10), fps=25)
    args = _args(models, src, tmp_path)
    args.remove("--quiet")
    p = _run_subprocess(args)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "out.mp4").exists():  # the writer has started
        time.sleep(0.2)
    time.sleep(2.0)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    buf = out + err
    assert p.returncode == 0, buf
    n = _decode(tmp_path / "out.mp4")[0]
    res = json.loads((tmp_path / "out.json").read_text())
    assert 0 < n < total
    assert {r["image_id"] for r in res} <= set(range(n)) and len(res) > 0
    jsonl = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(jsonl) == n + 1
    assert "interrupted" in buf or "stopping" in buf


@pytest.mark.parametrize("boxes,max_persons,expect", [
    ([], 16, 0),  # a detector that finds nobody: frames still written, empty results
    ([(8 + 6 * i, 32, 6, 20, 0.9 - 0.05 * i) for i in range(8)], 3, 3),  # beyond --max-persons: the most confident
])
def test_no_person_and_too_many_persons(models, video, tmp_path, boxes, max_persons, expect) -> None:
    from tests.realtime.conftest import constant_yolo_onnx

    det = constant_yolo_onnx(tmp_path / "d.onnx", boxes or [(1, 1, 1, 1, 0.0)])
    args = _args(models, video, tmp_path, "--frames", "4", "--max-persons", str(max_persons))
    args[args.index("--detector") + 1] = str(det)
    assert main(args) == 0
    frames = [json.loads(ln) for ln in (tmp_path / "out.jsonl").read_text().splitlines()[1:]]
    assert len(frames) == 4 and all(len(f["people"]) == expect for f in frames)
    if expect:
        assert min(p["box_score"] for f in frames for p in f["people"]) >= 0.9 - 0.05 * (expect - 1) - 1e-6
    assert _decode(tmp_path / "out.mp4")[0] == 4


def test_unreachable_stream_is_a_clear_error(models, tmp_path, capsys) -> None:
    rc = main(["--source", "rtsp://127.0.0.1:9/none", "--pose", str(models["pose"]), "--detector",
               str(models["detector"]), "--quiet"])
    assert rc == 2 and "cannot open stream" in capsys.readouterr().err
