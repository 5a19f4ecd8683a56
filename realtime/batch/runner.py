"""The Ray side of a batch job: a pool of long-lived worker actors, fed one video at a time by the driver.

Why plain actors and not Ray Data's ``map_batches`` with an actor pool: the unit of work is a
whole video (minutes, files written as a side effect), and the driver needs per-video
control that Ray Data's streaming executor keeps to itself: a manifest line the moment each
video ends, a bounded retry of *this video* on a fresh worker when its worker dies (Ray
Data retries tasks and restarts actors under its own policy), "hand out nothing more but let
the running ones finish" on Ctrl-C, and which videos are running now, for the progress bar.
With actors and ``ray.wait`` that is a short loop, and it needs only Ray core (no
pyarrow/pandas from ``ray[data]``).

Only the driver writes the manifest; workers write the videos' outputs.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from realtime.batch.manifest import Manifest
from realtime.batch.worker import VideoJob, VideoWorker, WorkerSettings, one_line

log = logging.getLogger(__name__)

__all__ = ["RayUnavailable", "ClusterError", "Running", "Tally", "BatchRunner", "connect", "install_signals",
           "slots_for", "cluster_slots", "creation_error"]

POLL_S = 0.5  # how often running workers are asked for their frame count
STOP_GRACE_S = 15.0  # after a second Ctrl-C, how long running videos get to stop before their workers are killed


class RayUnavailable(RuntimeError):
    """Ray is not installed (it is the optional ``cluster`` extra)."""


class ClusterError(RuntimeError):
    """Ray could not be reached, or no worker could start (one line for the user)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable("the batch command needs Ray: pip install 'mca-pose[cluster]' "
                             "(or pip install 'ray[client]>=2.60,<3')") from None
    return ray


