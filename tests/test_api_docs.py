"""The OpenAPI page documents the intake: both payloads, every answer."""

from __future__ import annotations

import httpx

from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.wiring import Service
from tests.test_api_failures import settings_for


async def test_the_openapi_document_shows_both_payloads_and_every_answer(tmp_path):
    service = Service(settings_for(tmp_path))
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        document = (await http.get("/openapi.json")).json()
        page = await http.get("/docs")
    await service.stop()

    sync = document["paths"]["/sync"]["post"]
    examples = sync["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"original payload", "EventBridge event"}
    assert set(sync["responses"]) >= {"202", "200", "400", "401", "403", "413", "503"}
    assert "JobDocument" in document["components"]["schemas"]
    assert page.status_code == 200
