"""``python -m realtime.batch INPUTS... --out DIR`` (also ``mca-pose-batch``): many videos on Ray.

Examples::

    python -m realtime.batch clips/ --out poses/                       # embedded local Ray, one worker a core
    python -m realtime.batch "archive/**/*.mp4" paths.txt --out poses/ --address auto
    python -m realtime.batch clips/ --out poses/ --address ray://head:10001 --gpus-per-worker 0.25
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from realtime.batch.worker import WorkerSettings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option explained in --help)."""
    p = _Parser(
        prog="python -m realtime.batch",
        description="Pose estimation on many videos at once, on Ray: by default an embedded Ray on this machine "
                    "(one worker per core), or an existing Ray cluster (--address). Each video gives the same "
                    "outputs as 'python -m realtime.run' (annotated MP4, COCO JSON, JSON Lines) in DIR, named "
                    "after it; DIR/manifest.jsonl records every video as it finishes, and a rerun skips what is "
                    "done. Workers load the models once and take one whole video at a time (tracking and the MP4 "
                    "need frame order).",
        epilog="Exit codes: 0 every video done; 1 some video failed (see the manifest's 'error'); 2 a user error "
               "(one 'error:' line); 130 interrupted (Ctrl-C/SIGTERM) with videos left to do (rerun to resume).\n\n"
               "Ctrl-C once: no new videos, the running ones finish. Twice (or SIGTERM): the running ones stop "
               "and are recorded as interrupted. The manifest is valid at every moment.\n\n"
               "Not offered: splitting one long video into parts (--segment-seconds). Tracks would have to be "
               "stitched across the parts, and a part's tracker and smoother start cold, so ids and the first "
               "frames' keypoints would differ from one pass over the video, and an id swap where people cross "
               "in the overlap cannot be told from a correct join. One worker takes a whole video; parallelism "
               "comes from many videos.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("input and output")
    io.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="video files, folders (their video files), globs (quote them; '**' recurses) or text "
                         "files (.txt, .lst, .list) with one path a line ('#' comments; relative to the list)")
    io.add_argument("--out", "-o", type=Path, required=True, metavar="DIR",
                    help="output folder: <name>.mp4, <name>.json, <name>.jsonl per video, and manifest.jsonl. "
                         "On a cluster, inputs and DIR must be paths every node sees (a shared filesystem)")
    io.add_argument("--recursive", "-r", action="store_true", help="folders: also the videos in their subfolders")
    io.add_argument("--no-video", action="store_true", help="write only the JSON and JSON Lines (no MP4)")
    io.add_argument("--frames", type=int, metavar="N", help="stop each video after N frames")
    io.add_argument("--no-audio", action="store_true", help="do not copy the videos' sound into the MP4s")
    io.add_argument("--pace", action="store_true",
                    help="read each video at its own frame rate, as camera feeds arrive, not as fast as it decodes")
    io.add_argument("--retry-failed", action="store_true",
                    help="also redo videos the manifest records as failed (by default a rerun skips them)")
    io.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no closing summary")
    c = p.add_argument_group("cluster")
    c.add_argument("--address", metavar="ADDR",
                   help="'auto' (the cluster this machine belongs to, after 'ray start'), or ray://HOST:10001 "
                        "(Ray Client), or HOST:PORT (the head's GCS). Default: an embedded Ray on this machine, stopped at the "
                        "end. A 'ray start' cluster (Ray >= 2.59) wants RAY_AUTH_MODE=token and its token here")
    c.add_argument("--workers", type=int, metavar="N",
                   help="worker actors (default: as many as the CPUs, and GPUs with --gpus-per-worker, hold)")
    c.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="CPUs Ray reserves per worker (default 1); CPU workers give ONNX Runtime half of them "
                        "per model (at least 1 thread), so workers do not oversubscribe the cores")
    c.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="GPUs per worker; fractions share a GPU (0.25: four workers on one), on TensorRT where "
                        "it is installed (else ONNX Runtime CUDA). Default 0: CPU workers (ONNX Runtime CPU)")
    c.add_argument("--retries", type=int, default=2, metavar="N",
                   help="a video whose worker dies (crash, out of memory, node lost) is retried on a new worker "
                        "up to N times (default 2), then recorded as failed")
    m = p.add_argument_group("models and behaviour (as in realtime.run)")
    m.add_argument("--pose", metavar="MODEL", help="pose model file or bundled name (default mca_tiny_real)")
    m.add_argument("--detector", metavar="MODEL", help="detector file or bundled name (default ssdlite)")
    m.add_argument("--backend", default="auto", choices=["auto", "ort", "trt"],
                   help="auto (default): ONNX Runtime CPU for CPU workers; TensorRT where installed for GPU workers")
    m.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="TensorRT engine precision (default fp16)")
    m.add_argument("--int8", choices=["auto", "on", "off"],
                   help="INT8 on ONNX Runtime's CPU provider, as in realtime.run (default auto)")
    m.add_argument("--kpt-thr", type=float, metavar="T", help="joints under this confidence are not drawn")
    m.add_argument("--device", help="ONNX Runtime device, cpu or cuda (default: cpu for CPU workers)")
    m.add_argument("--threads", type=int, help="ONNX Runtime threads per model in each worker (default above)")
    m.add_argument("--conf", type=float, help="person detection threshold, 0..1 (default: the detector family's)")
    m.add_argument("--verify-conf", metavar="T|off",
                   help="also keep boxes from T up to --conf where the pose finds a person, as in realtime.run "
                        "(default: 0.2 for SSD detectors at their own threshold, off for YOLO)")
    m.add_argument("--max-persons", type=int, default=16, help="at most this many people per frame (default 16)")
    m.add_argument("--detect-every", type=int, default=1, metavar="N", help="run the detector every N frames")
    m.add_argument("--no-smooth", action="store_true", help="turn off the One Euro keypoint smoothing")
    m.add_argument("--crop-padding", type=float, metavar="F", help="crop side = F x the person box's longer side")
    m.add_argument("--flip-test", action="store_true", help="average with the mirrored crop (2x pose cost)")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging, and the workers' logs here")
    return p


