"""python -m realtime.batch on an embedded local Ray: outputs, faults, resuming, a killed worker, Ctrl-C.

Six small generated videos (two people, one person, a second 'a.mp4' in another folder, a longer
one, one without people, one corrupt) through 2 CPU workers with the bundled synthetic models.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.batch.cli import UserError, build_parser, worker_settings
from realtime.batch.cli import run as batch_run
from realtime.batch.inputs import InputError, assign_stems, expand_inputs
from realtime.batch.manifest import Manifest, ManifestError, read_manifest
from realtime.batch.runner import slots_for
from realtime.run import main as run_main
from tests.realtime.conftest import synthetic_frames, write_video

REPO = Path(__file__).resolve().parents[2]
MODELS = ["--pose", "mca_tiny_synth", "--detector", "yolo_synth"]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is the optional 'cluster' extra (pip install -e '.[cluster]')")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    (root / "clips").mkdir()
    (root / "more").mkdir()
    v = {"a": write_video(root / "clips" / "a.mp4", synthetic_frames(10, people=2, seed=1)),
         "b": write_video(root / "clips" / "b.mp4", synthetic_frames(10, people=1, seed=2)),
         "long": write_video(root / "clips" / "long.mp4", synthetic_frames(40, people=1, seed=3)),
         "empty": write_video(root / "clips" / "empty.mp4", [np.full((240, 320, 3), 90, np.uint8)] * 8),
         "a2": write_video(root / "more" / "a.mp4", synthetic_frames(10, people=2, seed=4))}
    bad = root / "clips" / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    v["corrupt"] = bad
    (root / "list.txt").write_text("# the second a.mp4\nmore/a.mp4\n\n")
    v["list"] = root / "list.txt"
    return v


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra (pip install -e '.[cluster]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2**20, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]  # every line must be JSON


@needs_ray
def test_ctrl_c_leaves_a_valid_manifest(clips, tmp_path) -> None:
    """Ctrl-C once while the first video runs: nothing new starts; twice: it stops, recorded as interrupted.

    The signals go to the command's whole process group, as a terminal's Ctrl-C does (Ray's own processes
    started by the embedded Ray are in that group too unless Ray moves them out). --pace holds long.mp4 to its
    10 fps (4 s), so the second Ctrl-C lands mid-video however fast the machine decodes (CI's did 40 frames in 0.5 s).
    """
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "realtime.batch", str(clips["long"]), str(clips["a"]),
                             str(clips["b"]), "--out", str(out), "--workers", "1", "--pace", *MODELS],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and not (manifest.exists() and '"started"' in manifest.read_text()):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    recs = _lines(manifest)
    last = read_manifest(manifest)
    assert list(last) == [str(clips["long"])], "no video was handed out after Ctrl-C"
    assert last[str(clips["long"])]["status"] == "interrupted"
    assert [r["status"] for r in recs] == ["started", "interrupted"]
    assert not list(out.glob("long*")) and not (out / ".partial").exists(), "no partial output left in DIR"


def _args(inputs: list[Path], out: Path, *extra: str):
    return build_parser().parse_args([*map(str, inputs), "--out", str(out), "--workers", "2", "--quiet", *MODELS,
                                      *extra])


def test_batch_outputs_faults_resume_and_a_killed_worker(clips, local_ray, tmp_path) -> None:
    """--pace (10 fps) keeps long.mp4 running for 4 s: the driver polls progress every 0.5 s and kills it mid-video."""
    out = tmp_path / "out"
    inputs = [clips["a"].parent, clips["list"]]  # a folder and a path list
    killed: list[tuple[str, int]] = []

    def kill_long_mid_video(runner) -> None:
        for r in runner.running():
            if r.job.input == str(clips["long"]) and r.job.attempt == 1 and r.frames >= 3 and not killed:
                killed.append((r.job.input, r.frames))
                local_ray.kill(r.actor)

    assert batch_run(_args(inputs, out, "--pace"), on_update=kill_long_mid_video) == 1  # the corrupt one failed
    assert killed and killed[0][1] < 40, "the worker was killed in the middle of long.mp4"
    last = read_manifest(out / "manifest.jsonl")
    assert set(last) == {str(clips[k]) for k in ("a", "b", "long", "empty", "a2", "corrupt")}
    bad = last[str(clips["corrupt"])]
    assert bad["status"] == "failed" and "\n" not in bad["error"] and "corrupt.mp4" in bad["error"]
    assert last[str(clips["long"])]["status"] == "done" and last[str(clips["long"])]["attempts"] == 2
    assert last[str(clips["long"])]["frames"] == 40
    assert last[str(clips["empty"])]["status"] == "done" and last[str(clips["empty"])]["persons"] == 0
    assert (last[str(clips["a"])]["stem"], last[str(clips["a2"])]["stem"]) == ("a", "a-2"), "name collision"
    assert not (out / ".partial").exists() and not list(out.glob("*.tmp"))

    # The same outputs as python -m realtime.run on each video (keypoints, boxes, track ids: byte for byte).
    for key in ("a", "b", "long", "empty", "a2"):
        rec = last[str(clips[key])]
        ref = tmp_path / f"ref_{key}"
        assert run_main(["--source", str(clips[key]), *MODELS, "--quiet", "--output", str(ref) + ".mp4",
                         "--json", str(ref) + ".json", "--jsonl", str(ref) + ".jsonl"]) == 0
        for kind in ("json", "jsonl"):
            assert (out / rec["outputs"][kind]).read_bytes() == Path(f"{ref}.{kind}").read_bytes(), (key, kind)
        assert (out / rec["outputs"]["video"]).stat().st_size > 1000
    assert json.loads((out / "a.json").read_text()), "people were found in a.mp4"

    # A rerun does nothing new: same manifest, outputs untouched, the failed one not retried.
    before = (out / "manifest.jsonl").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert batch_run(_args(inputs, out)) == 1
    assert (out / "manifest.jsonl").read_bytes() == before
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_stop_lets_running_videos_finish_and_a_rerun_resumes(clips, local_ray, tmp_path) -> None:
    out = tmp_path / "out"
    three = [clips["a"], clips["b"], clips["empty"]]

    def stop_at_first_start(runner) -> None:
        if runner.running():
            runner.request_stop()

    args = _args(three, out, "--workers", "1")
    assert batch_run(args, on_update=stop_at_first_start) == 130
    last = read_manifest(out / "manifest.jsonl")
    assert [r["status"] for r in last.values()] == ["done"], "the running video finished, nothing else started"
    assert batch_run(args) == 0  # resumes with the two left
    last = read_manifest(out / "manifest.jsonl")
    assert [last[str(p)]["status"] for p in three] == ["done"] * 3
    assert last[str(clips["a"])]["attempts"] == 1 and len(_lines(out / "manifest.jsonl")) == 6


def test_inputs_globs_lists_and_errors(clips, tmp_path) -> None:
    root = clips["a"].parents[1]
    got = expand_inputs([str(root / "clips" / "*.mp4"), str(clips["list"]), str(clips["a"])])
    assert [p.name for p in got] == ["a.mp4", "b.mp4", "corrupt.mp4", "empty.mp4", "long.mp4", "a.mp4"]
    assert len(expand_inputs([str(root)], recursive=True)) == 6 and len(expand_inputs([str(root / "**" / "*.mp4")])) == 6
    for bad, msg in (([str(root / "nope.mp4")], "no such file"), ([str(root / "*.avi")], "no videos match")):
        with pytest.raises(InputError, match=msg):
            expand_inputs(bad)
    # names: taken by another input, by a file the manifest does not own, or reserved -> a suffix
    (tmp_path / "b.json").write_text("not ours")
    stems = assign_stems([Path("/x/a.mp4"), Path("/y/a.mp4"), Path("/x/b.mp4"), Path("/x/manifest.mp4")], tmp_path,
                         {"/old/a.mp4": "a"})
    assert stems == {"/x/a.mp4": "a-2", "/y/a.mp4": "a-3", "/x/b.mp4": "b-2", "/x/manifest.mp4": "manifest-2"}


def test_manifest_torn_line_is_cut_and_garbage_refused(tmp_path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({"input": "/v.mp4", "status": "done"}) + '\n{"input": "/w.mp4", "sta')
    with Manifest(path) as m:
        assert list(m.records) == ["/v.mp4"]
        m.write({"input": "/w.mp4", "status": "failed", "error": "x"})
    assert [r["input"] for r in _lines(path)] == ["/v.mp4", "/w.mp4"]
    path.write_text("not json\n")
    with pytest.raises(ManifestError, match="line 1"):
        read_manifest(path)


def test_user_errors_are_one_line(clips, tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for argv in ([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")],
                 [str(clips["a"]), "--out", str(clips["a"])],
                 [str(clips["a"]), "--out", str(tmp_path / "o"), "--pose", "nosuch"],
                 [str(clips["a"]), "--out", str(tmp_path / "o"), "--gpus-per-worker", "-1"]):
        r = subprocess.run([sys.executable, "-m", "realtime.batch", *argv], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1, (argv, r.stderr)


def test_one_job_per_output_folder(tmp_path) -> None:
    """A second driver on the same DIR is refused while the first holds its manifest, and allowed after."""
    path = tmp_path / "manifest.jsonl"
    with Manifest(path):
        with pytest.raises(ManifestError, match="another batch job"):
            Manifest(path)
    Manifest(path).close()


def test_worker_slots_count_fractions_exactly() -> None:
    assert slots_for({"CPU": 2.0}, 1.0, 0.0) == 2
    assert slots_for({"CPU": 2.0}, 0.1, 0.0) == 20  # 2 // 0.1 is 19.0 in floating point
    assert slots_for({"CPU": 16.0, "GPU": 1.0}, 1.0, 0.1) == 10
    assert slots_for({"CPU": 16.0, "GPU": 2.0}, 1.0, 0.3) == 6
    assert slots_for({"CPU": 3.0, "GPU": 1.0}, 1.0, 0.25) == 3  # the CPUs are the limit
    assert slots_for({"CPU": 16.0}, 1.0, 0.5) == 0  # GPU workers on a cluster without GPUs


def test_ray_and_torch_are_not_needed_until_a_job_runs(clips, tmp_path) -> None:
    """Without Ray (and without torch) --help works and a job is one 'error:' line naming the extra, exit 2."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = ("import runpy, sys; sys.modules['ray'] = None; sys.modules['torch'] = None; sys.argv[0] = 'batch'; "
            "runpy.run_module('realtime.batch', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--gpus-per-worker" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", code, str(clips["a"]), "--out", str(tmp_path / "o"), *MODELS],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: the batch command needs Ray") \
        and r.stderr.count("\n") == 1, r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@needs_ray
