"""The job rules in PostgreSQL's SQL: submit, lease, supersede, abandon, prune
(``ordering.py`` and ``store.py`` in SQLite's).

Every function runs inside the caller's transaction. Decisions about one image
key (is this event the newest, may this job run) are taken under that key's
transaction-scoped advisory lock, so they are serialised across processes.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from ecr_ocir_sync.jobs.model import (
    SUPERSEDED_REASON,
    AttemptLimits,
    BacklogFullError,
    Job,
    JobNotFoundError,
    JobState,
    SubmitResult,
    destinations_from_text,
)
from ecr_ocir_sync.jobs.ordering import clamped_event_time, never_finished, new_job_row
from ecr_ocir_sync.jobs.postgres_schema import SCHEMA_LOCK
from ecr_ocir_sync.jobs.request import Action, Origin, SyncRequest

__all__ = [
    "Connection",
    "fetch",
    "job_from_row",
    "lease_candidate",
    "prune",
    "submit",
    "take",
    "try_lock_image",
]

Connection = AsyncConnection[DictRow]

_IMAGE_LOCKS = SCHEMA_LOCK[0] + 1  # advisory-lock namespace: one key per image key's hash


def job_from_row(row: DictRow) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    values["action"] = Action(values["action"])
    values["origin"] = Origin(values["origin"])
    values["destinations"] = destinations_from_text(values["destinations"])
    return Job(**values)


async def fetch(connection: Connection, job_id: str) -> Job:
    cursor = await connection.execute("SELECT * FROM jobs WHERE id = %s", (job_id,))
    row = await cursor.fetchone()
    if row is None:
        raise JobNotFoundError(job_id)
    return job_from_row(row)


async def _lock_image(connection: Connection, key: str) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_IMAGE_LOCKS, key))


async def try_lock_image(connection: Connection, key: str) -> bool:
    cursor = await connection.execute(
        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AS held", (_IMAGE_LOCKS, key)
    )
    row = await cursor.fetchone()
    return bool(row and row["held"])


async def lease_candidate(connection: Connection, now: float, busy: list[str]) -> DictRow | None:
    """The next job to try: an expired lease first, else the oldest runnable pending job."""
    cursor = await connection.execute(
        """SELECT seq, image_key FROM jobs
           WHERE state = 'running' AND lease_expires <= %s AND image_key <> ALL(%s)
           ORDER BY lease_expires, seq LIMIT 1""",
        (now, busy),
    )
    row = await cursor.fetchone()
    if row is not None:
        return row
    cursor = await connection.execute(
        """SELECT seq, image_key FROM jobs AS candidate
           WHERE state = 'pending' AND not_before <= %s AND image_key <> ALL(%s)
             AND NOT EXISTS (SELECT 1 FROM jobs AS other WHERE other.state = 'running'
                             AND other.image_key = candidate.image_key)
           ORDER BY not_before, seq LIMIT 1""",
        (now, busy),
    )
    return await cursor.fetchone()


async def take(
    connection: Connection,
    seq: int,
    owner: str,
    now: float,
    expires: float,
    *,
    clock: Callable[[], float],
    limits: AttemptLimits,
) -> Job | None:
    """Under the image key's lock: run the job, or settle it if it may not run.

    Returns None when the job did not start: taken, finished or superseded
    meanwhile, its expired lease sent it back (``abandon``), a newer event
    overtook it (superseded) or it is out of attempts (failed); the caller then
    tries the next candidate. ``started`` is read from the clock only once the
    previous job of the tag is seen finished, so the records show the jobs of one
    tag one after another (another process's ``finished`` was taken before its
    commit).
    """
    cursor = await connection.execute(
        """SELECT j.state, j.lease_expires, j.attempts, j.origin, e.seq AS latest,
                  EXISTS (SELECT 1 FROM jobs AS other WHERE other.image_key = j.image_key
                          AND other.state = 'running' AND other.seq <> j.seq) AS blocked
           FROM jobs AS j LEFT JOIN image_events AS e ON e.image_key = j.image_key
           WHERE j.seq = %s FOR UPDATE OF j""",
        (seq,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    attempts = int(row["attempts"])
    if row["state"] == "running" and row["lease_expires"] <= now:
        await abandon(connection, seq, attempts, limits, now)
        return None
    if row["state"] != "pending" or row["blocked"]:
        return None
    overtaken = row["latest"] is not None and row["latest"] != seq
    if overtaken and row["origin"] != Origin.RECONCILE.value:
        await _supersede(connection, seq, now)
        return None
    if attempts >= limits.max_attempts:
        await _out_of_attempts(connection, seq, attempts, now)
        return None
    started = max(now, clock())
    cursor = await connection.execute(
        """UPDATE jobs SET state = 'running', lease_owner = %s, lease_expires = %s,
           attempts = attempts + 1, started = COALESCE(started, %s), updated = %s
           WHERE seq = %s RETURNING *""",
        (owner, expires, started, started, seq),
    )
    taken = await cursor.fetchone()
    assert taken is not None
    return job_from_row(taken)


async def _out_of_attempts(connection: Connection, seq: int, attempts: int, now: float) -> None:
    await connection.execute(
        """UPDATE jobs SET state = 'failed', finished = %s, updated = %s,
           lease_owner = NULL, lease_expires = NULL, last_error = %s
           WHERE seq = %s""",
        (now, now, never_finished(attempts), seq),
    )


async def abandon(
    connection: Connection, seq: int, attempts: int, limits: AttemptLimits, now: float
) -> None:
    """A running job whose attempt never ended: pending after a backoff, or failed."""
    if attempts >= limits.max_attempts:
        await _out_of_attempts(connection, seq, attempts, now)
        return
    await connection.execute(
        """UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires = NULL,
           not_before = %s, updated = %s,
           last_error = COALESCE(last_error, 'an attempt never finished; retrying')
           WHERE seq = %s""",
        (now + limits.backoff(attempts), now, seq),
    )


async def _supersede(connection: Connection, seq: int, now: float) -> None:
    await connection.execute(
        """UPDATE jobs SET state = 'superseded', finished = %s, updated = %s,
           lease_owner = NULL, lease_expires = NULL, last_error = %s
           WHERE seq = %s""",
        (now, now, SUPERSEDED_REASON, seq),
    )


async def _backlog(connection: Connection) -> int:
    cursor = await connection.execute(
        "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('pending', 'running')"
    )
    row = await cursor.fetchone()
    return int(row["n"]) if row else 0


async def submit(
    connection: Connection,
    request: SyncRequest,
    now: float,
    max_skew: float,
    max_pending: int | None,
) -> SubmitResult:
    event_time = clamped_event_time(request.event_time, now, max_skew)
    key = request.image_key
    repair = request.origin is Origin.RECONCILE
    await _lock_image(connection, key)
    cursor = await connection.execute(
        "SELECT event_time, seq FROM image_events WHERE image_key = %s", (key,)
    )
    latest = await cursor.fetchone()
    is_newest = latest is None or event_time >= latest["event_time"]
    cursor = await connection.execute(
        """SELECT seq, id, event_time FROM jobs
           WHERE image_key = %s AND action = %s AND state = 'pending'
           ORDER BY seq DESC LIMIT 1""",
        (key, request.action.value),
    )
    pending = await cursor.fetchone()
    if pending is not None:
        if is_newest or repair:
            # A repair carries ECR's current digest and takes the pending job out of
            # event ordering; a newer event carries the newer image.
            await connection.execute(
                """UPDATE jobs SET event_time = GREATEST(event_time, %s),
                   digest = COALESCE(%s, digest), event_id = COALESCE(%s, event_id),
                   updated = %s,
                   origin = CASE WHEN %s THEN 'reconcile' ELSE origin END WHERE seq = %s""",
                (event_time, request.digest, request.event_id, now, repair, pending["seq"]),
            )
        if is_newest:
            newest = max(event_time, pending["event_time"])
            await _mark_newest(connection, key, newest, pending["seq"])
        return SubmitResult(await fetch(connection, pending["id"]), coalesced=True)
    # Across processes the count is a snapshot: the cap can be passed by the events in
    # flight at that moment, never by more.
    if max_pending is not None and await _backlog(connection) >= max_pending:
        raise BacklogFullError(f"{max_pending} jobs are pending or running (SYNC_MAX_PENDING_JOBS)")
    values = new_job_row(request, key, event_time, now)
    cursor = await connection.execute(
        """INSERT INTO jobs (id, action, account, region, repository, tag, digest, image_key,
               event_time, event_id, state, not_before, created, updated, origin)
           VALUES (%(id)s, %(action)s, %(account)s, %(region)s, %(repository)s, %(tag)s,
               %(digest)s, %(image_key)s, %(event_time)s, %(event_id)s, %(state)s,
               %(not_before)s, %(created)s, %(updated)s, %(origin)s)
           RETURNING seq""",
        values,
    )
    inserted = await cursor.fetchone()
    assert inserted is not None
    seq = int(inserted["seq"])
    if is_newest:
        await _mark_newest(connection, key, event_time, seq)
    if is_newest or repair:
        job = Job(
            **{
                **values,
                "seq": seq,
                "attempts": 0,
                "action": request.action,
                "origin": request.origin,
                "state": JobState.PENDING,
            }
        )
        return SubmitResult(job, coalesced=False)
    await _supersede(connection, seq, now)
    return SubmitResult(await fetch(connection, values["id"]), coalesced=False)


async def _mark_newest(connection: Connection, key: str, event_time: float, seq: int) -> None:
    await connection.execute(
        """INSERT INTO image_events (image_key, event_time, seq) VALUES (%s, %s, %s)
           ON CONFLICT (image_key) DO UPDATE SET event_time = excluded.event_time,
           seq = excluded.seq""",
        (key, event_time, seq),
    )


async def prune(connection: Connection, cutoff: float, now: float, max_skew: float) -> int:
    """Finished jobs older than ``cutoff``, with the event order and passes they leave."""
    # The newest event of a tag matters only while its job is kept. Only the rows that
    # still point at a job pruned here go: a submit that moved a row on meanwhile keeps it.
    cursor = await connection.execute(
        "DELETE FROM jobs WHERE finished IS NOT NULL AND finished < %s RETURNING seq", (cutoff,)
    )
    pruned = [int(row["seq"]) for row in await cursor.fetchall()]
    await connection.execute("DELETE FROM image_events WHERE seq = ANY(%s)", (pruned,))
    # Times stored beyond the skew (before it was enforced) count as the skew before now.
    await connection.execute(
        "UPDATE image_events SET event_time = %s WHERE event_time > %s",
        (now - max_skew, now + max_skew),
    )
    await connection.execute(
        """DELETE FROM reconcile_passes WHERE finished IS NOT NULL AND finished < %s
           AND id < (SELECT MAX(id) FROM reconcile_passes)""",
        (cutoff,),
    )
    return len(pruned)
