"""The store's bounds: a capped backlog, bounded error texts, pages by cursor."""

from __future__ import annotations

import pytest

from ecr_ocir_sync.jobs.model import MAX_TEXT, DestinationRecord, JobState
from ecr_ocir_sync.jobs.store import BacklogFullError, JobStore
from tests.test_job_store import LEASE, Clock, request


@pytest.fixture
def store(tmp_path):
    opened = JobStore(tmp_path / "data", clock=Clock()).open()
    yield opened
    opened.close()


async def test_a_new_job_beyond_the_backlog_cap_is_refused_and_nothing_is_written(store):
    await store.submit(request(tag="a"), max_pending=2)
    await store.submit(request(tag="b"), max_pending=2)

    with pytest.raises(BacklogFullError, match="SYNC_MAX_PENDING_JOBS"):
        await store.submit(request(tag="c"), max_pending=2)

    assert {job.tag for job in await store.list()} == {"a", "b"}


async def test_a_running_job_counts_toward_the_backlog(store):
    await store.submit(request(tag="a"), max_pending=1)
    await store.lease("worker", LEASE)

    with pytest.raises(BacklogFullError):
        await store.submit(request(tag="b"), max_pending=1)


async def test_an_event_folding_into_a_pending_job_is_taken_at_the_cap(store):
    first = await store.submit(request(tag="a", at=100.0), max_pending=1)

    again = await store.submit(request(tag="a", at=200.0), max_pending=1)

    assert again.coalesced
    assert again.job.id == first.job.id


async def test_error_texts_from_registries_are_stored_bounded(store):
    await store.submit(request())
    job = await store.lease("worker", LEASE)
    assert job is not None
    huge = "x" * 1_000_000
    destinations = {"mel": DestinationRecord(status="failed", error=huge, detail=huge)}

    finished = await store.finish(
        job.id, "worker", state=JobState.FAILED, destinations=destinations, error=huge
    )

    assert len(finished.last_error or "") <= MAX_TEXT
    assert len(finished.destinations["mel"].error or "") <= MAX_TEXT
    assert len(finished.destinations["mel"].detail or "") <= MAX_TEXT
    assert (finished.last_error or "").endswith("more]")


async def test_pages_continue_below_the_last_job_seen(store):
    for index in range(5):
        await store.submit(request(tag=f"t{index}"))

    first = await store.list(limit=2)
    second = await store.list(limit=2, before=first[-1].seq)
    third = await store.list(limit=2, before=second[-1].seq)

    assert [job.tag for job in first + second + third] == ["t4", "t3", "t2", "t1", "t0"]
