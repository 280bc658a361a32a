"""The PostgreSQL job store: the SQLite store's rules, kept across many processes.

Each operation is one transaction on a pooled connection, and returns only
after its commit. What SQLite gets from having one writer, this store gets
from the database:

- everything that decides which job of an image key is the newest or may
  run (``submit``, ``lease``) holds a transaction-scoped advisory lock on
  that key, so those decisions are serialised per tag across the fleet;
  ``lease`` only *tries* the lock and moves on to another tag, so a busy tag
  never stalls a worker;
- a partial unique index allows one ``running`` job per image key: the
  promise "never two copies of one tag at once" is the database's to keep;
- a dead process holds nothing: its leases expire and the next ``lease`` by
  any process sends the jobs back (after the job backoff, or to ``failed``
  once out of attempts, as SQLite's ``recover`` does at start-up); its
  reconciliation lock (a session lock) goes with its connection.

Function by function this module mirrors ``store.py``; the contract tests
run against both.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from ecr_ocir_sync.jobs.model import (
    AttemptLimits,
    DestinationRecord,
    Job,
    JobState,
    JobStateError,
    LeaseLostError,
    SubmitResult,
    bounded,
    destinations_to_text,
)
from ecr_ocir_sync.jobs.postgres_rules import (
    Connection,
    fetch,
    job_from_row,
    lease_candidate,
    prune,
    submit,
    take,
    try_lock_image,
)
from ecr_ocir_sync.jobs.postgres_schema import SCHEMA_LOCK, migrate
from ecr_ocir_sync.jobs.request import SyncRequest
from ecr_ocir_sync.jobs.store import DEFAULT_MAX_SKEW

__all__ = ["PostgresJobStore"]

T = TypeVar("T")

_RECONCILE_LOCK = (SCHEMA_LOCK[0], 1)
_BUSY_TAGS = 8  # tags found locked by other processes before a lease answers "nothing now"
_MAX_STEPS = 1000  # jobs superseded or found taken on the way, at most, per lease


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, "", ""))


class PostgresJobStore:
    """Durable jobs in a PostgreSQL database shared by every serving process."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        limits: AttemptLimits | None = None,
        max_skew_seconds: float = DEFAULT_MAX_SKEW,
        max_connections: int = 10,
    ) -> None:
        self.url = url
        self._clock = clock
        self._limits = limits or AttemptLimits()
        self._max_skew = max_skew_seconds
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url,
            connection_class=AsyncConnection[DictRow],
            kwargs={"row_factory": dict_row},
            min_size=1,
            max_size=max_connections,
            open=False,
            name="job-store",
        )

    @property
    def healthy(self) -> bool:
        """False until started and once stopped; the database's own health is ``ping``'s."""
        return not self._pool.closed

    @property
    def location(self) -> str:
        return _redacted(self.url)

    async def start(self) -> None:
        await self._pool.open(wait=True, timeout=30)
        async with self._pool.connection() as connection:
            await migrate(connection, self._clock())

    async def stop(self) -> None:
        await self._pool.close()

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``work`` in one transaction; returns after the commit."""
        async with self._pool.connection() as connection, connection.transaction():
            return await work(connection)

    # -- intake ---------------------------------------------------------------

    async def submit(self, request: SyncRequest, max_pending: int | None = None) -> SubmitResult:
        now = self._clock()
        return await self._run(
            lambda connection: submit(connection, request, now, self._max_skew, max_pending)
        )

    # -- workers --------------------------------------------------------------

    async def lease(self, owner: str, lease_seconds: float) -> Job | None:
        now = self._clock()

        async def work(connection: Connection) -> Job | None:
            busy: list[str] = []  # tags another process is deciding about right now
            for _ in range(_MAX_STEPS):
                row = await lease_candidate(connection, now, busy)
                if row is None:
                    return None
                key = row["image_key"]
                if not await try_lock_image(connection, key):
                    busy.append(key)
                    if len(busy) >= _BUSY_TAGS:
                        return None
                    continue
                job = await take(
                    connection,
                    row["seq"],
                    owner,
                    now,
                    now + lease_seconds,
                    clock=self._clock,
                    limits=self._limits,
                )
                if job is not None:
                    return job
            return None

        return await self._run(work)

    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        now = self._clock()

        async def work(connection: Connection) -> bool:
            cursor = await connection.execute(
                """UPDATE jobs SET lease_expires = %s, updated = %s
                   WHERE id = %s AND lease_owner = %s AND state = 'running'""",
                (now + lease_seconds, now, job_id, owner),
            )
            return cursor.rowcount == 1

        return await self._run(work)

    async def record(
        self, job_id: str, owner: str, destinations: dict[str, DestinationRecord]
    ) -> None:
        now = self._clock()
        text = destinations_to_text(destinations)

        async def work(connection: Connection) -> None:
            await connection.execute(
                """UPDATE jobs SET destinations = %s, updated = %s
                   WHERE id = %s AND lease_owner = %s AND state = 'running'""",
                (text, now, job_id, owner),
            )

        await self._run(work)

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
        now = self._clock()
        text = destinations_to_text(destinations)

        async def work(connection: Connection) -> Job:
            cursor = await connection.execute(
                """UPDATE jobs SET state = %s, destinations = %s, last_error = %s, updated = %s,
                       not_before = COALESCE(%s, not_before), finished = %s,
                       lease_owner = NULL, lease_expires = NULL
                   WHERE id = %s AND lease_owner = %s AND state = 'running'""",
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
            return await fetch(connection, job_id)

        return await self._run(work)

    async def recover(self) -> int:
        """Nothing to do at start-up: other processes may be running their jobs right now.

        A dead process's jobs are sent back by any process's ``lease`` once their
        leases expire (``SYNC_LEASE_SECONDS``), with the same attempt limit and
        backoff SQLite's ``recover`` applies.
        """
        return 0

    # -- operators ------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        return await self._run(lambda connection: fetch(connection, job_id))

    async def list(
        self, state: JobState | None = None, limit: int = 100, before: int | None = None
    ) -> list[Job]:
        below = before if before is not None else 2**63 - 1

        async def work(connection: Connection) -> list[Job]:
            if state is None:
                cursor = await connection.execute(
                    "SELECT * FROM jobs WHERE seq < %s ORDER BY seq DESC LIMIT %s",
                    (below, limit),
                )
            else:
                cursor = await connection.execute(
                    """SELECT * FROM jobs WHERE state = %s AND seq < %s
                       ORDER BY seq DESC LIMIT %s""",
                    (state.value, below, limit),
                )
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work)

    async def retry(self, job_id: str) -> Job:
        now = self._clock()

        async def work(connection: Connection) -> Job:
            job = await fetch(connection, job_id)
            if job.state is not JobState.FAILED:
                raise JobStateError(f"job {job_id} is {job.state.value}; only failed jobs retry")
            await connection.execute(
                """UPDATE jobs SET state = 'pending', attempts = 0, not_before = %s, updated = %s,
                   finished = NULL WHERE id = %s AND state = 'failed'""",
                (now, now, job_id),
            )
            return await fetch(connection, job_id)

        return await self._run(work)

    async def prune(self, older_than_seconds: float) -> int:
        now = self._clock()
        cutoff = now - older_than_seconds
        return await self._run(lambda connection: prune(connection, cutoff, now, self._max_skew))

    async def counts(self) -> dict[JobState, int]:
        async def work(connection: Connection) -> dict[JobState, int]:
            cursor = await connection.execute(
                "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"
            )
            found = {JobState(row["state"]): int(row["n"]) for row in await cursor.fetchall()}
            return {state: found.get(state, 0) for state in JobState}

        return await self._run(work)

    async def oldest_pending_created(self) -> float | None:
        async def work(connection: Connection) -> float | None:
            cursor = await connection.execute(
                "SELECT MIN(created) AS oldest FROM jobs WHERE state = 'pending'"
            )
            row = await cursor.fetchone()
            return None if row is None or row["oldest"] is None else float(row["oldest"])

        return await self._run(work)

    # -- reconciliation passes ------------------------------------------------

    async def begin_pass(self) -> int:
        now = self._clock()

        async def work(connection: Connection) -> int:
            cursor = await connection.execute(
                "INSERT INTO reconcile_passes (started) VALUES (%s) RETURNING id", (now,)
            )
            row = await cursor.fetchone()
            assert row is not None
            return int(row["id"])

        return await self._run(work)

    async def end_pass(self, pass_id: int, outcome: str, summary: str) -> None:
        now = self._clock()

        async def work(connection: Connection) -> None:
            await connection.execute(
                """UPDATE reconcile_passes SET finished = %s, outcome = %s, summary = %s
                   WHERE id = %s""",
                (now, outcome, summary, pass_id),
            )

        await self._run(work)

    async def last_pass(self) -> tuple[float, float | None] | None:
        async def work(connection: Connection) -> tuple[float, float | None] | None:
            cursor = await connection.execute(
                "SELECT started, finished FROM reconcile_passes ORDER BY id DESC LIMIT 1"
            )
            row = await cursor.fetchone()
            return (float(row["started"]), row["finished"]) if row else None

        return await self._run(work)

    async def latest_pass(self) -> dict[str, Any] | None:
        async def work(connection: Connection) -> dict[str, Any] | None:
            cursor = await connection.execute(
                """SELECT started, finished, outcome, summary FROM reconcile_passes
                   ORDER BY id DESC LIMIT 1"""
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            summary = json.loads(row["summary"]) if row["summary"] else None
            return {**dict(row), "summary": summary}

        return await self._run(work)

    async def last_complete_pass(self) -> float | None:
        async def work(connection: Connection) -> float | None:
            cursor = await connection.execute(
                "SELECT MAX(finished) AS at FROM reconcile_passes WHERE outcome = 'complete'"
            )
            row = await cursor.fetchone()
            return None if row is None or row["at"] is None else float(row["at"])

        return await self._run(work)

    @asynccontextmanager
    async def reconcile_lock(self) -> AsyncIterator[bool]:
        """A session lock on a connection of its own: a dead holder's lock goes with it."""
        async with await AsyncConnection.connect(self.url, autocommit=True) as connection:
            cursor = await connection.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", _RECONCILE_LOCK
            )
            row = await cursor.fetchone()
            held = bool(row and row[0])
            try:
                yield held
            finally:
                if held and not connection.closed:
                    await connection.execute("SELECT pg_advisory_unlock(%s, %s)", _RECONCILE_LOCK)

    async def ping(self) -> None:
        now = self._clock()

        async def work(connection: Connection) -> None:
            await connection.execute(
                """INSERT INTO heartbeat (id, at) VALUES (1, %s)
                   ON CONFLICT (id) DO UPDATE SET at = excluded.at""",
                (now,),
            )

        await self._run(work)
