"""The job store's contract: durable, coalescing, ordered per tag, leased.

Every test runs against both backends, SQLite and PostgreSQL (a real server,
tests/support/postgres.py): what one promises, the other must too.
"""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest

from ecr_ocir_sync.jobs.backend import Store
from ecr_ocir_sync.jobs.database import StoreUnavailableError
from ecr_ocir_sync.jobs.model import AttemptLimits, DestinationRecord, JobState, LeaseLostError
from ecr_ocir_sync.jobs.postgres import PostgresJobStore
from ecr_ocir_sync.jobs.request import Action, Origin, SyncRequest
from ecr_ocir_sync.jobs.store import DEFAULT_MAX_SKEW, JobStateError, JobStore
from tests.support.service import ACCOUNT, REGION

LEASE = 60.0
MAX_ATTEMPTS = 3
BACKOFF = 30.0  # after an attempt that never ended


def backoff(_attempts: int) -> float:
    return BACKOFF


LIMITS = AttemptLimits(MAX_ATTEMPTS, backoff)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def request(
    action: Action = Action.PUSH,
    tag: str = "1.0",
    at: float | None = 100.0,
    digest: str | None = None,
    origin: Origin = Origin.EVENT,
) -> SyncRequest:
    return SyncRequest(action, ACCOUNT, REGION, "team/app", tag, digest, at, None, origin)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def skip_recover_on_a_shared_database(store: Store) -> None:
    if isinstance(store, PostgresJobStore):
        pytest.skip(
            "differs by design: on a shared database the running jobs may be other live "
            "processes'; they are taken over when their leases expire "
            "(test_a_job_whose_lease_expired_is_leased_again, "
            "test_a_job_whose_leases_keep_running_out_fails_after_the_limit)"
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path, clock):
    opened: Store
    if request.param == "sqlite":
        opened = JobStore(tmp_path / "data", clock=clock, limits=LIMITS)
    else:
        url = request.getfixturevalue("database_url")
        opened = PostgresJobStore(url, clock=clock, limits=LIMITS)
    await opened.start()
    yield opened
    await opened.stop()


def committed_rows(store: Store, tmp_path) -> list[tuple[str, str]]:
    """(id, state) of every job, read over a connection of its own."""
    if isinstance(store, PostgresJobStore):
        with psycopg.connect(store.url) as other_connection:
            return [tuple(row) for row in other_connection.execute("SELECT id, state FROM jobs")]
    with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as other_connection:
        return other_connection.execute("SELECT id, state FROM jobs").fetchall()


def committed_count(store: Store, tmp_path, table: str) -> int:
    """Rows in ``table``, read over a connection of its own."""
    query = f"SELECT COUNT(*) FROM {table}"
    if isinstance(store, PostgresJobStore):
        with psycopg.connect(store.url) as other_connection:
            row = other_connection.execute(query).fetchone()
    else:
        with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as other_connection:
            row = other_connection.execute(query).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_submitted_job_is_committed_when_submit_returns(store, tmp_path):
    submitted = await store.submit(request())

    assert committed_rows(store, tmp_path) == [(submitted.job.id, "pending")]


async def test_concurrent_submissions_are_all_committed(store):
    results = await asyncio.gather(*(store.submit(request(tag=f"t{i}")) for i in range(200)))

    assert len({result.job.id for result in results}) == 200
    assert (await store.counts())[JobState.PENDING] == 200


async def test_a_duplicate_of_a_pending_job_coalesces_into_it(store):
    first = await store.submit(request(at=100.0))
    second = await store.submit(request(at=101.0, digest="sha256:" + "d" * 64))

    assert second.coalesced
    assert second.job.id == first.job.id
    assert second.job.digest == "sha256:" + "d" * 64  # the newer event's image
    assert (await store.counts())[JobState.PENDING] == 1


async def test_a_duplicate_of_a_running_job_gets_its_own_job(store):
    first = await store.submit(request(at=100.0))
    await store.lease("w", LEASE)

    second = await store.submit(request(at=101.0))

    assert not second.coalesced
    assert second.job.id != first.job.id


async def test_a_delete_older_than_the_latest_push_is_superseded_on_arrival(store):
    await store.submit(request(Action.PUSH, at=200.0))

    stale = await store.submit(request(Action.DELETE, at=100.0))

    assert stale.job.state is JobState.SUPERSEDED
    assert "newer event" in (stale.job.last_error or "")


async def test_a_pending_push_overtaken_by_a_newer_delete_never_runs(store):
    push = await store.submit(request(Action.PUSH, at=100.0))
    delete = await store.submit(request(Action.DELETE, at=200.0))

    leased = await store.lease("w", LEASE)

    assert leased is not None
    assert leased.id == delete.job.id
    assert (await store.get(push.job.id)).state is JobState.SUPERSEDED


