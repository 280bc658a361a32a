"""The job store's one interface, and the choice of backend.

Both backends keep the same promises (tests/test_job_store.py runs its
contract against each):

- ``submit`` returns only once the job is committed (the API answers 202 then);
- an event for an image whose job of the same action is still pending is
  folded into that job;
- per image key the newest event wins: at most one job per key runs at a
  time, and a job a newer event has overtaken ends ``superseded`` instead of
  running;
- an event time more than the allowed skew ahead of the store's clock counts
  as dated that skew before it arrived; a reconciliation repair is never
  superseded by an event;
- an attempt is counted when its job is leased; a lease expires unless
  renewed, and only its owner can record or finish the attempt
  (``LeaseLostError`` otherwise), so a job never completes twice;
- an attempt that never ended (its lease ran out, or ``recover`` found it)
  sends the job back to pending after ``AttemptLimits.backoff``, or to
  ``failed`` once it has had ``AttemptLimits.max_attempts``;
- pruning removes finished jobs past the retention, with the event order only
  they kept and old reconciliation passes (the latest stays).

SQLite (``<SYNC_DATA_DIR>/jobs.sqlite3``) serves one process. PostgreSQL
(``SYNC_DATABASE_URL``) serves a fleet: the same rules hold across every
process sharing the database, and one process at a time holds the
reconciliation lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from ecr_ocir_sync.jobs.model import (
    AttemptLimits,
    DestinationRecord,
    Job,
    JobState,
    SubmitResult,
)
from ecr_ocir_sync.jobs.request import SyncRequest

__all__ = ["Store", "open_store", "store_for"]


class Store(Protocol):
    """What the service, the workers and the reconciler need from a job store."""

    @property
    def location(self) -> str:
        """Where the jobs are, for messages (a file, or a database without its password)."""
        ...

    @property
    def healthy(self) -> bool:
        """False once the store can take no more work (stopped, or SQLite's thread died)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(
        self, request: SyncRequest, max_pending: int | None = None
    ) -> SubmitResult: ...

    async def lease(self, owner: str, lease_seconds: float) -> Job | None: ...

    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool: ...

    async def record(
        self, job_id: str, owner: str, destinations: dict[str, DestinationRecord]
    ) -> None: ...

    async def finish(
        self,
        job_id: str,
        owner: str,
        *,
        state: JobState,
        destinations: dict[str, DestinationRecord],
        error: str | None = None,
        retry_at: float | None = None,
    ) -> Job: ...

    async def recover(self) -> int: ...

    async def get(self, job_id: str) -> Job: ...

    async def list(
        self, state: JobState | None = None, limit: int = 100, before: int | None = None
    ) -> list[Job]: ...

    async def retry(self, job_id: str) -> Job: ...

    async def prune(self, older_than_seconds: float) -> int: ...

    async def counts(self) -> dict[JobState, int]: ...

    async def oldest_pending_created(self) -> float | None: ...

    async def begin_pass(self) -> int: ...

    async def end_pass(self, pass_id: int, outcome: str, summary: str) -> None: ...

    async def last_pass(self) -> tuple[float, float | None] | None: ...

    async def latest_pass(self) -> dict[str, Any] | None: ...

    async def last_complete_pass(self) -> float | None: ...

    def reconcile_lock(self) -> AbstractAsyncContextManager[bool]:
        """Held while this process reconciles; yields False if another process holds it."""
        ...

    async def ping(self) -> None: ...


def store_for(
    data_dir: Path, database_url: SecretStr | str | None, *, limits: AttemptLimits | None = None
) -> Store:
    """PostgreSQL when ``database_url`` is set, else SQLite in ``data_dir``."""
    if isinstance(database_url, SecretStr):
        database_url = database_url.get_secret_value()
    if database_url:
        from ecr_ocir_sync.jobs.postgres import PostgresJobStore  # noqa: PLC0415 - optional

        return PostgresJobStore(database_url, limits=limits)
    from ecr_ocir_sync.jobs.store import JobStore  # noqa: PLC0415

    return JobStore(data_dir, limits=limits)


@asynccontextmanager
async def open_store(
    data_dir: Path, database_url: SecretStr | str | None, *, limits: AttemptLimits | None = None
) -> AsyncIterator[Store]:
    """A started store, stopped on exit (for the CLI's one-off commands)."""
    store = store_for(data_dir, database_url, limits=limits)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()