def connect(address: str | None, num_cpus: int | None, verbose: bool = False) -> bool:
    """Start an embedded local Ray (``address`` None) or join a cluster (``auto``, ``ray://host:10001``).

    Returns True when this call started Ray (the caller shuts it down); an already initialised
    Ray (a test, a notebook) is used as it is.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.INFO if verbose else logging.ERROR)
    opts: dict[str, Any] = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    if address is None:  # "local": a new instance even when a `ray start` cluster runs on this machine
        opts.update(address="local", num_cpus=num_cpus, include_dashboard=False,
                    object_store_memory=200 * 2**20)  # records are small; do not reserve 30 % of RAM
    else:
        opts["address"] = address
    try:
        ray.init(**opts)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, gRPC errors ...
        where = "start a local Ray" if address is None else f"connect to the Ray cluster at {address}"
        hint = ""
        if address is not None and not os.environ.get("RAY_AUTH_MODE"):
            hint = ("; if the cluster uses token authentication (the default for 'ray start' since Ray 2.59), "
                    "set RAY_AUTH_MODE=token and give its token (ray get-auth-token, RAY_AUTH_TOKEN)")
        raise ClusterError(f"cannot {where}: {one_line(e)}{hint}") from None
    return True


@dataclass
class Running:
    """A video in flight: for the progress bar and for callbacks (``actor`` is the Ray handle)."""

    job: VideoJob
    actor: Any
    since: float
    frames: int = 0


@dataclass
class Tally:
    """What the job did so far (the bar's numbers and the closing summary)."""

    done: int = 0
    failed: int = 0
    interrupted: int = 0
    frames: int = 0
    persons: int = 0
    retried: int = 0
    workers_replaced: int = 0
    started_at: float = field(default_factory=time.perf_counter)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def rates(self, frames_in_flight: int = 0) -> tuple[float, float]:
        """Frames per second and videos per hour since the job started."""
        dt = max(time.perf_counter() - self.started_at, 1e-6)
        return (self.frames + frames_in_flight) / dt, 3600 * self.finished / dt


class _Slot:
    def __init__(self, actor: Any, ready_ref: Any) -> None:
        self.actor, self.ready_ref = actor, ready_ref
        self.work_ref: Any = None
        self.progress_ref: Any = None
        self.running: Running | None = None
        self.last_poll = 0.0


class BatchRunner:
    """Runs ``jobs`` on ``workers`` actors, writing each video's record to ``manifest`` as it ends.

    ``on_update(runner)`` is called after every change and poll (the CLI draws its bar there);
    ``on_record(record)`` after each manifest line.  ``request_stop()`` (first Ctrl-C): hand out
    no more videos, let the running ones finish; ``request_interrupt()`` (second Ctrl-C, SIGTERM):
    stop the running ones too, recorded as ``interrupted``.
    """

    def __init__(self, jobs: list[VideoJob], settings: WorkerSettings, manifest: Manifest, workers: int,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, retries: int = 2,
                 on_update: Callable[["BatchRunner"], None] | None = None,
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.ray = _ray()
        self.pending: deque[VideoJob] = deque(jobs)
        self.settings, self.manifest = settings, manifest
        self.workers, self.retries = max(1, min(workers, len(jobs))), retries
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self.on_update, self.on_record = on_update, on_record
        self.tally = Tally()
        self.slots: list[_Slot] = []
        self.stopping = threading.Event()
        self.interrupting = threading.Event()
        self.worker_info: dict[str, Any] | None = None
        resources: dict[str, Any] = {"num_cpus": cpus_per_worker}
        if gpus_per_worker > 0:
            resources["num_gpus"] = gpus_per_worker
        # Two threads per actor: one runs process(), the other answers progress() and stop() meanwhile.
        # No Ray restarts or task retries: the driver replaces a dead worker and retries its video itself.
        self._actor_cls = self.ray.remote(VideoWorker).options(max_concurrency=2, max_restarts=0,
                                                               max_task_retries=0, **resources)

    # -- state for the bar --------------------------------------------------------------------
    def running(self) -> list[Running]:
        return [s.running for s in self.slots if s.running is not None]

    @property
    def interrupted(self) -> bool:
        return self.stopping.is_set()

    def request_stop(self) -> None:
        self.stopping.set()

    def request_interrupt(self) -> None:
        self.stopping.set()
        self.interrupting.set()

    # -- the loop -----------------------------------------------------------------------------
    def _new_slot(self) -> _Slot:
        actor = self._actor_cls.remote(self.settings)
        return _Slot(actor, actor.ready.remote())

    def _start_workers(self) -> None:
        if self.gpus > 0:
            # One worker first: it builds the TensorRT engines into the shared cache, the others then load them
            # (several building the same engine at once on one GPU would race on the cache file).
            first = self._new_slot()
            self._await_ready(first)
            self.slots.append(first)
        while len(self.slots) < self.workers:
            self.slots.append(self._new_slot())

    def _await_ready(self, slot: _Slot) -> None:
        while not self.interrupting.is_set():
            done, _ = self.ray.wait([slot.ready_ref], timeout=POLL_S)
            if done:
                self._ready(slot)
                return

    def _ready(self, slot: _Slot) -> None:
        ref, slot.ready_ref = slot.ready_ref, None
        try:
            info = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the model did not load there (bad model, no TensorRT, node lost)
            why = creation_error(e)
            if self.worker_info is None:  # no worker ever started: the settings are wrong, stop the job
                raise ClusterError(f"a worker could not start: {why}") from None
            log.warning("a replacement worker could not start (%s); going on with fewer", why)
            slot.actor = None
            return
        self.worker_info = self.worker_info or info

    def _dispatch(self, slot: _Slot) -> None:
        job = self.pending.popleft()
        if job.attempt == 1:
            self.manifest.write({"input": job.input, "status": "started", "stem": job.stem,
                                 "outputs": job.outputs(self.settings.video)})
        slot.work_ref = slot.actor.process.remote(asdict(job))
        slot.running = Running(job, slot.actor, time.perf_counter())

    def _finish(self, slot: _Slot) -> None:
        ref, job = slot.work_ref, slot.running.job  # type: ignore[union-attr]
        slot.work_ref, slot.running, slot.progress_ref = None, None, None
        ray = self.ray
        try:
            rec = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # a bug escaped process(): this video fails, the worker lives
            rec = self._failed(job, one_line(getattr(e, "cause", None) or e))
        except ray.exceptions.RayError as e:  # the worker died (killed, crashed, out of memory, node lost)
            retry = not self.interrupting.is_set() and job.attempt <= self.retries
            if retry:
                log.warning("worker died on %s (%s); retrying on a new worker (attempt %d of %d)", job.input,
                            type(e).__name__, job.attempt + 1, self.retries + 1)
                self.tally.retried += 1
                self.pending.appendleft(VideoJob(job.input, job.out_dir, job.stem, job.attempt + 1))
            self._replace(slot)
            if retry:
                return
            if self.interrupting.is_set():
                rec = self._record(job, "interrupted", "stopped before the end of the video (worker stopped)")
            else:
                rec = self._failed(job, f"its worker died {job.attempt} times ({type(e).__name__})")
        self._write(rec)

    def _record(self, job: VideoJob, status: str, error: str | None) -> dict[str, Any]:
        return {"input": job.input, "status": status, "frames": 0, "seconds": 0.0, "persons": 0, "error": error,
                "outputs": None, "stem": job.stem, "attempts": job.attempt}

    def _failed(self, job: VideoJob, error: str) -> dict[str, Any]:
        return self._record(job, "failed", error)

    def _write(self, rec: dict[str, Any]) -> None:
        self.manifest.write(rec)
        t = self.tally
        if rec["status"] == "done":
            t.done += 1
        elif rec["status"] == "failed":
            t.failed += 1
            t.failures.append((rec["input"], rec.get("error") or "?"))
        else:
            t.interrupted += 1
        t.frames += rec.get("frames") or 0
        t.persons += rec.get("persons") or 0
        if self.on_record:
            self.on_record(rec)

    def _replace(self, slot: _Slot) -> None:
        try:
            self.ray.kill(slot.actor)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.tally.workers_replaced += 1
        if self.pending and not self.stopping.is_set():
            new = self._new_slot()
            slot.actor, slot.ready_ref = new.actor, new.ready_ref
        else:
            slot.actor = None

    def _poll(self, now: float) -> None:
        for s in self.slots:
            if s.running is None:
                continue
            if s.progress_ref is not None:
                done, _ = self.ray.wait([s.progress_ref], timeout=0)
                if done:
                    try:
                        s.running.frames = int(self.ray.get(s.progress_ref))
                    except Exception:  # noqa: BLE001 - a dying worker; its work_ref will say so
                        pass
                    s.progress_ref = None
            if s.progress_ref is None and now - s.last_poll >= POLL_S:
                s.progress_ref, s.last_poll = s.actor.progress.remote(), now

    def _interrupt_running(self) -> float:
        for s in self.slots:
            if s.running is not None:
                try:
                    s.actor.stop.remote()
                except Exception:  # noqa: BLE001 - a dead worker is handled by its work_ref
                    pass
        return time.perf_counter() + STOP_GRACE_S

    def run(self) -> Tally:
        """Process every pending job (or until stopped); returns the tally. Workers are killed at the end."""
        ray = self.ray
        self.tally = Tally()
        kill_at: float | None = None
        try:
            self._start_workers()
            while True:
                if self.interrupting.is_set() and kill_at is None:
                    kill_at = self._interrupt_running()
                for s in self.slots:
                    if s.ready_ref is None and s.running is None and s.actor is not None \
                            and self.pending and not self.stopping.is_set():
                        self._dispatch(s)
                busy = [s for s in self.slots if s.running is not None]
                starting = [s for s in self.slots if s.ready_ref is not None]
                if not busy and (self.stopping.is_set() or not self.pending):
                    break
                if not busy and not starting and not any(s.actor for s in self.slots):
                    raise ClusterError("no worker left to run the remaining videos")
                # By kind, not by identity: Ray Client (ray://) returns new ref objects from ray.wait.
                refs = {s.work_ref: (s, self._finish) for s in busy} | \
                    {s.ready_ref: (s, self._ready) for s in starting}
                done, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
                for ref in done:
                    slot, handle = refs[ref]
                    handle(slot)
                self._poll(time.perf_counter())
                if kill_at is not None and time.perf_counter() > kill_at:
                    for s in self.slots:
                        if s.running is not None:
                            ray.kill(s.actor)  # its work_ref fails next round: recorded as interrupted
                    kill_at = float("inf")
                if self.on_update:
                    self.on_update(self)
            for job in self.pending:  # retries that a stop kept from running again
                if job.attempt > 1:
                    self._write(self._record(job, "interrupted", "stopped before its retry"))
        finally:
            for s in self.slots:
                if s.running is not None:  # an error above: what was running did not finish
                    self._write(self._record(s.running.job, "interrupted", "the batch driver stopped"))
                if s.actor is not None:
                    try:
                        ray.kill(s.actor)
                    except Exception:  # noqa: BLE001
                        pass
        return self.tally


def install_signals(runner: BatchRunner, say: Callable[[str], None]) -> Callable[[], None]:
    """Ctrl-C once: no new videos; twice (or SIGTERM): stop the running ones; a third: give up waiting.

    Returns the function that puts the old handlers back. Only in the main thread (else a no-op).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    count = [0]

    def on_signal(signum: int, _frame: object) -> None:
        count[0] += 1
        if signum == signal.SIGTERM or count[0] == 2:
            say(f"{signal.Signals(signum).name}: stopping the running videos (recorded as interrupted)")
            runner.request_interrupt()
        elif count[0] == 1:
            say("Ctrl-C: no new videos; waiting for the running ones to finish (Ctrl-C again to stop them)")
            runner.request_stop()
        else:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def slots_for(resources: dict[str, float], cpus_per_worker: float, gpus_per_worker: float) -> int:
    """How many workers ``resources`` hold (CPUs, and GPUs when workers ask for some).

    Divides, then floors with a little slack: ``1 // 0.1`` is 9.0 in floating point, but ten
    workers of 0.1 GPU fit on one GPU (Ray counts resources in units of 1/10000).
    """
    def fit(have: float, each: float) -> int:
        return int(have / each + 1e-6)

    n = fit(resources.get("CPU", 1), max(cpus_per_worker, 1e-4))
    if gpus_per_worker > 0:
        n = min(n, fit(resources.get("GPU", 0), gpus_per_worker))
    return max(0, n)


def cluster_slots(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """How many workers the connected Ray's resources hold now."""
    return slots_for(_ray().cluster_resources(), cpus_per_worker, gpus_per_worker)


def creation_error(e: BaseException) -> str:
    """The one line that says why an actor's ``__init__`` failed (Ray wraps it in a traceback)."""
    lines = [ln.strip() for ln in str(getattr(e, "cause", None) or e).splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head and ":" in ln:
            return ln.split(": ", 1)[1] if head.rsplit(".", 1)[-1] in ("ModelError", "SourceError") else ln
    return one_line(e)