async def test_events_with_the_same_time_take_effect_in_arrival_order(store):
    await store.submit(request(Action.DELETE, at=100.0))
    push = await store.submit(request(Action.PUSH, at=100.0))

    leased = await store.lease("w", LEASE)

    assert leased is not None
    assert leased.id == push.job.id


async def test_only_one_job_per_tag_runs_at_a_time(store):
    await store.submit(request(tag="1.0", at=100.0))
    await store.lease("w", LEASE)
    await store.submit(request(tag="1.0", at=200.0))
    other_tag = await store.submit(request(tag="2.0", at=100.0))

    leased = await store.lease("w", LEASE)

    assert leased is not None
    assert leased.id == other_tag.job.id
    assert await store.lease("w", LEASE) is None


async def test_a_job_whose_lease_expired_is_leased_again(store, clock):
    submitted = await store.submit(request())
    first = await store.lease("dead-worker", LEASE)
    assert first is not None

    clock.now += LEASE + 1
    assert await store.lease("live-worker", LEASE) is None  # it waits out its backoff
    clock.now += BACKOFF
    again = await store.lease("live-worker", LEASE)

    assert again is not None
    assert again.id == submitted.job.id
    assert again.attempts == 2
    assert again.lease_owner == "live-worker"


async def test_a_renewed_lease_keeps_the_job(store, clock):
    await store.submit(request())
    job = await store.lease("w", LEASE)
    assert job is not None

    clock.now += LEASE / 2
    assert await store.renew(job.id, "w", LEASE)
    clock.now += LEASE / 2 + 1

    assert await store.lease("other", LEASE) is None


async def test_a_rescheduled_job_waits_for_its_backoff(store, clock):
    await store.submit(request())
    job = await store.lease("w", LEASE)
    assert job is not None
    records = {
        "mel": DestinationRecord(status="succeeded"),
        "syd": DestinationRecord(status="failed"),
    }
    await store.finish(
        job.id,
        "w",
        state=JobState.PENDING,
        destinations=records,
        error="syd: 503",
        retry_at=clock.now + 30,
    )

    assert await store.lease("w", LEASE) is None
    clock.now += 31
    again = await store.lease("w", LEASE)

    assert again is not None
    assert again.destinations["mel"].status == "succeeded"
    assert again.last_error == "syd: 503"


async def test_recover_makes_jobs_of_a_dead_process_runnable_after_their_backoff(store, clock):
    skip_recover_on_a_shared_database(store)
    submitted = await store.submit(request())
    await store.lease("dead-process", LEASE)

    assert await store.recover() == 1
    assert await store.lease("new-process", LEASE) is None
    clock.now += BACKOFF
    again = await store.lease("new-process", LEASE)

    assert again is not None
    assert (again.id, again.attempts) == (submitted.job.id, 2)


async def test_a_failed_job_can_be_retried_with_fresh_attempts(store):
    await store.submit(request())
    job = await store.lease("w", LEASE)
    assert job is not None
    await store.finish(job.id, "w", state=JobState.FAILED, destinations={}, error="404")

    retried = await store.retry(job.id)

    assert (retried.state, retried.attempts) == (JobState.PENDING, 0)


async def test_only_failed_jobs_can_be_retried(store):
    submitted = await store.submit(request())

    with pytest.raises(JobStateError, match="only failed jobs retry"):
        await store.retry(submitted.job.id)


async def test_finished_jobs_are_pruned_after_the_retention(store, clock):
    await store.submit(request())
    job = await store.lease("w", LEASE)
    assert job is not None
    await store.finish(job.id, "w", state=JobState.SUCCEEDED, destinations={})
    await store.submit(request(tag="still-pending"))

    clock.now += 3600
    assert await store.prune(7200) == 0
    clock.now += 3601
    assert await store.prune(7200) == 1

    assert [j.tag for j in await store.list()] == ["still-pending"]


# -- event times and repairs -------------------------------------------------------------


async def test_an_event_dated_beyond_the_skew_counts_as_dated_the_skew_before_it_arrived(
    store, clock
):
    year_9999 = 253_402_300_799.0
    future = await store.submit(request(at=year_9999))
    assert future.job.event_time == clock.now - DEFAULT_MAX_SKEW
    job = await store.lease("w", LEASE)
    assert job is not None
    await store.finish(job.id, "w", state=JobState.SUCCEEDED, destinations={})

    clock.now += 1
    real = await store.submit(request(at=clock.now))

    assert real.job.state is JobState.PENDING
    leased = await store.lease("w", LEASE)
    assert leased is not None
    assert leased.id == real.job.id


async def test_a_reconciliation_repair_is_never_superseded_by_an_event(store, clock):
    newer_event = await store.submit(request(Action.DELETE, at=clock.now + 60))
    repair = await store.submit(request(Action.PUSH, at=clock.now, origin=Origin.RECONCILE))
    assert repair.job.state is JobState.PENDING

    first = await store.lease("w", LEASE)
    assert first is not None
    assert first.id == newer_event.job.id
    await store.finish(first.id, "w", state=JobState.SUCCEEDED, destinations={})
    second = await store.lease("w", LEASE)

    assert second is not None
    assert (second.id, second.origin) == (repair.job.id, "reconcile")


