"""The SQLite job store: submit, lease, renew, finish, retry, prune.

The contract every backend keeps (tests/test_job_store.py runs it per backend):

- a job is committed before ``submit`` returns (the API answers 202 only then);
- an event for an image whose job of the same action is still pending is
  folded into that job instead of queueing a second copy;
- per image key (account/region/repository:tag) the newest event wins: at
  most one job per key runs at a time, and a job that a newer event has
  overtaken ends ``superseded`` instead of running — so a stale DELETE never
  removes a newer push and an older PUSH never overwrites a newer one;
- an event time more than ``max_skew_seconds`` ahead of the store's clock
  counts as dated ``max_skew_seconds`` before it arrived (a broken clock is
  trusted least); a reconciliation repair is never superseded by an event;
- an attempt is counted when its job is leased; a lease expires unless its
  owner renews it, and only the owner can record or finish the attempt
  (``LeaseLostError`` otherwise), so a job never completes twice;
- an attempt that never ended (the process died, the lease ran out) sends its
  job back to pending after ``limits.backoff``, or to ``failed`` once it has
  had ``limits.max_attempts``, so a job that kills its process cannot
  crash-loop the service or hold up the queue;
- pruning removes finished jobs past the retention, with their event order
  and old reconciliation passes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ecr_ocir_sync.jobs import ordering
from ecr_ocir_sync.jobs.database import Database
from ecr_ocir_sync.jobs.model import (
    SUPERSEDED_REASON,
    AttemptLimits,
    BacklogFullError,
    DestinationRecord,
    Job,
    JobNotFoundError,
    JobState,
    JobStateError,
    LeaseLostError,
    SubmitResult,
    bounded,
    destinations_to_text,
)
from ecr_ocir_sync.jobs.ordering import fetch as _fetch
from ecr_ocir_sync.jobs.ordering import row_job as _job
from ecr_ocir_sync.jobs.request import SyncRequest

__all__ = [
    "DEFAULT_MAX_SKEW",
    "SUPERSEDED_REASON",
    "BacklogFullError",
    "JobNotFoundError",
    "JobStateError",
    "JobStore",
    "LeaseLostError",
]

DEFAULT_MAX_SKEW = 300.0  # seconds an event may be dated ahead of the store's clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT,
    digest TEXT,
    image_key TEXT NOT NULL,
    event_time REAL NOT NULL,
    event_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL,
    last_error TEXT,
    lease_owner TEXT,
    lease_expires REAL,
    destinations TEXT NOT NULL DEFAULT '{}',
    origin TEXT NOT NULL DEFAULT 'event'
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, not_before, seq);
CREATE INDEX IF NOT EXISTS jobs_image ON jobs (image_key, state);
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (state, lease_expires);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished);
-- The newest event seen per image key, and the job that carries it.
CREATE TABLE IF NOT EXISTS image_events (
    image_key TEXT PRIMARY KEY,
    event_time REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);
-- Reconciliation passes: a pass started and never finished was cut short by a restart.
CREATE TABLE IF NOT EXISTS reconcile_passes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    outcome TEXT,
    summary TEXT
);
"""


