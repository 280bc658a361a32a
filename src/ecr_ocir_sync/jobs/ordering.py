"""The SQLite statements behind the store's ordering rules: newest event wins, per tag.

Kept apart from the store's interface so the rules read in one place:

- an event time more than the allowed clock skew ahead of the store's clock
  counts as the skew before the event arrived, so no sender's clock can freeze
  a tag;
- a job from a reconciliation repair is never superseded by an event (its run
  checks ECR's current state, which is what decides);
- a job whose attempt never ended (the process died, the lease ran out) goes
  back to pending after a backoff, or ends failed once it has had every attempt.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

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
from ecr_ocir_sync.jobs.request import Action, Origin, SyncRequest

__all__ = [
    "abandon",
    "clamped_event_time",
    "fetch",
    "migrate",
    "never_finished",
    "new_job_row",
    "out_of_attempts",
    "prune",
    "row_job",
    "submit",
    "supersede",
]

_MIGRATIONS = {"origin": "ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT 'event'"}


def migrate(connection: sqlite3.Connection) -> None:
    """Columns added since the first schema, for stores created by older versions."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(jobs)")}
    for column, statement in _MIGRATIONS.items():
        if column not in present:
            connection.execute(statement)


def row_job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    values["action"] = Action(values["action"])
    values["origin"] = Origin(values["origin"])
    values["destinations"] = destinations_from_text(values["destinations"])
    return Job(**values)


def fetch(connection: sqlite3.Connection, job_id: str) -> Job:
    row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobNotFoundError(job_id)
    return row_job(row)


def supersede(connection: sqlite3.Connection, seq: int, now: float) -> None:
    connection.execute(
        """UPDATE jobs SET state = 'superseded', finished = ?, updated = ?,
           lease_owner = NULL, lease_expires = NULL, last_error = ?
           WHERE seq = ?""",
        (now, now, SUPERSEDED_REASON, seq),
    )


def never_finished(attempts: int) -> str:
    """The error of a job that ran out of attempts whose last one never ended."""
    return (
        f"gave up after {attempts} attempt(s): the last one never finished "
        "(the process running it died or lost its lease)"
    )


def clamped_event_time(stated: float | None, now: float, max_skew: float) -> float:
    """The time an event counts as dated (``now`` when it states none).

    A time beyond the skew is a sender's broken clock, the least trusted of all:
    the event counts as dated the skew before it arrived, so the real events near
    it win."""
    if stated is None:
        return now
    if stated > now + max_skew:
        return now - max_skew
    return stated


def out_of_attempts(connection: sqlite3.Connection, seq: int, attempts: int, now: float) -> None:
    error = never_finished(attempts)
    connection.execute(
        """UPDATE jobs SET state = 'failed', finished = ?, updated = ?,
           lease_owner = NULL, lease_expires = NULL, last_error = ?
           WHERE seq = ?""",
        (now, now, error, seq),
    )


def abandon(
    connection: sqlite3.Connection, row: sqlite3.Row, limits: AttemptLimits, now: float
) -> None:
    """A running job whose attempt never ended: pending after a backoff, or failed."""
    attempts = int(row["attempts"])
    if attempts >= limits.max_attempts:
        out_of_attempts(connection, row["seq"], attempts, now)
        return
    connection.execute(
        """UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires = NULL,
           not_before = ?, updated = ?,
           last_error = COALESCE(last_error, 'an attempt never finished; retrying')
           WHERE seq = ?""",
        (now + limits.backoff(attempts), now, row["seq"]),
    )


def new_job_row(request: SyncRequest, key: str, event_time: float, now: float) -> dict[str, Any]:
    """The columns of a job just accepted, the same for every backend."""
    return {
        "id": uuid.uuid4().hex,
        "action": request.action.value,
        "account": request.account,
        "region": request.region,
        "repository": request.repository,
        "tag": request.tag,
        "digest": request.digest,
        "image_key": key,
        "event_time": event_time,
        "event_id": request.event_id,
        "state": JobState.PENDING.value,
        "not_before": now,
        "created": now,
        "updated": now,
        "origin": request.origin.value,
    }


