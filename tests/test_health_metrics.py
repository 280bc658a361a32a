"""The health series the alerts read: live workers, the oldest pending job, a writable store."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.ops import create_ops_app
from ecr_ocir_sync.service.readiness import Readiness
from ecr_ocir_sync.service.wiring import Service
from ecr_ocir_sync.settings import Settings
from tests.support.service import API_KEY, ecr_event, service_env


def settings_for(tmp_path, **extra: str) -> Settings:
    return Settings.from_environ(
        service_env("127.0.0.1:9", {"mel": "127.0.0.1:9"}, SYNC_DATA_DIR=str(tmp_path), **extra)
    ).require_service()


def value(text: str, name: str) -> float:
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    [sample] = [s for s in samples if s.name == name]
    return float(sample.value)


async def scrape(service: Service) -> str:
    transport = httpx.ASGITransport(app=create_ops_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        return (await http.get("/metrics")).text


async def test_workers_alive_counts_the_loops_still_running(tmp_path):
    service = Service(settings_for(tmp_path, SYNC_WORKERS="3"))
    service.store.open()
    service.workers.start()
    before = await scrape(service)
    [loop] = [task for task in asyncio.all_tasks() if task.get_name() == "worker-1"]
    loop.cancel()  # a loop that ends, as an unhandled error would end it
    await asyncio.wait([loop])
    after = await scrape(service)
    await service.stop()

    assert value(before, "ecr_ocir_sync_workers_configured") == 3
    assert value(before, "ecr_ocir_sync_workers_alive") == 3
    assert value(after, "ecr_ocir_sync_workers_alive") == 2


async def test_oldest_pending_age_counts_from_when_the_event_was_accepted(tmp_path):
    service = Service(settings_for(tmp_path))
    # The store's clock says the job was accepted two minutes ago; no worker runs it.
    service.store = JobStore(tmp_path, clock=lambda: time.time() - 120)
    service.readiness = Readiness(service.store.ping)
    service.store.open()
    empty = await scrape(service)
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        answer = await http.post(
            "/sync", json=ecr_event("app", "1"), headers={"X-API-Key": API_KEY}
        )
    waiting = await scrape(service)
    await service.stop()

    assert answer.status_code == 202
    assert value(empty, "ecr_ocir_sync_queue_oldest_pending_age_seconds") == 0
    assert 120 <= value(waiting, "ecr_ocir_sync_queue_oldest_pending_age_seconds") < 180


async def test_store_writable_is_1_while_the_store_commits(tmp_path):
    service = Service(settings_for(tmp_path))
    service.store.open()
    text = await scrape(service)
    await service.stop()

    assert value(text, "ecr_ocir_sync_job_store_writable") == 1


async def test_store_writable_turns_0_when_the_store_cannot_commit(tmp_path):
    service = Service(settings_for(tmp_path))
    service.store.open()
    service.store.close()  # nothing can be committed any more
    text = await scrape(service)
    await service.stop()

    assert value(text, "ecr_ocir_sync_job_store_writable") == 0


async def test_a_process_without_the_periodic_pass_exports_interval_0(tmp_path):
    service = Service(settings_for(tmp_path, SYNC_RECONCILE_INTERVAL_SECONDS="0"))
    service.store.open()
    service.reconciler.start()
    text = await scrape(service)
    await service.stop()

    assert value(text, "ecr_ocir_sync_reconcile_interval_seconds") == 0