def test_an_existing_cluster_by_address_and_by_ray_client(clips, tmp_path) -> None:
    """`ray start --head`, then the command with --address HOST:PORT and with ray://HOST:PORT (Ray Client).

    Ray Client hands back new ref objects from ray.wait: the driver loop must not compare refs by identity.
    """
    psutil = pytest.importorskip("psutil", reason="psutil (dev extra) stops the test's own Ray processes")
    temp = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    gcs, client = _free_port(), _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    ray_cli = Path(sys.executable).with_name("ray")
    try:
        subprocess.run([str(ray_cli), "start", "--head", "--port", str(gcs), "--ray-client-server-port", str(client),
                        "--dashboard-agent-listen-port", str(_free_port()), "--num-cpus", "2",
                        "--include-dashboard", "false", "--temp-dir", str(temp)],
                       env=env, check=True, capture_output=True, timeout=120)
        for address, out in ((f"127.0.0.1:{gcs}", tmp_path / "gcs"), (f"ray://127.0.0.1:{client}", tmp_path / "rc")):
            r = subprocess.run([sys.executable, "-m", "realtime.batch", str(clips["a"]), str(clips["b"]),
                                str(clips["corrupt"]), "--out", str(out), "--address", address, "--quiet", *MODELS],
                               env=env, capture_output=True, text=True, timeout=180)
            assert r.returncode == 1 and "Traceback" not in r.stderr, (address, r.stderr[-2000:])  # corrupt failed
            last = read_manifest(out / "manifest.jsonl")
            assert [last[str(clips[k])]["status"] for k in ("a", "b", "corrupt")] == ["done", "done", "failed"]
            assert (out / "a.jsonl").read_bytes().count(b"\n") == 11  # header + 10 frames
    finally:
        mine = [p for p in psutil.process_iter(["cmdline"]) if str(temp) in " ".join(p.info["cmdline"] or [])]
        for p in mine:
            for q in [*p.children(recursive=True), p]:
                try:
                    q.kill()
                except psutil.Error:
                    pass
        shutil.rmtree(temp, ignore_errors=True)