def _backlog(connection: sqlite3.Connection) -> int:
    row = connection.execute(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')"
    ).fetchone()
    return int(row[0])


def submit(
    connection: sqlite3.Connection,
    request: SyncRequest,
    now: float,
    max_skew: float,
    max_pending: int | None = None,
) -> SubmitResult:
    """Commit ``request``: a new job, folded into a pending one, or superseded on arrival.

    Raises BacklogFullError, committing nothing, when a new job is needed and
    ``max_pending`` jobs are already pending or running."""
    event_time = clamped_event_time(request.event_time, now, max_skew)
    key = request.image_key
    repair = request.origin is Origin.RECONCILE
    latest = connection.execute(
        "SELECT event_time, seq FROM image_events WHERE image_key = ?", (key,)
    ).fetchone()
    is_newest = latest is None or event_time >= latest["event_time"]
    pending = connection.execute(
        """SELECT * FROM jobs WHERE image_key = ? AND action = ? AND state = 'pending'
           ORDER BY seq DESC LIMIT 1""",
        (key, request.action.value),
    ).fetchone()
    if pending is not None:
        if is_newest or repair:
            # A repair carries ECR's current digest and takes the pending job out of
            # event ordering; a newer event carries the newer image.
            connection.execute(
                """UPDATE jobs SET event_time = MAX(event_time, ?), digest = COALESCE(?, digest),
                   event_id = COALESCE(?, event_id), updated = ?,
                   origin = CASE WHEN ? THEN 'reconcile' ELSE origin END WHERE seq = ?""",
                (event_time, request.digest, request.event_id, now, repair, pending["seq"]),
            )
        if is_newest:
            _mark_newest(connection, key, max(event_time, pending["event_time"]), pending["seq"])
        return SubmitResult(fetch(connection, pending["id"]), coalesced=True)
    if max_pending is not None and _backlog(connection) >= max_pending:
        raise BacklogFullError(f"{max_pending} jobs are pending or running (SYNC_MAX_PENDING_JOBS)")
    values = new_job_row(request, key, event_time, now)
    cursor = connection.execute(
        f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608 - column names are ours
        tuple(values.values()),
    )
    seq = int(cursor.lastrowid or 0)
    if is_newest:
        _mark_newest(connection, key, event_time, seq)
    if is_newest or repair:
        # Built from what was just written: re-reading the row would only cost time.
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
    supersede(connection, seq, now)
    return SubmitResult(fetch(connection, values["id"]), coalesced=False)


def _mark_newest(connection: sqlite3.Connection, key: str, event_time: float, seq: int) -> None:
    connection.execute(
        """INSERT INTO image_events (image_key, event_time, seq) VALUES (?, ?, ?)
           ON CONFLICT (image_key) DO UPDATE SET event_time = excluded.event_time,
           seq = excluded.seq""",
        (key, event_time, seq),
    )


def prune(connection: sqlite3.Connection, cutoff: float, now: float, max_skew: float) -> int:
    """Finished jobs older than ``cutoff``, with the event order and passes they leave."""
    removed = connection.execute(
        "DELETE FROM jobs WHERE finished IS NOT NULL AND finished < ?", (cutoff,)
    ).rowcount
    # The newest event of a tag matters only while its job is kept; times stored
    # beyond the skew (before it was enforced) count as the skew before now.
    connection.execute("DELETE FROM image_events WHERE seq NOT IN (SELECT seq FROM jobs)")
    connection.execute(
        "UPDATE image_events SET event_time = ? WHERE event_time > ?",
        (now - max_skew, now + max_skew),
    )
    connection.execute(
        """DELETE FROM reconcile_passes WHERE finished IS NOT NULL AND finished < ?
           AND id < (SELECT MAX(id) FROM reconcile_passes)""",
        (cutoff,),
    )
    return int(removed)
