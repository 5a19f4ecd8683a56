"""``python -m realtime.bench.batch``: many videos with ``realtime.batch`` vs a shell loop of ``realtime.run``.

Cuts ``--clips`` short clips out of one video (default: the shared real pedestrian video,
``vtest.avi``; else the synthetic demo), then times, over the same clips and with the same
models and outputs (MP4, COCO JSON, JSON Lines):

- ``loop``: one ``python -m realtime.run`` process per clip, one after the other (what a user
  without a batch mode writes: a shell ``for`` loop; every clip pays for a Python start and
  the model loads);
- ``batch N``: ``python -m realtime.batch CLIPS --out DIR --workers N`` for each N in
  ``--workers`` (wall clock including Ray's start and the workers' model loads).

Reports videos/hour and frames/s per setting and the speed-up over the loop, as a Markdown
table (``--md``) and JSON (``--json``).  Timings on a shared machine are noisy: compare the
rows of one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """A setting that could not be measured (one line, exit code 1)."""


def shared_video() -> Path | None:
    """The shared real pedestrian video (``$MCA_SHARED/data/real-video/vtest.avi``), if this checkout has it."""
    root = Path(os.environ.get("MCA_SHARED", REPO.parent / "shared"))
    p = root / "data" / "real-video" / "vtest.avi"
    return p if p.is_file() else None


def make_clips(source: str, folder: Path, n: int, frames: int) -> list[Path]:
    """``n`` consecutive clips of ``frames`` frames each from ``source``, as H.264 MP4s (reused when present)."""
    from tqdm import tqdm

    from realtime.sinks import Mp4Writer
    from realtime.sources import open_source

    folder.mkdir(parents=True, exist_ok=True)
    clips = [folder / f"clip{i:03d}.mp4" for i in range(n)]
    stamp = folder / "clips.json"
    want = {"source": source, "n": n, "frames": frames}
    if stamp.exists() and json.loads(stamp.read_text()) == want and all(c.exists() for c in clips):
        return clips
    for c in folder.glob("clip*.mp4"):
        c.unlink()
    with open_source(source, max_frames=n * frames) as src:
        fps = src.fps if getattr(src, "fps", None) else 10.0
        it = iter(src.frames())
        for clip in tqdm(clips, desc="clips", unit="clip"):
            with Mp4Writer(clip, fps) as w:
                for _ in range(frames):
                    f = next(it, None)
                    if f is None:
                        raise BenchError(f"{source} has fewer than {n * frames} frames; "
                                         f"use fewer or shorter clips")
                    w.write(f.image)
    stamp.write_text(json.dumps(want))
    return clips


def _frames_in(jsonl: Path) -> int:
    """Frames in a ``realtime.run`` JSON Lines file (one line a frame after the ``joint_names`` header)."""
    with jsonl.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.startswith('{"frame"'))


def time_loop(clips: list[Path], out: Path, models: list[str]) -> dict[str, Any]:
    """One ``realtime.run`` process per clip, in sequence."""
    from tqdm import tqdm

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    frames, t0 = 0, time.perf_counter()
    for c in tqdm(clips, desc="loop", unit="video"):
        stem = out / c.stem
        subprocess.run([sys.executable, "-m", "realtime.run", "--source", str(c), "--quiet", *models,
                        "--output", f"{stem}.mp4", "--json", f"{stem}.json", "--jsonl", f"{stem}.jsonl"],
                       env=env, check=True)
        frames += _frames_in(Path(f"{stem}.jsonl"))
    return {"setting": "loop", "workers": 1, "seconds": time.perf_counter() - t0, "videos": len(clips),
            "frames": frames}


def time_batch(folder: Path, n_clips: int, out: Path, workers: int, models: list[str]) -> dict[str, Any]:
    """``realtime.batch`` over the clip folder with ``workers`` workers (a fresh output folder: nothing skipped)."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "realtime.batch", str(folder), "--out", str(out),
                        "--workers", str(workers), *models], env=env)
    seconds = time.perf_counter() - t0
    recs: dict[str, dict[str, Any]] = {}
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        recs[rec["input"]] = rec
    done = [r for r in recs.values() if r["status"] == "done"]
    if r.returncode != 0 or len(done) != n_clips:
        raise BenchError(f"the batch run with {workers} worker(s) did not finish every clip "
                         f"(exit {r.returncode}, {len(done)} of {n_clips} done)")
    return {"setting": f"batch {workers}", "workers": workers, "seconds": seconds, "videos": len(done),
            "frames": sum(r["frames"] for r in done),
            "worker_seconds": round(sum(r["seconds"] for r in done), 2)}