def test_gpu_workers_on_a_ray_without_gpus_is_a_user_error(clips, local_ray, tmp_path) -> None:
    """Asking for GPU workers where Ray has no GPU must not wait forever for resources that never come."""
    with pytest.raises(UserError, match="no room for one worker with 1 CPU.* and 0.5 GPU"):
        batch_run(_args([clips["a"]], tmp_path / "out", "--gpus-per-worker", "0.5"))


def test_worker_settings_cpu_and_gpu() -> None:
    """CPU workers: ONNX Runtime on the CPU with half their CPUs per model; GPU workers: the auto backend (TensorRT)."""
    cpu = worker_settings(build_parser().parse_args(["x.mp4", "--out", "o", "--cpus-per-worker", "4"]))
    assert (cpu.backend, cpu.device, cpu.threads) == ("ort", "cpu", 2)
    gpu = worker_settings(build_parser().parse_args(["x.mp4", "--out", "o", "--gpus-per-worker", "0.25"]))
    assert (gpu.backend, gpu.device, gpu.threads) == ("auto", None, 1)


def test_verify_conf_reaches_the_workers_and_is_checked() -> None:
    """--verify-conf as in realtime.run: the family's band by default, off, a number; a bad value is a user error."""
    parse = lambda *a: build_parser().parse_args(["x.mp4", "--out", "o", *a])  # noqa: E731
    assert [worker_settings(parse(*a)).verify_conf for a in ((), ("--verify-conf", "off"),
                                                             ("--verify-conf", "0.25"))] == ["auto", None, 0.25]
    from realtime.batch.cli import _check
    with pytest.raises(UserError, match="--verify-conf must be 'off' or between 0 and 1, got 1.5"):
        _check(parse("--verify-conf", "1.5"))
