"""A bounded job queue: a fixed number of worker threads (sharing the loaded models), states a client can poll,
cancellation between steps, and expiry of finished jobs with their files."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(FaceDancerError):
    """More jobs than the queue holds: the client should retry later."""


class JobCancelled(Exception):
    """Raised inside a job's work when its cancellation was asked for."""


@dataclass(eq=False)
class Job:
    kind: str
    work: Callable[[Job], Any]
    id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    state: str = QUEUED
    progress: float = 0.0
    error: str | None = None
    result: Any = None
    exception: BaseException | None = field(default=None, repr=False)  # why it failed, for in-process callers
    files: list[Path] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _callbacks: list = field(default_factory=list, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Called by the work between steps: stops it with JobCancelled once cancel() was asked for."""
        if self._cancel.is_set():
            raise JobCancelled

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """fn(job) once the job has finished (at once when it already has); fn runs in the worker's thread."""
        with _callback_lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def _finish(self, state: str, error: str | None = None) -> None:
        self.state, self.error, self.finished = state, error, time.time()
        if state == DONE:
            self.progress = 1.0
        with _callback_lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # a callback's failure must not kill the worker
                log.exception("job %s: done callback failed", self.id)

    def describe(self) -> dict:
        """The JSON a client sees (GET /v1/jobs/{id})."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": round(self.progress, 4),
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
            "result": self.result if isinstance(self.result, dict) else None,
        }


_callback_lock = threading.Lock()


class JobQueue:
    """`workers` threads run submitted jobs in order; at most `max_jobs` may be queued or running at once.

    Finished jobs stay `ttl` seconds (for polling and download), then `on_expire(job)` deletes their files.
    """

    def __init__(
        self,
        workers: int,
        max_jobs: int,
        ttl: float,
        on_expire: Callable[[Job], None] | None = None,
        name: str = "jobs",
    ):
        self.max_jobs, self.ttl, self.name = max_jobs, ttl, name
        self._on_expire = on_expire
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-worker-{i}", daemon=True) for i in range(workers)
        ]
        self._sweeper = threading.Thread(target=self._sweep, name=f"{name}-expiry", daemon=True)
        for thread in (*self._threads, self._sweeper):
            thread.start()

    # -- client side ----------------------------------------------------------------------------------

    def submit(self, kind: str, work: Callable[[Job], Any], files: Iterable[Path] = ()) -> Job:
        """Queue `work(job)`; its return value becomes job.result. QueueFull when the queue is at its limit."""
        job = Job(kind, work, files=list(files))
        with self._lock:
            if self.active() >= self.max_jobs:
                raise QueueFull(f"the {self.name} queue is full ({self.max_jobs} jobs); retry later")
            self._jobs[job.id] = job
        self._pending.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once, a running one at its next step; finished jobs are left as they are."""
        job = self.get(job_id)
        if job is None:
            return None
        job._cancel.set()
        with self._lock:
            if job.state == QUEUED:
                job.work = None
                job._finish(CANCELLED)
        return job

    def active(self) -> int:
        """Jobs queued or running."""
        return sum(job.state in (QUEUED, RUNNING) for job in list(self._jobs.values()))

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def expire(self, now: float | None = None) -> int:
        """Forget finished jobs older than ttl and delete their files; returns how many went."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values() if j.finished is not None and now - j.finished >= self.ttl]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            if self._on_expire is not None:
                self._on_expire(job)
        return len(old)

    def close(self) -> None:
        """Stop the workers after cancelling what is queued or running."""
        self._stop.set()
        for job in self.jobs():
            if job.state in (QUEUED, RUNNING):
                self.cancel(job.id)
        for _ in self._threads:
            self._pending.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    # -- worker side ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while (job := self._pending.get()) is not None:
            with self._lock:
                if job.state != QUEUED:  # cancelled while waiting
                    continue
                job.state = RUNNING
            try:
                # a finished job keeps its result, not the models and inputs its work held
                work, job.work = job.work, None
                job.check_cancelled()
                job.result = work(job)
            except JobCancelled:
                job._finish(CANCELLED)
            except FaceDancerError as exc:
                job.exception = exc
                job._finish(FAILED, str(exc))
            except Exception as exc:
                log.exception("%s job %s failed", job.kind, job.id)
                job.exception = exc
                job._finish(FAILED, f"internal error: {type(exc).__name__}")
            else:
                job._finish(DONE)
            log.info("%s job %s: %s", job.kind, job.id, job.state)

    def _sweep(self) -> None:
        interval = min(max(self.ttl / 4, 0.5), 60.0)
        while not self._stop.wait(interval):
            try:
                self.expire()
            except Exception:
                log.exception("expiring jobs failed")
