"""The worker pool: lease jobs, run them, renew leases, retry with backoff.

Several jobs run at once per process (``SYNC_WORKERS``).  A failed attempt
goes back to pending after an exponential, jittered delay (at least what a
Retry-After asked for); after ``SYNC_MAX_ATTEMPTS`` — or at once for a
failure no retry can fix — the job ends ``failed`` with its last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from ecr_ocir_sync.jobs.backend import Store
from ecr_ocir_sync.jobs.model import DestinationRecord, Job, JobState
from ecr_ocir_sync.observability.logs import log_context
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.outcome import DestinationStatus
from ecr_ocir_sync.registry.retry import backoff_delay
from ecr_ocir_sync.service.runner import Attempt, JobRunner
from ecr_ocir_sync.settings import Settings

__all__ = ["WorkerPool"]

log = logging.getLogger("ecr_ocir_sync.service.workers")

_IDLE_POLL = 1.0  # how often an idle worker looks for jobs whose backoff has ended
_PROGRESS_EVERY = 2.0  # how often a running job's progress is written to the store
_PRUNE_EVERY = 3600.0


class WorkerPool:
    """``settings.workers`` loops sharing one store and one runner."""

    def __init__(
        self, store: Store, runner: JobRunner, settings: Settings, metrics: Metrics
    ) -> None:
        # Host and pid say which pod holds a lease (the store is shared by a fleet).
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._store = store
        self._runner = runner
        self._settings = settings
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """A job was submitted: idle workers look now instead of at the next poll."""
        self._wake.set()

    @property
    def alive(self) -> int:
        """Worker loops still running (a loop that ended shrinks the pool)."""
        return sum(1 for task in self._workers if not task.done())

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._loop(), name=f"worker-{index}")
            for index in range(self._settings.workers)
        ]
        self._loops = [*self._workers, asyncio.create_task(self._prune_loop(), name="pruner")]
        self._metrics.workers_configured.set(self._settings.workers)
        self._metrics.workers_alive.set_function(lambda: self.alive)

    async def drain(self, grace: float) -> None:
        """Start no new job; give running ones ``grace`` seconds, then stop them.

        A stopped job keeps its ``running`` state in the store and is taken up
        again when the service restarts.
        """
        self._stopping = True
        self._wake.set()
        if self._running:
            log.info("draining: waiting up to %.0fs for %d job(s)", grace, len(self._running))
            await asyncio.wait(set(self._running), timeout=grace)
        for task in [*self._loops, *self._running]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._running, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                job = await self._store.lease(self.owner, self._settings.lease_seconds)
            except Exception:
                log.exception("leasing a job failed; trying again shortly")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _IDLE_POLL)
                continue
            task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
            self._running.add(task)
            try:
                await asyncio.shield(task)
            finally:
                self._running.discard(task)

    async def _execute(self, job: Job) -> None:
        with log_context(
            job_id=job.id,
            action=job.action,
            repository=job.repository,
            tag=job.tag,
            digest=job.digest,
            attempt=job.attempts,
        ):
            self._metrics.in_flight.inc()
            started = time.monotonic()
            renewer = asyncio.create_task(self._renew(job))
            try:
                log.info("job started")
                attempt = await self._runner.run(
                    job, _ProgressSaver(self._store, job.id, self.owner)
                )
                await self._conclude(job, attempt)
            except asyncio.CancelledError:
                log.warning("job interrupted by shutdown; it resumes on restart")
                raise
            except Exception as error:
                log.exception("job attempt crashed")
                await self._conclude(job, Attempt(dict(job.destinations)), crash=str(error))
            finally:
                renewer.cancel()
                self._metrics.in_flight.dec()
                self._metrics.job_duration.labels(job.action).observe(time.monotonic() - started)

    async def _renew(self, job: Job) -> None:
        every = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            if not await self._store.renew(job.id, self.owner, self._settings.lease_seconds):
                log.warning("lost the lease on this job")
                return

    async def _conclude(self, job: Job, attempt: Attempt, crash: str | None = None) -> None:
        settings = self._settings
        error = crash or attempt.error
        retry_at: float | None = None
        if crash is None and attempt.superseded is not None:
            state = JobState.SUPERSEDED
            error = attempt.superseded
        elif crash is None and attempt.succeeded:
            state = JobState.SUCCEEDED
        elif (crash is not None or attempt.retryable) and job.attempts < settings.max_attempts:
            state = JobState.PENDING
            delay = backoff_delay(
                job.attempts, settings.retry_base_seconds, settings.retry_max_seconds
            )
            # Never sooner than a Retry-After asked for: the whole job waits, not one request.
            retry_at = time.time() + max(delay, attempt.retry_after or 0.0)
        else:
            state = JobState.FAILED
        await self._store.finish(
            job.id,
            self.owner,
            state=state,
            destinations=attempt.destinations,
            error=error,
            retry_at=retry_at,
        )
        outcome = "retried" if state is JobState.PENDING else state.value
        self._metrics.jobs.labels(job.action, outcome).inc()
        now = time.time()
        for key, record in attempt.destinations.items():
            if record.status is DestinationStatus.SUCCEEDED:
                self._metrics.last_success.labels(key).set(now)
            log.info(
                "destination %s: %s",
                record.status,
                record.error or record.detail or "",
                extra={"destination": key},
            )
        if state is JobState.SUCCEEDED:
            log.info("job succeeded")
        elif state is JobState.SUPERSEDED:
            log.info("job superseded: %s", error)
        elif state is JobState.PENDING:
            log.warning(
                "job attempt failed, retrying in %.1fs: %s",
                retry_at - now if retry_at else 0,
                error,
            )
        else:
            log.error("job failed: %s", error)

    async def _prune_loop(self) -> None:
        while not self._stopping:
            try:
                removed = await self._store.prune(self._settings.retention_hours * 3600)
                if removed:
                    log.info("pruned %d finished job(s)", removed)
            except Exception:
                log.exception("pruning finished jobs failed")
            await asyncio.sleep(_PRUNE_EVERY)


class _ProgressSaver:
    """Writes a running job's per-destination progress, at most every few seconds."""

    def __init__(self, store: Store, job_id: str, owner: str) -> None:
        self._store = store
        self._job_id = job_id
        self._owner = owner
        self._last = 0.0
        self._pending: asyncio.Task[None] | None = None

    def __call__(self, records: dict[str, DestinationRecord]) -> None:
        now = time.monotonic()
        if now - self._last < _PROGRESS_EVERY or (self._pending and not self._pending.done()):
            return
        self._last = now
        self._pending = asyncio.create_task(
            self._store.record(self._job_id, self._owner, dict(records))
        )
