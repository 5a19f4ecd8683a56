"""End to end: python -m realtime.run on generated videos, outputs, faults, interruption."""

from __future__ import annotations

import json
import os
import signal
import stat
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


@pytest.mark.parametrize("size,codec,pix_fmt", [
    ((161, 243), "ffv1", "yuv444p"),  # odd width and height
    ((96, 64), "ffv1", "gray"),  # tiny and truly grayscale (one plane)
    ((240, 426), "ffv1", "yuv444p"),  # portrait
    ((3840, 2160), "libx264", "yuv420p"),  # 4K
])
def test_odd_tiny_portrait_grayscale_and_huge_videos(models, tmp_path, size, codec, pix_fmt) -> None:
    w, h = size
    n = 2 if w > 2000 else 6
    frames = [np.full((h, w, 3), 40 + 10 * i, np.uint8) for i in range(n)]
    src = write_video(tmp_path / "in.mkv", frames, fps=12, codec=codec, pix_fmt=pix_fmt)
    assert main(_args(models, src, tmp_path)) == 0
    got, out_size, fps, codec_out, _ = _decode(tmp_path / "out.mp4")
    assert got == n and out_size == (w + (w & 1), h + (h & 1)) and fps == pytest.approx(12.0)
    assert codec_out == "h264"


def test_image_folder_source(models, tmp_path) -> None:
    import cv2

    d = tmp_path / "imgs"
    d.mkdir()
    for i, img in enumerate(synthetic_frames(3, (200, 150))):
        cv2.imwrite(str(d / f"{i:03d}.png"), img)
    (d / "notes.txt").write_text("ignored")
    assert main(_args(models, d, tmp_path)) == 0
    assert _decode(tmp_path / "out.mp4")[0] == 3


def _bad_codec(tmp_path: Path) -> str:
    from tests.realtime.test_sources import unsupported_codec_avi

    return str(unsupported_codec_avi(tmp_path / "qqqq.avi"))


def _garbage(tmp_path: Path) -> str:
    f = tmp_path / "garbage.onnx"
    f.write_bytes(os.urandom(2048))
    return f


def _no_cuda() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: --device cuda is no user error here")