def _check(args: argparse.Namespace) -> None:
    for name, v, lo in (("--workers", args.workers, 1), ("--frames", args.frames, 1), ("--threads", args.threads, 1),
                        ("--retries", args.retries, 0), ("--max-persons", args.max_persons, 1),
                        ("--detect-every", args.detect_every, 1)):
        if v is not None and v < lo:
            raise UserError(f"{name} must be >= {lo}, got {v}")
    if not args.cpus_per_worker > 0:
        raise UserError(f"--cpus-per-worker must be > 0, got {args.cpus_per_worker}")
    if args.gpus_per_worker < 0:
        raise UserError(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    if args.gpus_per_worker > 1 and args.gpus_per_worker != int(args.gpus_per_worker):
        raise UserError("--gpus-per-worker above 1 must be a whole number of GPUs")
    if args.kpt_thr is not None and not 0 <= args.kpt_thr <= 1:
        raise UserError(f"--kpt-thr must be between 0 and 1, got {args.kpt_thr}")
    if args.conf is not None and not 0 < args.conf < 1:
        raise UserError(f"--conf must be between 0 and 1, got {args.conf}")
    if args.crop_padding is not None and not 0.5 <= args.crop_padding <= 3:
        raise UserError(f"--crop-padding must be between 0.5 and 3, got {args.crop_padding}")
    from realtime.pipeline import parse_verify_conf

    try:
        parse_verify_conf(args.verify_conf)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    if args.address is not None and not (args.address == "auto" or args.address.startswith("ray://")
                                         or ":" in args.address):
        raise UserError(f"--address must be 'auto', ray://HOST:PORT or HOST:PORT, got {args.address!r}")


def _model_spec(spec: str | None, role: str) -> str | None:
    """A spec every worker can resolve: bundled names stay names, files become absolute paths."""
    from realtime.models import BUNDLED, ModelError, resolve_model

    try:
        path = resolve_model(spec, role)
    except ModelError as e:
        raise UserError(f"{role} model: {e}") from None
    if spec is None or spec.removesuffix(".onnx") in BUNDLED or not Path(spec).expanduser().exists():
        return spec
    return str(path.resolve())


def worker_settings(args: argparse.Namespace) -> "WorkerSettings":
    """The workers' settings from the command line (CPU workers: ONNX Runtime on the CPU, half their CPUs)."""
    from realtime.batch.worker import WorkerSettings
    from realtime.pipeline import parse_verify_conf

    gpu = args.gpus_per_worker > 0
    backend = args.backend if gpu or args.backend != "auto" else "ort"
    device = args.device or (None if gpu else "cpu")
    threads = args.threads or max(1, int(args.cpus_per_worker) // 2)
    return WorkerSettings(pose=_model_spec(args.pose, "pose"), detector=_model_spec(args.detector, "detector"),
                          backend=backend, precision=args.precision, device=device, threads=threads, conf=args.conf,
                          max_persons=args.max_persons, detect_every=args.detect_every, smooth=not args.no_smooth,
                          crop_padding=args.crop_padding, flip_test=args.flip_test, max_frames=args.frames,
                          video=not args.no_video, int8=args.int8, kpt_thr=args.kpt_thr, audio=not args.no_audio,
                          pace=args.pace, verify_conf=parse_verify_conf(args.verify_conf))


def plan(args: argparse.Namespace, manifest: Any) -> tuple[list[Any], dict[str, int], list[str]]:
    """The videos to run now, counts of those skipped, and every input of the job (absolute paths)."""
    from realtime.batch.inputs import InputError, assign_stems, expand_inputs
    from realtime.batch.worker import VideoJob

    try:
        inputs = expand_inputs(args.inputs, recursive=args.recursive)
    except InputError as e:
        raise UserError(str(e)) from None
    out = Path(os.path.abspath(args.out))
    inside = [i for i in inputs if out == i.parent or out in i.parents]
    if inside:
        log.warning("skipping %d input(s) inside the output folder %s (outputs of this job?)", len(inside), out)
        inputs = [i for i in inputs if i not in inside]
        if not inputs:
            raise UserError(f"every input is inside the output folder {out}; give another --out")
    known = {k: r["stem"] for k, r in manifest.records.items() if isinstance(r.get("stem"), str)}
    stems = assign_stems(inputs, out, known)
    jobs, skipped = [], {"done": 0, "failed": 0}
    for i in inputs:
        rec = manifest.records.get(str(i), {})
        status = rec.get("status")
        if status == "done":
            if all((out / n).exists() for n in (rec.get("outputs") or {}).values()):
                skipped["done"] += 1
                continue
            log.warning("%s: done earlier but its outputs are gone; running it again", i)
        elif status == "failed" and not args.retry_failed:
            skipped["failed"] += 1
            continue
        jobs.append(VideoJob(str(i), str(out), stems[str(i)]))
    return jobs, skipped, [str(i) for i in inputs]


def _bar_text(runner: Any) -> str:
    t = runner.tally
    running = runner.running()
    fps, vph = t.rates(sum(r.frames for r in running))
    return f"done {t.done} failed {t.failed} running {len(running)} | {fps:.1f} frames/s, {vph:.0f} videos/h"


def _summary(tally: Any, skipped: dict[str, int], workers: int, info: dict | None, manifest: Path,
             left: int) -> str:
    fps, vph = tally.rates()
    seconds = time.perf_counter() - tally.started_at
    lines = [f"videos: {tally.done} done, {tally.failed} failed, {tally.interrupted} interrupted, {left} not started; "
             f"skipped {skipped['done']} done and {skipped['failed']} failed in earlier runs",
             f"{tally.frames} frames, {tally.persons} persons in {seconds:.1f} s: {fps:.1f} frames/s, "
             f"{vph:.0f} videos/hour on {workers} worker(s)"
             + (f" ({info['backend']}, {info['threads']} thread(s) per model)" if info else "")]
    if tally.retried or tally.workers_replaced:
        lines.append(f"workers replaced {tally.workers_replaced}, videos retried {tally.retried}")
    for inp, err in tally.failures[:10]:
        lines.append(f"failed: {inp}: {err}")
    if len(tally.failures) > 10:
        lines.append(f"... and {len(tally.failures) - 10} more failures (see the manifest)")
    lines.append(f"manifest: {manifest}")
    return "\n".join(lines)


def run(args: argparse.Namespace, on_update: Callable[[Any], None] | None = None) -> int:
    """Run the batch job for parsed ``args``; raises :class:`UserError` for anything the user can fix.

    ``on_update(runner)`` is called from the driver loop after every change and progress poll
    (to embed the job: watch ``runner.running()``, ``runner.tally``, call ``runner.request_stop()``).
    """
    from realtime.batch.manifest import Manifest, ManifestError
    from realtime.batch.runner import (BatchRunner, ClusterError, RayUnavailable, cluster_slots, connect,
                                       install_signals)

    _check(args)
    settings = worker_settings(args)
    out = Path(os.path.abspath(args.out))
    try:
        manifest = Manifest(out / "manifest.jsonl")
    except ManifestError as e:
        raise UserError(str(e)) from None
    with manifest:
        jobs, skipped, inputs = plan(args, manifest)
        if not jobs:
            failed = sum(manifest.records.get(i, {}).get("status") == "failed" for i in inputs)
            if not args.quiet:
                print(f"nothing to do: {skipped['done']} videos done, {skipped['failed']} failed in earlier runs"
                      + (" (--retry-failed runs them again)" if failed else "") + f"\nmanifest: {manifest.path}")
            return EXIT_FAILED if failed else EXIT_OK
        from tqdm import tqdm

        try:
            cores = os.cpu_count() or 1
            need = (args.workers or 0) * args.cpus_per_worker
            started = connect(args.address, max(cores, int(need + 0.999)) if args.address is None else None,
                              args.verbose)
        except (RayUnavailable, ClusterError) as e:
            raise UserError(str(e)) from None
        ray = sys.modules["ray"]
        try:
            room = cluster_slots(args.cpus_per_worker, args.gpus_per_worker)
            # The embedded Ray never grows: no room is an error. A cluster with --workers may be autoscaling.
            if room == 0 and (args.workers is None or args.address is None):
                raise UserError(f"Ray has no room for one worker with {args.cpus_per_worker:g} CPU(s) and "
                                f"{args.gpus_per_worker:g} GPU(s); resources: {ray.cluster_resources()}")
            workers = args.workers or room
            if workers > room:
                log.warning("%d workers asked for, Ray's resources hold %d now; the others wait for resources",
                            workers, room)
            bar = tqdm(total=len(jobs), unit="video", desc="videos", dynamic_ncols=True,
                       disable=True if args.quiet else None)

            def on_record(rec: dict[str, Any]) -> None:
                if rec["status"] in ("done", "failed"):
                    bar.update(1)
                if rec["status"] == "failed" and not bar.disable:  # live, on a terminal; the summary lists all
                    bar.write(f"failed: {rec['input']}: {rec['error']}")

            def update(r: Any) -> None:
                bar.set_postfix_str(_bar_text(r))
                if on_update is not None:
                    on_update(r)

            runner = BatchRunner(jobs, settings, manifest, workers, args.cpus_per_worker, args.gpus_per_worker,
                                 args.retries, on_update=update, on_record=on_record)
            restore = install_signals(runner, bar.write if not args.quiet else lambda s: log.warning("%s", s))
            try:
                tally = runner.run()
            except ClusterError as e:
                raise UserError(str(e)) from None
            finally:
                restore()
                bar.close()
        finally:
            if started:
                ray.shutdown()
        left = len(runner.pending)
        if not args.quiet:
            print(_summary(tally, skipped, runner.workers, runner.worker_info, manifest.path, left))
        if runner.interrupted and (left or tally.interrupted):
            return EXIT_INTERRUPTED
        failed = any(manifest.records.get(i, {}).get("status") == "failed" for i in inputs)
        return EXIT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn user errors into one 'error:' line and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:  # a third Ctrl-C: stop waiting
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
