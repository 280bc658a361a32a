"""The worker pool keeps working: store faults injected, a real store underneath.

The runner is a stand-in (the pool's behaviour is under test, not the copy):
it takes a set time and reports success, or is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ecr_ocir_sync.jobs.model import DestinationRecord, JobState
from ecr_ocir_sync.jobs.request import Action, SyncRequest
from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.outcome import DestinationStatus
from ecr_ocir_sync.service.ops import create_ops_app
from ecr_ocir_sync.service.runner import Attempt
from ecr_ocir_sync.service.wiring import Service, attempt_limits
from ecr_ocir_sync.service.workers import WorkerPool
from ecr_ocir_sync.settings import Settings
from tests.support.service import ACCOUNT, REGION, service_env


def settings_for(tmp_path, **extra: str) -> Settings:
    env = service_env(
        "unused:5000",
        {"mel": "unused:5001"},
        SYNC_DATA_DIR=str(tmp_path / "data"),
        SYNC_RECONCILE_INTERVAL_SECONDS="0",
        SYNC_LEASE_SECONDS="1",
        **extra,
    )
    return Settings.from_environ(env).require_service()


def request(tag: str) -> SyncRequest:
    return SyncRequest(Action.PUSH, ACCOUNT, REGION, "app", tag, None, None, None)


class FaultyStore(JobStore):
    """A real store whose named operations fail ``times`` times first, as a locked
    database does (``renew`` may instead answer False: the lease was taken)."""

    def __init__(self, *args: Any, faults: dict[str, int], lose_lease: bool = False, **kw: Any):
        super().__init__(*args, **kw)
        self.faults = faults
        self.lose_lease = lose_lease

    def _fault(self, operation: str) -> bool:
        if self.faults.get(operation, 0) > 0:
            self.faults[operation] -= 1
            return True
        return False

    async def finish(self, *args: Any, **kw: Any) -> Any:
        if self._fault("finish"):
            raise sqlite3.OperationalError("database is locked")
        return await super().finish(*args, **kw)

    async def renew(self, *args: Any, **kw: Any) -> bool:
        if self._fault("renew"):
            if self.lose_lease:
                return False
            raise sqlite3.OperationalError("database is locked")
        return await super().renew(*args, **kw)


class Runner:
    """Takes ``seconds`` per attempt; counts attempts started, completed and cancelled."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.started = self.completed = self.cancelled = 0

    async def run(self, job: Any, on_progress: Callable[..., None]) -> Attempt:
        self.started += 1
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.completed += 1
        return Attempt({"mel": DestinationRecord(status=DestinationStatus.SUCCEEDED)})


async def eventually(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Polls an in-process condition on the running loop (the pool gives no event)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise TimeoutError("condition not met")


async def run_pool(tmp_path, store: JobStore, runner: Runner, workers: int = 1):
    settings = settings_for(tmp_path, SYNC_WORKERS=str(workers))
    metrics = Metrics()
    pool = WorkerPool(store, runner, settings, metrics)  # type: ignore[arg-type]
    pool.start()
    return pool, metrics


def faulty_store(tmp_path, **kw: Any) -> FaultyStore:
    limits = attempt_limits(settings_for(tmp_path))
    return FaultyStore(tmp_path / "data", limits=limits, **kw).open()  # type: ignore[return-value]


async def state_of(store: JobStore, job_id: str) -> JobState:
    return (await store.get(job_id)).state


async def test_a_store_error_in_a_worker_is_logged_counted_and_the_worker_goes_on(tmp_path, caplog):
    store = faulty_store(tmp_path, faults={"finish": 1})
    first = await store.submit(request("1"))
    pool, metrics = await run_pool(tmp_path, store, Runner())
    try:
        await eventually(lambda: metrics.task_restarts.labels("worker")._value.get() == 1)
        second = await store.submit(request("2"))
        pool.wake()
        for job in (first.job, second.job):
            await eventually(lambda job=job: _is(store, job.id, JobState.SUCCEEDED), timeout=30)
        assert pool.alive == 1
    finally:
        await pool.drain(1)
        store.close()

    failures = [r for r in caplog.records if "worker-0 failed" in r.getMessage()]
    assert failures, caplog.text
    assert failures[0].exc_info is not None
    assert "database is locked" in str(failures[0].exc_info[1])


async def _is(store: JobStore, job_id: str, state: JobState) -> bool:
    return await state_of(store, job_id) is state


async def test_a_renewal_that_fails_once_keeps_the_lease_and_the_job_runs_once(tmp_path):
    store = faulty_store(tmp_path, faults={"renew": 1})
    submitted = await store.submit(request("1"))
    runner = Runner(seconds=1.6)  # longer than the 1 s lease: it must be renewed
    pool, _ = await run_pool(tmp_path, store, runner, workers=2)
    try:
        await eventually(lambda: _is(store, submitted.job.id, JobState.SUCCEEDED))
    finally:
        await pool.drain(1)
        store.close()

    assert (runner.started, runner.completed) == (1, 1)
    assert (await _reopen(tmp_path, submitted.job.id)).attempts == 1


async def test_an_attempt_whose_lease_is_lost_is_cancelled_so_the_job_completes_once(
    tmp_path,
):
    store = faulty_store(tmp_path, faults={"renew": 1}, lose_lease=True)
    submitted = await store.submit(request("1"))
    runner = Runner(seconds=0.6)
    pool, _ = await run_pool(tmp_path, store, runner, workers=2)
    try:
        await eventually(lambda: _is(store, submitted.job.id, JobState.SUCCEEDED))
    finally:
        await pool.drain(1)
        store.close()

    assert (runner.cancelled, runner.completed) == (1, 1)


async def _reopen(tmp_path, job_id: str) -> Any:
    store = JobStore(tmp_path / "data").open()
    try:
        return await store.get(job_id)
    finally:
        store.close()


async def test_readiness_fails_while_fewer_workers_run_than_configured(tmp_path, monkeypatch):
    service = Service(settings_for(tmp_path, SYNC_WORKERS="2"))
    await service.start()
    leasing = service.store.lease

    async def broken_lease(*args: Any, **kw: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    transport = httpx.ASGITransport(app=create_ops_app(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:

            async def status() -> int:
                return (await http.get("/readyz")).status_code

            assert await status() == 200
            monkeypatch.setattr(service.store, "lease", broken_lease)
            await eventually(lambda: _equals(status(), 503))
            answer = (await http.get("/readyz")).json()
            monkeypatch.setattr(service.store, "lease", leasing)
            await eventually(lambda: _equals(status(), 200))
    finally:
        await service.stop()

    assert answer["status"].startswith("only ")
    assert answer["status"].endswith("of 2 workers are running (see the logs)")


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level(logging.INFO)