# case -> (how to change the default arguments, what the one error line says)
FAULTS = {
    "missing file": (lambda a, t: a.update(source=str(t / "nope.mp4")), "no such file"),
    "not a video": (lambda a, t: (t / "bad.mp4").write_bytes(os.urandom(4096)) and a.update(source=str(t / "bad.mp4")),
                    "cannot open video"),
    "unsupported codec": (lambda a, t: a.update(source=_bad_codec(t)), "unsupported codec"),
    "camera that does not open": (lambda a, t: a.update(source="97"), "cannot open camera"),
    "unreadable stream": (lambda a, t: a.update(source="rtsp://127.0.0.1:9/none"), "cannot open stream"),
    "gstreamer pipeline": (lambda a, t: a.update(source="videotestsrc num-buffers=1 ! appsink"), "cannot open stream"),
    "pose as detector": (lambda a, t: a.update(detector=a["pose"]), "is a pose model"),
    "detector as pose": (lambda a, t: a.update(pose=a["detector"]), "is a person detector"),
    "garbage model": (lambda a, t: a.update(pose=str(_garbage(t))), "not a loadable ONNX model"),
    "missing model": (lambda a, t: a.update(pose=str(t / "none.onnx")), "model not found"),
    "unknown model name": (lambda a, t: a.update(detector="frobnicate"), "neither a file nor a bundled name"),
    "overwrite input": (lambda a, t: a.update(output=a["source"]), "refusing to overwrite the input"),
    "output is a directory": (lambda a, t: a.update(output=str(t)), "is a directory"),
    "output not mp4": (lambda a, t: a.update(output=str(t / "o.gif")), "must be an MP4 file"),
    "same outputs": (lambda a, t: a.update(json=str(t / "x.json"), jsonl=str(t / "x.json")), "different files"),
    "unwritable output": (lambda a, t: (t / "f").write_text("x") and a.update(output=str(t / "f" / "o.mp4")),
                          "cannot write"),
    "json onto a fifo": (lambda a, t: os.mkfifo(t / "p.json") or a.update(json=str(t / "p.json")), "it is a FIFO"),
    "mp4 onto a device": (lambda a, t: os.symlink("/dev/null", t / "n.mp4") or a.update(output=str(t / "n.mp4")),
                          "it is a device"),
    "attention missing": (lambda a, t: a.update(extra=["--show-attention"]), "--show-attention holistic needs"),
    "bad conf": (lambda a, t: a.update(extra=["--conf", "1.5"]), "--conf must be between 0 and 1"),
    "bad crop padding": (lambda a, t: a.update(extra=["--crop-padding", "9"]), "--crop-padding must be between"),
    "bad option value": (lambda a, t: a.update(extra=["--detect-every", "x"]), "invalid int value"),
    "unknown option": (lambda a, t: a.update(extra=["--frobnicate"]), "unrecognized arguments"),
    "directory as pose": (lambda a, t: a.update(pose=str(t)), "is a directory; give a model file"),
    "device tpu": (lambda a, t: a.update(extra=["--device", "tpu"]), "--device must be cpu, cuda or cuda:N"),
    "device cuda without cuda": (lambda a, t: _no_cuda() or a.update(extra=["--device", "cuda"]),
                                 "not on a CUDA GPU"),
    "bad kpt-thr": (lambda a, t: a.update(extra=["--kpt-thr", "2"]), "--kpt-thr must be between 0 and 1"),
    "bad verify-conf": (lambda a, t: a.update(extra=["--verify-conf", "half"]),
                        "--verify-conf must be 'off' or between 0 and 1, got half"),
    "ground truth without demo": (lambda a, t: a.update(detector="ground-truth"), "needs --source demo"),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_faults_are_one_line_exit_2(models, video, tmp_path, capsys, case) -> None:
    change, match = FAULTS[case]
    a = {"source": str(video), "pose": str(models["pose"]), "detector": str(models["detector"]),
         "output": str(tmp_path / "o.mp4"), "json": None, "jsonl": None, "extra": []}
    change(a, tmp_path)
    argv = ["--source", a["source"], "--pose", a["pose"], "--detector", a["detector"], "--output", a["output"],
            "--quiet", *a["extra"]]
    for k in ("json", "jsonl"):
        if a[k]:
            argv += [f"--{k}", a[k]]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors exit from parse_args
        rc = e.code
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0], err
    assert not (tmp_path / "o.mp4").exists() or case == "overwrite input"
    assert not (tmp_path / "p.json").exists() or stat.S_ISFIFO(os.lstat(tmp_path / "p.json").st_mode)


