"""The web app when its store cannot commit: 503 with Retry-After, so EventBridge retries."""

from __future__ import annotations

import httpx

from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.ops import create_ops_app
from ecr_ocir_sync.service.wiring import Service
from ecr_ocir_sync.settings import Settings
from tests.support.service import API_KEY, ecr_event, service_env


def settings_for(tmp_path, **extra: str) -> Settings:
    return Settings.from_environ(
        service_env("unused:5000", {"mel": "unused:5001"}, SYNC_DATA_DIR=str(tmp_path), **extra)
    ).require_service()


async def test_an_event_the_store_cannot_commit_gets_503_with_retry_after(tmp_path):
    service = Service(settings_for(tmp_path))
    service.store.open()
    service.store.close()  # the store is gone: nothing can be committed
    transport = httpx.ASGITransport(app=create_app(service))
    ops = httpx.ASGITransport(app=create_ops_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        answer = await http.post(
            "/sync", json=ecr_event("app", "1"), headers={"X-API-Key": API_KEY}
        )
    async with httpx.AsyncClient(transport=ops, base_url="http://service") as http:
        ready = await http.get("/readyz")
    await service.stop()

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert "retry later" in answer.json()["message"]
    assert ready.status_code == 503
    assert ready.json() == {"status": "job store not writable"}  # fixed text, no SQLite error
