"""The OpenAPI document is the contract: payloads, every answer, the secret, the ranges."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from ecr_ocir_sync.jobs.model import DestinationRecord, JobState
from ecr_ocir_sync.jobs.request import Action, SyncRequest
from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.events import parse_event
from ecr_ocir_sync.service.wiring import Service
from tests.support.service import ACCOUNT, API_KEY, REGION
from tests.test_api_failures import settings_for


async def fetch(tmp_path, path: str, **settings: str) -> httpx.Response:
    service = Service(settings_for(tmp_path, **settings))
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        answer = await http.get(path)
    await service.stop()
    return answer


async def document(tmp_path, **settings: str) -> dict[str, Any]:
    answer = await fetch(tmp_path, "/openapi.json", SYNC_API_DOCS="true", **settings)
    assert answer.status_code == 200
    return dict(answer.json())


async def test_docs_and_the_document_are_served_only_when_enabled(tmp_path):
    assert (await fetch(tmp_path, "/openapi.json")).status_code == 404
    assert (await fetch(tmp_path, "/docs")).status_code == 404
    assert (await fetch(tmp_path, "/docs", SYNC_API_DOCS="true")).status_code == 200


async def test_sync_documents_both_payloads_exactly(tmp_path):
    doc = await document(tmp_path)

    body = doc["paths"]["/sync"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"original payload", "EventBridge event"}
    refs = {option["$ref"].rsplit("/", 1)[1] for option in body["schema"]["anyOf"]}
    assert refs == {"OriginalPayload", "EventBridgeEvent"}
    schemas = doc["components"]["schemas"]
    detail = schemas["EcrDetail"]["properties"]
    assert set(schemas["EcrDetail"]["required"]) == {"action-type", "repository-name"}
    assert detail["repository-name"]["maxLength"] == 255
    assert detail["image-tag"]["anyOf"][0]["pattern"].startswith("^[A-Za-z0-9_]")
    assert schemas["OriginalPayload"]["required"] == ["account", "region", "detail"]
    assert "detail-type" in schemas["EventBridgeEvent"]["properties"]


async def test_every_answer_of_every_operation_is_documented(tmp_path):
    paths = (await document(tmp_path))["paths"]

    def answers(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert answers("/sync", "post") >= {"200", "202", "400", "401", "403", "408", "413", "415"}
    assert "503" in answers("/sync", "post")
    assert answers("/jobs", "get") >= {"200", "400", "401"}
    assert answers("/jobs/{job_id}", "get") >= {"200", "401", "404"}
    assert answers("/jobs/{job_id}/retry", "post") >= {"202", "401", "404", "409"}
    retry_after = paths["/sync"]["post"]["responses"]["503"]["headers"]
    assert "Retry-After" in retry_after


async def test_the_api_key_scheme_guards_sync_and_jobs(tmp_path):
    doc = await document(tmp_path)

    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, method in [("/sync", "post"), ("/jobs", "get"), ("/jobs/{job_id}", "get")]:
        assert {"ApiKey": []} in doc["paths"][path][method]["security"]


async def test_jobs_limit_range_and_cursor_are_documented(tmp_path):
    parameters = (await document(tmp_path))["paths"]["/jobs"]["get"]["parameters"]

    by_name = {parameter["name"]: parameter["schema"] for parameter in parameters}
    assert (by_name["limit"]["minimum"], by_name["limit"]["maximum"]) == (1, 1000)
    assert "cursor" in by_name


async def test_metrics_are_documented_as_text_where_served(tmp_path):
    doc = await document(tmp_path, SYNC_OPS_PORT="0")

    content = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/plain"}


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


async def test_the_documented_status_has_exactly_the_fields_the_status_is_sent_with(tmp_path):
    service = Service(settings_for(tmp_path))
    service.store.open()
    pass_id = await service.store.begin_pass()
    await service.store.end_pass(pass_id, "complete", '{"drift": 0}')
    transport = httpx.ASGITransport(app=create_app(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            status = (await http.get("/status", headers={"X-API-Key": API_KEY})).json()
        schemas = create_app(service).openapi()["components"]["schemas"]
    finally:
        await service.stop()

    assert set(schemas["StatusDocument"]["properties"]) == set(status)
    for part in ("backlog", "workers", "reconciliation"):
        documented = schemas[schemas["StatusDocument"]["properties"][part]["$ref"].split("/")[-1]]
        assert set(documented["properties"]) == set(status[part])
    last_pass = schemas["Reconciliation"]["properties"]["last_pass"]["anyOf"][0]["$ref"]
    assert set(schemas[last_pass.split("/")[-1]]["properties"]) == set(
        status["reconciliation"]["last_pass"]
    )
    running = schemas["StatusDocument"]["properties"]["running"]["items"]
    assert running == {"$ref": "#/components/schemas/JobDocument"}