def _load() -> float:
    """The 1-minute load average (NaN where the OS has none): how busy the shared machine was."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def machine() -> str:
    """One line: CPU, cores, and the versions that matter here."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    vers = []
    for mod in ("numpy", "onnxruntime", "cv2", "av", "ray"):
        try:
            vers.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            vers.append(f"{mod} absent")
    return f"{cpu}; logical cores {os.cpu_count()}; python {platform.python_version()}; " + "; ".join(vers)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The results as the Markdown page docs/benchmarks_batch.md holds."""
    loop = next((r for r in rows if r["setting"] == "loop"), None)
    lines = ["# Batch benchmark: `realtime.batch` vs a shell loop of `realtime.run`", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}. Shared with other jobs while measured (the load column: the 1-minute "
             "load average when the setting started; above the core count, other jobs took CPU time), so timings "
             "are noisy: compare the rows of one run, and rerun before drawing conclusions from small ratios.", "",
             f"Clips: {meta['clips']} clips of {meta['frames_per_clip']} frames cut from {meta['source']} "
             f"(H.264 MP4), models {meta['models']}; every setting writes the MP4, COCO JSON and JSON Lines per clip. "
             "Wall clock includes process starts, Ray's start and model loads.", "",
             "| setting | workers | wall s | videos/hour | frames/s | vs loop | load |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        vph, fps = 3600 * r["videos"] / r["seconds"], r["frames"] / r["seconds"]
        ratio = f"{loop['seconds'] / r['seconds']:.2f}x" if loop else "-"
        lines.append(f"| {r['setting']} | {r['workers']} | {r['seconds']:.1f} | {vph:.0f} | {fps:.1f} | {ratio} "
                     f"| {r.get('load', float('nan')):.1f} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realtime.bench.batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", help="video the clips are cut from (default: the shared vtest.avi, else 'demo')")
    p.add_argument("--clips", type=int, default=20, help="number of clips (default 20)")
    p.add_argument("--frames-per-clip", type=int, default=30, help="frames per clip (default 30)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="batch worker counts (default 1 2)")
    p.add_argument("--no-loop", action="store_true", help="skip the realtime.run loop")
    p.add_argument("--pose", help="pose model (default: realtime.run's, mca_tiny_real)")
    p.add_argument("--detector", help="detector (default: realtime.run's, ssdlite)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "bench_batch",
                   help="folder for the clips and the outputs (default runs/bench_batch)")
    p.add_argument("--md", type=Path, help="write the Markdown table here (e.g. docs/benchmarks_batch.md)")
    p.add_argument("--json", type=Path, help="write the rows as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    """Cut the clips, time the loop and each worker count, print (and write) the table."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.clips < 1 or args.frames_per_clip < 1 or min(args.workers) < 1:
        print("error: --clips, --frames-per-clip and --workers must be >= 1", file=sys.stderr)
        return 2
    if importlib_missing("ray"):
        print("error: the batch benchmark needs Ray: pip install -e '.[cluster]'", file=sys.stderr)
        return 2
    source = args.source or str(shared_video() or "demo")
    models = [*(["--pose", args.pose] if args.pose else []), *(["--detector", args.detector] if args.detector else [])]
    folder = args.work / "clips"
    rows = []
    try:
        clips = make_clips(source, folder, args.clips, args.frames_per_clip)
        if not args.no_loop:
            load = _load()
            rows.append(time_loop(clips, args.work / "out_loop", models) | {"load": load})
            print(rows[-1], flush=True)
        for n in args.workers:
            load = _load()
            rows.append(time_batch(folder, len(clips), args.work / f"out_batch{n}", n, models) | {"load": load})
            print(rows[-1], flush=True)
    except (BenchError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shown = source if source == "demo" else Path(source).name
    meta = {"command": "python -m realtime.bench.batch " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine(), "clips": args.clips, "frames_per_clip": args.frames_per_clip, "source": shown,
            "models": " ".join(models) or "default (mca_tiny_real, ssdlite)"}
    text = markdown(rows, meta)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


if __name__ == "__main__":
    raise SystemExit(main())
