"""The OpenAPI page documents the intake: both payloads, every answer."""

from __future__ import annotations

from dataclasses import replace

import httpx

from ecr_ocir_sync.jobs.model import DestinationRecord, JobState
from ecr_ocir_sync.jobs.request import Action, SyncRequest
from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.events import parse_event
from ecr_ocir_sync.service.wiring import Service
from tests.support.service import ACCOUNT, REGION
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


async def _openapi(tmp_path) -> dict:
    service = Service(settings_for(tmp_path))
    try:
        return create_app(service).openapi()
    finally:
        await service.stop()


async def test_the_documented_job_has_exactly_the_fields_a_job_is_sent_with(tmp_path):
    document = await _openapi(tmp_path)
    schemas = document["components"]["schemas"]
    store = JobStore(tmp_path / "store").open()
    try:
        submitted = await store.submit(
            SyncRequest(Action.PUSH, ACCOUNT, REGION, "team/app", "1.0", None, 100.0, None)
        )
        job = replace(submitted.job, destinations={"mel": DestinationRecord()}).to_json()
    finally:
        store.close()

    assert set(schemas["JobDocument"]["properties"]) == set(job)
    assert set(schemas["DestinationRecord"]["properties"]) == set(job["destinations"]["mel"])
    assert schemas["JobState"]["enum"] == [state.value for state in JobState]


async def test_both_documented_payloads_are_accepted_as_the_same_image_event(tmp_path):
    sync = (await _openapi(tmp_path))["paths"]["/sync"]["post"]
    examples = sync["requestBody"]["content"]["application/json"]["examples"]
    allowed = {"allowed_accounts": frozenset({ACCOUNT}), "allowed_regions": frozenset({REGION})}

    parsed = [parse_event(example["value"], **allowed) for example in examples.values()]

    assert all(isinstance(request, SyncRequest) for request in parsed)
    images = {(r.action, r.repository, r.tag) for r in parsed if isinstance(r, SyncRequest)}
    assert images == {(Action.PUSH, "team/web", "1.4")}