def test_missing_bundled_default_names_the_file_and_the_fix(tmp_path, monkeypatch, capsys) -> None:
    import realtime.models as M

    monkeypatch.setattr(M, "MODELS_DIR", tmp_path)
    assert main(["--source", "demo", "--frames", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pose_mca_tiny_synth.onnx" in err and "scripts/train_demo_pose.sh" in err


def test_show_without_display_is_a_warning_not_a_crash(models, video, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(_args(models, video, tmp_path, "--frames", "2", "--show")) == 0
    assert any("no display" in r.getMessage() for r in caplog.records)
    assert _decode(tmp_path / "out.mp4")[0] == 2


def test_demo_prints_recall_and_pck(models, tmp_path, capsys) -> None:
    """The demo source scores against its rendered ground truth (here with the test models, not the bundled)."""
    assert main(["--source", "demo", "--frames", "3", "--demo-size", "320x240", "--demo-people", "1",
                 "--pose", str(models["pose"]), "--detector", str(models["detector"]),
                 "--output", str(tmp_path / "d.mp4")]) == 0
    out = capsys.readouterr().out
    assert "frames in 3, out 3" in out and "detection recall" in out and "PCK@0.2" in out
    assert _decode(tmp_path / "d.mp4")[:3] == (3, (320, 240), 25.0)


@pytest.mark.parametrize("mode,flip", [("holistic", False), ("parts", False), ("holistic", True)])
def test_show_attention_overlay_runs(models, video, tmp_path, mode, flip) -> None:
    """The maps are drawn, also with --flip-test (issue 17.8: it drew none)."""
    plain = tmp_path / "plain"
    plain.mkdir()
    extra = ["--flip-test"] if flip else []
    for out, more in ((plain, []), (tmp_path, ["--show-attention", mode])):  # the same model: only the maps differ
        args = _args(models, video, out, "--frames", "2", *more, *extra)
        args[args.index("--pose") + 1] = str(models["pose_att"])
        assert main(args) == 0
    import av

    def first(path: Path) -> np.ndarray:
        with av.open(str(path)) as c:
            return next(c.decode(video=0)).to_ndarray(format="bgr24").astype(int)

    assert _decode(tmp_path / "out.mp4")[0] == 2
    below_text = slice(40, None)  # the overlay text (a rate, timing-dependent) is not what is compared
    diff = np.abs(first(tmp_path / "out.mp4") - first(plain / "out.mp4"))[below_text]
    assert diff.mean() > 1.0, "the maps are drawn"


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


@pytest.mark.parametrize("what", ["help", "file", "demo"])
def test_runtime_needs_no_torch(models, video, tmp_path, what) -> None:
    """`import torch` is made to fail: --help, a file run and the demo still work."""
    args = {"help": ["--help"], "file": _args(models, video, tmp_path, "--frames", "3"),
            "demo": ["--source", "demo", "--frames", "2", "--demo-size", "160x120", "--pose", str(models["pose"]),
                     "--detector", str(models["detector"]), "--quiet"]}[what]
    p = _run_subprocess(args, block_torch=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    if what == "help":
        assert "--show-attention" in out
    if what == "file":
        assert _decode(tmp_path / "out.mp4")[0] == 3


def test_import_time_shows_no_torch_module() -> None:
    """-X importtime lists every module the CLI imports: none from torch."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        "import realtime.run, realtime.pipeline, realtime.sources, realtime.detectors"],
                       cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr
    mods = [ln.rsplit("|", 1)[-1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")]
    assert "realtime.pipeline" in mods, "the import list was read"
    assert not [m for m in mods if m == "torch" or m.startswith("torch.")]


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
    assert f"{signal.Signals(sig).name}: stopping" in err, "the first signal stops gracefully"
    assert f"frames in {n}, out {n}" in out, "every frame read was written"


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


def test_variable_frame_rate_keeps_its_timestamps(models, tmp_path) -> None:
    """Issue 17.8: a variable-frame-rate video was written at a constant rate (frame n at n / fps)."""
    import av
    from fractions import Fraction

    times_ms = [0, 100, 150, 400, 450, 500, 900, 1000]
    src = tmp_path / "vfr.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"preset": "ultrafast", "bf": "0"}
        for img, t in zip(synthetic_frames(len(times_ms), (160, 120)), times_ms):
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert main(_args(models, src, tmp_path)) == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        got = [float(f.time) for f in c.decode(video=0)]
    assert got == pytest.approx([t / 1000 for t in times_ms], abs=2e-3)


def test_rotated_phone_video_is_written_upright(models, tmp_path) -> None:
    """Issue 17.4: the output of a video tagged 'display rotated 90 degrees' is portrait and needs no tag."""
    import av

    src = tmp_path / "phone.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.options = {"preset": "ultrafast"}
        s.set_display_rotation(90)
        for img in synthetic_frames(4, (160, 96)):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert main(_args(models, src, tmp_path)) == 0
    n, size, *_ = _decode(tmp_path / "out.mp4")
    assert (n, size) == (4, (96, 160))
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 0


def test_precision_that_a_detector_cannot_take_is_a_warning(video, models, tmp_path, caplog, monkeypatch) -> None:
    """Issue 17.8: --precision fp16 called the bundled SSD detector 'not a loadable ONNX model'.  The bundled SSDLite,
    cut before its TF loops (engines.ssd_cut), now converts; a detector that cannot (as the uncut TF graph could
    not) runs as it is, with one warning."""
    import realtime.models as M
    from realtime.models import BUNDLED, ModelError

    pytest.importorskip("onnx", reason="the FP16 conversion needs the onnx package")
    if not BUNDLED["ssdlite"].path.exists():
        pytest.skip("the bundled SSDLite detector is absent")
    args = _args(models, video, tmp_path, "--frames", "2", "--precision", "fp16")
    args[args.index("--detector") + 1] = "ssdlite"
    assert main(args) == 0
    assert not any("cannot be applied to the detector" in r.getMessage() for r in caplog.records)
    real = M.load_model

    def no_fp16_for_ssd(path, precision=None, **kw):  # noqa: ANN001, ANN202 - what an unconvertible graph does
        if precision == "fp16" and "ssdlite" in Path(path).name:
            raise ModelError(f"{Path(path).name} is not a loadable ONNX model: FP16 conversion failed")
        return real(path, precision=precision, **kw)

    monkeypatch.setattr(M, "load_model", no_fp16_for_ssd)
    caplog.clear()
    assert main(args) == 0
    assert any("--precision fp16 cannot be applied to the detector" in r.getMessage() for r in caplog.records)


def test_a_run_without_outputs_says_so(models, video, caplog) -> None:
    """First run: a run with no output option wrote nothing and said nothing."""
    assert main(["--source", str(video), "--pose", str(models["pose"]), "--detector", str(models["detector"]),
                 "--frames", "2", "--quiet"]) == 0
    assert any("no output asked for" in r.getMessage() for r in caplog.records)


def _video_with_sound(path: Path, audio_codec: str, seconds: float = 2.0, fps: int = 10, rate: int = 16000) -> Path:
    """A clip with a 440 Hz tone (AAC in MP4, or 16-bit PCM in an AVI, which MP4 cannot hold)."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264" if path.suffix == ".mp4" else "mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        a = c.add_stream(audio_codec, rate=rate)
        a.layout = "mono"
        fmt = "fltp" if audio_codec == "aac" else "s16"
        n, block = int(seconds * rate), 1024
        tone = np.sin(2 * np.pi * 440 * np.arange(n) / rate)
        for i, img in enumerate(synthetic_frames(int(seconds * fps), (160, 120))):
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(pkt)
        for i in range(0, n - block + 1, block):
            x = tone[i:i + block][None]
            x = x.astype(np.float32) if fmt == "fltp" else (x * 20000).astype(np.int16)
            f = av.AudioFrame.from_ndarray(x, format=fmt, layout="mono")
            f.sample_rate, f.pts = rate, i
            for pkt in a.encode(f):
                c.mux(pkt)
        for s in (v, a):
            for pkt in s.encode():
                c.mux(pkt)
    return path


@pytest.mark.parametrize("name,codec", [("tone.mp4", "aac"), ("tone.avi", "pcm_s16le")])
def test_sound_is_carried_into_the_mp4(models, tmp_path, name, codec) -> None:
    """Issue 17.8: the audio track was dropped; it is copied (AAC) or encoded to AAC (PCM), cut to the video."""
    import av

    src = _video_with_sound(tmp_path / name, codec)
    assert main(_args(models, src, tmp_path, "--frames", "15")) == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert [s.type for s in c.streams] == ["video", "audio"] and c.streams.audio[0].codec_context.name == "aac"
        samples = sum(f.samples for f in c.decode(audio=0))
    assert _decode(tmp_path / "out.mp4")[0] == 15
    assert samples / 16000 == pytest.approx(1.5, abs=0.15), "the sound of the 15 frames written"
    data = (tmp_path / "out.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "still index first"
    assert main(_args(models, src, tmp_path, "--frames", "3", "--no-audio")) == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert not c.streams.audio
