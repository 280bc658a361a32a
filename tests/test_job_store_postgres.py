"""What only a shared store must do: keep the job rules across processes on one database.

Each "process" here is a PostgresJobStore with its own connection pool on the
same real PostgreSQL database; the service-level proof, with real ``serve``
processes, is tests/test_shared_store.py.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.jobs.model import JobState
from ecr_ocir_sync.jobs.postgres import PostgresJobStore
from ecr_ocir_sync.jobs.postgres_schema import MIGRATIONS
from ecr_ocir_sync.jobs.request import Action, SyncRequest
from tests.support.service import ACCOUNT, REGION

LEASE = 60.0


def request(action: Action = Action.PUSH, tag: str = "1.0", at: float = 100.0) -> SyncRequest:
    return SyncRequest(action, ACCOUNT, REGION, "team/app", tag, None, at, None)


@pytest.fixture
async def fleet(database_url):
    """Three stores on one database, as three service processes would have."""
    stores = [PostgresJobStore(database_url, max_connections=12) for _ in range(3)]
    await asyncio.gather(*(store.start() for store in stores))
    yield stores
    await asyncio.gather(*(store.stop() for store in stores))


async def test_concurrent_leases_across_processes_never_run_one_tag_twice(fleet):
    for tag in range(6):
        for at in range(5):  # several events per tag: pending, overtaken, coalesced
            action = Action.DELETE if at % 2 else Action.PUSH
            await fleet[at % 3].submit(request(action, tag=f"t{tag}", at=100.0 + at))

    leased = await asyncio.gather(*(fleet[i % 3].lease(f"w{i}", LEASE) for i in range(30)))

    running = [job for job in leased if job is not None]
    assert sorted(job.tag for job in running) == [f"t{tag}" for tag in range(6)]
    assert all(job.action == "PUSH" and job.event_time == 104.0 for job in running)


async def test_the_newest_event_wins_when_processes_submit_at_once(fleet):
    events = [(Action.PUSH if at % 2 else Action.DELETE, 100.0 + at) for at in range(12)]
    await asyncio.gather(
        *(fleet[i % 3].submit(request(action, at=at)) for i, (action, at) in enumerate(events))
    )

    job = await fleet[1].lease("w", LEASE)

    assert job is not None
    assert (job.action, job.event_time) == ("PUSH", 111.0)
    assert await fleet[2].lease("w2", LEASE) is None


async def test_a_job_is_visible_and_retried_from_any_process(fleet):
    submitted = await fleet[0].submit(request())
    job = await fleet[1].lease("w", LEASE)
    assert job is not None
    await fleet[1].finish(job.id, "w", state=JobState.FAILED, destinations={}, error="404")

    assert (await fleet[2].get(submitted.job.id)).state is JobState.FAILED
    retried = await fleet[2].retry(submitted.job.id)

    assert (await fleet[0].get(retried.id)).state is JobState.PENDING


async def test_the_reconciliation_lock_is_held_by_one_process_at_a_time(fleet):
    async with fleet[0].reconcile_lock() as first, fleet[1].reconcile_lock() as second:
        assert (first, second) == (True, False)
    async with fleet[1].reconcile_lock() as after_release:
        assert after_release


async def test_a_dead_holder_of_the_reconciliation_lock_releases_it(fleet, database_url):
    holder = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await holder.execute("SELECT pg_advisory_lock(%s, %s)", (0x45_43_52_53, 1))
    async with fleet[0].reconcile_lock() as while_held:
        assert not while_held

    await holder.close()  # the process died: its session, and the lock, end

    async with fleet[0].reconcile_lock() as after_death:
        assert after_death


async def test_the_schema_version_is_recorded_and_migrations_run_once(fleet, database_url):
    await fleet[0].start()  # a restart: nothing left to apply

    with psycopg.connect(database_url) as connection:
        versions = connection.execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(version,) for version in range(1, len(MIGRATIONS) + 1)]


async def test_a_database_from_a_newer_release_is_refused(database_url):
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied REAL)"
        )
        connection.execute("INSERT INTO schema_version VALUES (%s, 0)", (len(MIGRATIONS) + 1,))
    store = PostgresJobStore(database_url)

    with pytest.raises(ConfigError, match="newer than this release"):
        await store.start()
    await store.stop()


async def test_a_database_of_the_first_schema_gains_origins_and_keeps_its_jobs(database_url):
    with psycopg.connect(database_url) as connection:
        connection.execute(MIGRATIONS[0])
        connection.execute(
            """CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied REAL);
               INSERT INTO schema_version VALUES (1, 0);
               INSERT INTO jobs (id, action, account, region, repository, tag, image_key,
                   event_time, state, not_before, created, updated)
               VALUES ('old', 'PUSH', 'a', 'r', 'team/app', '1.0', 'a/r/team/app:1.0',
                   100, 'pending', 0, 0, 0)"""
        )
    store = PostgresJobStore(database_url)
    await store.start()
    try:
        job = await store.lease("w", LEASE)
    finally:
        await store.stop()

    assert job is not None
    assert (job.id, job.origin) == ("old", "event")
