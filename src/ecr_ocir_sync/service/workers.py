"""The worker pool: lease jobs, run them, renew leases, retry with backoff.

Several jobs run at once per process (``SYNC_WORKERS``), each worker loop
under its own lease owner and supervised (see supervisor.py).  A failed attempt
goes back to pending after an exponential, jittered delay (at least what a
Retry-After asked for); after ``SYNC_MAX_ATTEMPTS`` — or at once for a
failure no retry can fix — the job ends ``failed`` with its last error.  A
lease that cannot be renewed before it runs out, or that another worker took,
cancels the attempt: a job never completes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable

from ecr_ocir_sync.jobs.backend import Store
from ecr_ocir_sync.jobs.model import DestinationRecord, Job, JobState, LeaseLostError
from ecr_ocir_sync.observability.logs import log_context
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.outcome import DestinationStatus
from ecr_ocir_sync.registry.retry import backoff_delay
from ecr_ocir_sync.service.runner import Attempt, JobRunner
from ecr_ocir_sync.service.supervisor import Supervisor
from ecr_ocir_sync.settings import Settings

__all__ = ["WorkerPool"]

log = logging.getLogger("ecr_ocir_sync.service.workers")

_IDLE_POLL = 1.0  # how often an idle worker looks for jobs whose backoff has ended
_PROGRESS_EVERY = 2.0  # how often a running job's progress is written to the store
_PRUNE_EVERY = 3600.0
_RESTART_BASE, _RESTART_MAX = 1.0, 60.0  # backoff of a supervised loop that failed


def restart_delay(failures: int) -> float:
    """How long a supervised loop waits before starting again after ``failures``."""
    return backoff_delay(failures, _RESTART_BASE, _RESTART_MAX)


class WorkerPool:
    """``settings.workers`` supervised loops sharing one store and one runner."""

    def __init__(
        self,
        store: Store,
        runner: JobRunner,
        settings: Settings,
        metrics: Metrics,
        supervisor: Supervisor | None = None,
    ) -> None:
        # Host and pid say which pod holds a lease (the store is shared by a fleet);
        # each worker leases as <owner>-<n>.
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._store = store
        self._runner = runner
        self._settings = settings
        self._metrics = metrics
        self._supervisor = supervisor or Supervisor(metrics, restart_delay)
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()

    @property
    def alive(self) -> int:
        """Worker loops running now; fewer than ``settings.workers`` means not ready."""
        return self._supervisor.alive("worker")

    def wake(self) -> None:
        """A job was submitted: idle workers look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._workers = [
            self._supervisor.start(
                f"worker-{index}", "worker", functools.partial(self._loop, f"{self.owner}-{index}")
            )
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

    async def _loop(self, owner: str) -> None:
        """Lease and run jobs as ``owner``; any error escapes to the supervisor."""
        while not self._stopping:
            job = await self._store.lease(owner, self._settings.lease_seconds)
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _IDLE_POLL)
                continue
            task = asyncio.create_task(self._execute(job, owner), name=f"job-{job.id}")
            self._running.add(task)
            try:
                await asyncio.shield(task)
            finally:
                self._running.discard(task)

    async def _execute(self, job: Job, owner: str) -> None:
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
            lease = _Lease(self._store, job.id, owner, self._settings.lease_seconds)
            crash: str | None = None
            try:
                log.info("job started")
                attempt = await lease.hold(
                    self._runner.run(job, _ProgressSaver(self._store, job.id, owner))
                )
            except asyncio.CancelledError:
                log.warning("job interrupted by shutdown; it resumes on restart")
                raise
            except Exception as error:
                log.exception("job attempt crashed")
                attempt, crash = Attempt(dict(job.destinations)), str(error)
            finally:
                self._metrics.in_flight.dec()
                self._metrics.job_duration.labels(job.action).observe(time.monotonic() - started)
            if attempt is None:
                log.warning("lost the lease: attempt cancelled; the job's new owner runs it")
                return
            # A store error here escapes to the supervisor; the lease then runs out and
            # the job is taken up again.
            await self._conclude(job, owner, attempt, crash)

    async def _conclude(
        self, job: Job, owner: str, attempt: Attempt, crash: str | None = None
    ) -> None:
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
        try:
            await self._store.finish(
                job.id,
                owner,
                state=state,
                destinations=attempt.destinations,
                error=error,
                retry_at=retry_at,
            )
        except LeaseLostError:
            log.warning("lost the lease before the outcome was saved; the new owner decides")
            return
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


class _Lease:
    """Keeps a job's lease renewed while an attempt runs; cancels the attempt if it is lost.

    A renewal that fails (a store error) is tried again at the next tick; the lease
    counts as lost when the store says another owner has it, or when renewals kept
    failing until it ran out — then another worker may already run the job.
    """

    def __init__(self, store: Store, job_id: str, owner: str, seconds: float) -> None:
        self._store = store
        self._job_id = job_id
        self._owner = owner
        self._seconds = seconds

    async def hold(self, attempt: Awaitable[Attempt]) -> Attempt | None:
        """``attempt``'s result, or None when the lease was lost (the attempt is cancelled)."""
        work = asyncio.ensure_future(attempt)
        keeper = asyncio.create_task(self._keep())
        try:
            await asyncio.wait({work, keeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            keeper.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, keeper, return_exceptions=True)
        if work.cancelled():
            return None
        return work.result()

    async def _keep(self) -> None:
        """Returns only when the lease is lost."""
        every = self._seconds / 3
        expires = time.monotonic() + self._seconds
        while True:
            await asyncio.sleep(min(every, max(0.0, expires - time.monotonic())))
            if time.monotonic() >= expires:
                log.warning("could not renew the lease before it ran out")
                return
            try:
                if not await self._store.renew(self._job_id, self._owner, self._seconds):
                    log.warning("the lease was taken by another worker")
                    return
            except Exception:
                log.exception("renewing the lease failed; trying again")
                continue
            expires = time.monotonic() + self._seconds


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
