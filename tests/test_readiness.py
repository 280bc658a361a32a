"""Readiness costs at most one store write per second, however often it is asked."""

from __future__ import annotations

import asyncio

import httpx

from ecr_ocir_sync.service.ops import create_ops_app
from ecr_ocir_sync.service.readiness import Readiness
from ecr_ocir_sync.service.wiring import Service
from tests.test_api_failures import settings_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingPing:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.sleep(0)  # callers arriving meanwhile must share this check
        if self.error is not None:
            raise self.error


async def test_concurrent_probes_share_one_store_check():
    ping = CountingPing()
    readiness = Readiness(ping, clock=Clock())

    answers = await asyncio.gather(*(readiness.ready() for _ in range(50)))

    assert answers == [True] * 50
    assert ping.calls == 1


async def test_the_store_is_checked_again_once_the_interval_has_passed():
    ping, clock = CountingPing(), Clock()
    readiness = Readiness(ping, interval=1.0, clock=clock)
    await readiness.ready()
    clock.now += 0.5
    await readiness.ready()
    clock.now += 0.6

    await readiness.ready()

    assert ping.calls == 2


async def test_a_failing_store_is_not_ready():
    readiness = Readiness(CountingPing(OSError("disk I/O error")), clock=Clock())

    assert await readiness.ready() is False


async def test_a_burst_of_readyz_requests_writes_to_the_store_once(tmp_path):
    # Started, workers too (readiness asks that they all run); no ECR listing.
    service = Service(settings_for(tmp_path, SYNC_RECONCILE_INTERVAL_SECONDS="0"))
    await service.start()
    writes = CountingPing()
    original = service.store.ping

    async def counted() -> None:
        await writes()
        await original()

    service.readiness = Readiness(counted)
    transport = httpx.ASGITransport(app=create_ops_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as http:
        answers = await asyncio.gather(*(http.get("/readyz") for _ in range(30)))
    await service.stop()

    assert {answer.status_code for answer in answers} == {200}
    assert writes.calls == 1