async def test_pruning_drops_the_event_order_and_passes_of_pruned_jobs(store, clock, tmp_path):
    await store.submit(request(at=clock.now + DEFAULT_MAX_SKEW))
    job = await store.lease("w", LEASE)
    assert job is not None
    await store.finish(job.id, "w", state=JobState.SUCCEEDED, destinations={})
    for _ in range(2):
        await store.end_pass(await store.begin_pass(), "complete", "{}")

    clock.now += 7201
    assert await store.prune(7200) == 1

    # A stale event is no longer compared with the pruned job's time.
    stale = await store.submit(request(Action.DELETE, at=clock.now - 10))
    assert stale.job.state is JobState.PENDING
    last = await store.last_pass()
    assert last is not None
    assert committed_count(store, tmp_path, "reconcile_passes") == 1


# -- leases and attempts -----------------------------------------------------------------


async def test_only_the_lease_owner_can_finish_so_a_job_never_completes_twice(store, clock):
    submitted = await store.submit(request())
    await store.lease("worker-a", LEASE)
    clock.now += LEASE + 1
    assert await store.lease("worker-b", LEASE) is None  # worker-a's lease ran out: backoff
    clock.now += BACKOFF
    taken = await store.lease("worker-b", LEASE)
    assert taken is not None

    with pytest.raises(LeaseLostError, match="no longer leased by worker-a"):
        await store.finish(submitted.job.id, "worker-a", state=JobState.SUCCEEDED, destinations={})
    assert not await store.renew(submitted.job.id, "worker-a", LEASE)
    done = await store.finish(
        submitted.job.id, "worker-b", state=JobState.SUCCEEDED, destinations={}
    )

    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 2)


async def test_a_job_whose_attempts_never_end_fails_at_recovery_after_the_limit(store, clock):
    skip_recover_on_a_shared_database(store)
    crashing = await store.submit(request(tag="kills-the-process"))
    for _ in range(MAX_ATTEMPTS):
        job = await store.lease("process", LEASE)
        assert job is not None
        assert job.id == crashing.job.id
        await store.recover()  # the process died; the next one starts
        clock.now += BACKOFF

    failed = await store.get(crashing.job.id)

    assert (failed.state, failed.attempts) == (JobState.FAILED, MAX_ATTEMPTS)
    assert "never finished" in (failed.last_error or "")
    assert await store.lease("process", LEASE) is None


async def test_a_job_whose_leases_keep_running_out_fails_after_the_limit(store, clock):
    crashing = await store.submit(request(tag="kills-its-worker"))
    for attempt in range(MAX_ATTEMPTS):
        job = await store.lease(f"worker-{attempt}", LEASE)
        assert job is not None
        assert job.id == crashing.job.id
        clock.now += LEASE  # the worker died: its lease runs out
        assert await store.lease("worker", LEASE) is None  # back after the backoff, or failed
        clock.now += BACKOFF

    failed = await store.get(crashing.job.id)

    assert (failed.state, failed.attempts) == (JobState.FAILED, MAX_ATTEMPTS)
    assert "never finished" in (failed.last_error or "")


async def test_a_job_whose_attempt_never_ended_lets_the_queue_behind_it_run(store, clock):
    crashing = await store.submit(request(tag="kills-the-process"))
    behind = await store.submit(request(tag="next"))
    first = await store.lease("process", LEASE)
    assert first is not None
    assert first.id == crashing.job.id

    if isinstance(store, PostgresJobStore):
        clock.now += LEASE  # shared database: the dead process's lease runs out
    else:
        await store.recover()
    leased = await store.lease("process", LEASE)

    assert leased is not None
    assert leased.id == behind.job.id


# -- the store's own thread ----------------------------------------------------------------


class ThreadKiller(BaseException):
    """Escapes every ``except Exception``: what kills the store's thread."""


async def test_when_the_store_thread_dies_every_caller_gets_an_error_and_it_is_unready(store):
    if isinstance(store, PostgresJobStore):
        pytest.skip(
            "SQLite only: its one writer thread can die; PostgreSQL's pooled connections "
            "have no such thread (a lost connection fails only the call that used it)"
        )

    def dies(_connection):
        raise ThreadKiller

    calls = [store.submit(request(tag=f"t{i}")) for i in range(20)]
    outcomes = await asyncio.wait_for(
        asyncio.gather(store._db.call(dies), *calls, return_exceptions=True), timeout=10
    )

    assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes), outcomes
    assert not store.healthy
    with pytest.raises(StoreUnavailableError, match="thread died"):
        await store.ping()