class JobStore:
    """Durable jobs in ``<data_dir>/jobs.sqlite3``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        limits: AttemptLimits | None = None,
        max_skew_seconds: float = DEFAULT_MAX_SKEW,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "jobs.sqlite3"
        self._clock = clock
        self._limits = limits or AttemptLimits()
        self._max_skew = max_skew_seconds
        self._db = Database(self.path, _SCHEMA, prepare=ordering.migrate)

    @property
    def healthy(self) -> bool:
        """False once the store can take no more work (closed, or its thread died)."""
        return self._db.healthy

    @property
    def location(self) -> str:
        return str(self.path)

    def open(self) -> JobStore:
        self._db.start()
        return self

    def close(self) -> None:
        self._db.stop()

    async def start(self) -> None:
        self.open()

    async def stop(self) -> None:
        self.close()

    # -- intake ---------------------------------------------------------------

    async def submit(self, request: SyncRequest, max_pending: int | None = None) -> SubmitResult:
        """Commit ``request`` as a job (or fold it into a pending one) durably.

        Raises BacklogFullError, committing nothing, when a new job is needed and
        ``max_pending`` jobs are already pending or running.
        """
        now = self._clock()

        def work(connection: sqlite3.Connection) -> SubmitResult:
            return ordering.submit(connection, request, now, self._max_skew, max_pending)

        return await self._db.call(work)

    # -- workers --------------------------------------------------------------

    async def lease(self, owner: str, lease_seconds: float) -> Job | None:
        """Take the next runnable job for ``owner`` (one worker) and count the attempt.

        On the way, jobs whose lease ran out are sent back (see ``abandon``), jobs a
        newer event overtook end superseded, and jobs out of attempts end failed.
        """
        now = self._clock()
        limits = self._limits

        def work(connection: sqlite3.Connection) -> Job | None:
            while True:
                # Two narrow queries instead of one OR: each walks an index in order and
                # stops at its first row, whatever the queue's length.
                expired = connection.execute(
                    """SELECT * FROM jobs WHERE state = 'running' AND lease_expires <= ?
                       ORDER BY seq LIMIT 1""",
                    (now,),
                ).fetchone()
                if expired is not None:
                    ordering.abandon(connection, expired, limits, now)
                    continue
                row = connection.execute(
                    """SELECT * FROM jobs INDEXED BY jobs_ready
                       WHERE state = 'pending' AND not_before <= :now
                         AND image_key NOT IN (SELECT image_key FROM jobs
                                               WHERE state = 'running' AND lease_expires > :now)
                       ORDER BY not_before, seq LIMIT 1""",
                    {"now": now},
                ).fetchone()
                if row is None:
                    return None
                if row["origin"] != "reconcile" and _overtaken(connection, row):
                    ordering.supersede(connection, row["seq"], now)
                    continue
                if row["attempts"] >= limits.max_attempts:
                    ordering.out_of_attempts(connection, row["seq"], row["attempts"], now)
                    continue
                connection.execute(
                    """UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?,
                       attempts = attempts + 1, started = COALESCE(started, ?), updated = ?
                       WHERE seq = ?""",
                    (owner, now + lease_seconds, now, now, row["seq"]),
                )
                return _fetch(connection, row["id"])

        return await self._db.call(work)

    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend the lease; False if the job is no longer this owner's."""
        now = self._clock()

        def work(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                """UPDATE jobs SET lease_expires = ?, updated = ?
                   WHERE id = ? AND lease_owner = ? AND state = 'running'""",
                (now + lease_seconds, now, job_id, owner),
            )
            return cursor.rowcount == 1

        return await self._db.call(work)

    async def record(
        self, job_id: str, owner: str, destinations: dict[str, DestinationRecord]
    ) -> None:
        """Save per-destination progress of a running job."""
        now = self._clock()
        text = destinations_to_text(destinations)

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                """UPDATE jobs SET destinations = ?, updated = ?
                   WHERE id = ? AND lease_owner = ? AND state = 'running'""",
                (text, now, job_id, owner),
            )

        await self._db.call(work)

    async def finish(
        self,
        job_id: str,
        owner: str,
        *,
        state: JobState,
        destinations: dict[str, DestinationRecord],
        error: str | None = None,
        retry_at: float | None = None,
    ) -> Job:
        """End an attempt: a final state, or back to pending until ``retry_at``.

        Raises LeaseLostError when ``owner`` no longer holds the lease: the job is
        another worker's now, and this attempt's outcome counts for nothing."""
        now = self._clock()
        text = destinations_to_text(destinations)

        def work(connection: sqlite3.Connection) -> Job:
            cursor = connection.execute(
                """UPDATE jobs SET state = ?, destinations = ?, last_error = ?, updated = ?,
                       not_before = COALESCE(?, not_before), finished = ?,
                       lease_owner = NULL, lease_expires = NULL
                   WHERE id = ? AND lease_owner = ? AND state = 'running'""",
                (
                    state.value,
                    text,
                    bounded(error),
                    now,
                    retry_at,
                    now if state.finished else None,
                    job_id,
                    owner,
                ),
            )
            if cursor.rowcount != 1:
                raise LeaseLostError(f"job {job_id} is no longer leased by {owner}")
            return _fetch(connection, job_id)

        return await self._db.call(work)

    async def recover(self) -> int:
        """At start-up: jobs left running by a dead process of this pod go back to pending
        after a backoff, or end failed when out of attempts (see ``abandon``)."""
        now = self._clock()
        limits = self._limits

        def work(connection: sqlite3.Connection) -> int:
            rows = connection.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
            for row in rows:
                ordering.abandon(connection, row, limits, now)
            return len(rows)

        return await self._db.call(work)

    # -- operators ------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        return await self._db.call(lambda connection: _fetch(connection, job_id))

    async def list(
        self, state: JobState | None = None, limit: int = 100, before: int | None = None
    ) -> list[Job]:
        """Up to ``limit`` jobs, newest first; with ``before``, only those older than the
        job whose ``seq`` it is (the next page)."""
        below = before if before is not None else 2**63 - 1

        def work(connection: sqlite3.Connection) -> list[Job]:
            if state is None:
                rows = connection.execute(
                    "SELECT * FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?", (below, limit)
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT * FROM jobs WHERE state = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    (state.value, below, limit),
                ).fetchall()
            return [_job(row) for row in rows]

        return await self._db.call(work)

    async def retry(self, job_id: str) -> Job:
        """Start a failed job again with a fresh set of attempts."""
        now = self._clock()

        def work(connection: sqlite3.Connection) -> Job:
            job = _fetch(connection, job_id)
            if job.state is not JobState.FAILED:
                raise JobStateError(f"job {job_id} is {job.state.value}; only failed jobs retry")
            connection.execute(
                """UPDATE jobs SET state = 'pending', attempts = 0, not_before = ?, updated = ?,
                   finished = NULL WHERE id = ?""",
                (now, now, job_id),
            )
            return _fetch(connection, job_id)

        return await self._db.call(work)

    async def prune(self, older_than_seconds: float) -> int:
        """Delete finished jobs that ended more than ``older_than_seconds`` ago, the event
        order only they kept, and reconciliation passes as old (the latest one stays)."""
        now = self._clock()
        cutoff = now - older_than_seconds

        def work(connection: sqlite3.Connection) -> int:
            return ordering.prune(connection, cutoff, now, self._max_skew)

        return await self._db.call(work)

    async def counts(self) -> dict[JobState, int]:
        def work(connection: sqlite3.Connection) -> dict[JobState, int]:
            rows = connection.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
            found = {JobState(row[0]): int(row[1]) for row in rows}
            return {state: found.get(state, 0) for state in JobState}

        return await self._db.call(work)

    async def oldest_pending_created(self) -> float | None:
        """When the oldest pending job was accepted; None when nothing waits."""

        def work(connection: sqlite3.Connection) -> float | None:
            row = connection.execute(
                "SELECT MIN(created) FROM jobs WHERE state = 'pending'"
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._db.call(work)

    # -- reconciliation passes ------------------------------------------------

    async def begin_pass(self) -> int:
        now = self._clock()

        def work(connection: sqlite3.Connection) -> int:
            cursor = connection.execute("INSERT INTO reconcile_passes (started) VALUES (?)", (now,))
            return int(cursor.lastrowid or 0)

        return await self._db.call(work)

    async def end_pass(self, pass_id: int, outcome: str, summary: str) -> None:
        now = self._clock()

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE reconcile_passes SET finished = ?, outcome = ?, summary = ? WHERE id = ?",
                (now, outcome, summary, pass_id),
            )

        await self._db.call(work)

    async def last_pass(self) -> tuple[float, float | None] | None:
        """(started, finished) of the latest pass; finished is None if it was cut short."""

        def work(connection: sqlite3.Connection) -> tuple[float, float | None] | None:
            row = connection.execute(
                "SELECT started, finished FROM reconcile_passes ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return (float(row[0]), row[1]) if row else None

        return await self._db.call(work)

    async def latest_pass(self) -> dict[str, Any] | None:
        """The latest pass as recorded: started, finished, outcome, summary (parsed)."""

        def work(connection: sqlite3.Connection) -> dict[str, Any] | None:
            row = connection.execute(
                "SELECT started, finished, outcome, summary FROM reconcile_passes "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            summary = json.loads(row["summary"]) if row["summary"] else None
            return {**dict(row), "summary": summary}

        return await self._db.call(work)

    async def last_complete_pass(self) -> float | None:
        """When the latest complete pass ended; None if none ever completed."""

        def work(connection: sqlite3.Connection) -> float | None:
            row = connection.execute(
                "SELECT MAX(finished) FROM reconcile_passes WHERE outcome = 'complete'"
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._db.call(work)

    @asynccontextmanager
    async def reconcile_lock(self) -> AsyncIterator[bool]:
        """Always held: one process serves a data directory (its serve.lock)."""
        yield True

    async def ping(self) -> None:
        """A real write, so readiness means the store can still commit."""
        now = self._clock()

        def work(connection: sqlite3.Connection) -> None:
            connection.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", (now,))

        await self._db.call(work)


def _overtaken(connection: sqlite3.Connection, row: sqlite3.Row) -> bool:
    """Whether a newer event for the row's image key has been accepted since."""
    latest = connection.execute(
        "SELECT seq FROM image_events WHERE image_key = ?", (row["image_key"],)
    ).fetchone()
    return latest is not None and latest["seq"] != row["seq"]
