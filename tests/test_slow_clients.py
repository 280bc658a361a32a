"""Slow, idle and vanishing clients cost nothing: each kind is cut off at its deadline
(SYNC_HEADER_TIMEOUT_SECONDS, SYNC_BODY_TIMEOUT_SECONDS, SYNC_KEEP_ALIVE_SECONDS,
SYNC_MAX_CONCURRENCY) while ordinary requests keep being answered."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.service import API_KEY, ServiceProcess, ecr_event, service_env
from tests.support.slow_clients import connect, read_until_closed, request_head, trickle_until_cut

DEADLINES = {
    "SYNC_HEADER_TIMEOUT_SECONDS": "1",
    "SYNC_BODY_TIMEOUT_SECONDS": "1",
    "SYNC_KEEP_ALIVE_SECONDS": "1",
}
WITHIN = 6.0  # bounded waits, several times the deadlines above
UNREACHABLE = f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[ServiceProcess]:
    env = service_env(UNREACHABLE, {"mel": UNREACHABLE}, SYNC_WORKERS="1", **DEADLINES)
    process = ServiceProcess(tmp_path_factory.mktemp("service"), env).start()
    yield process
    process.stop()


def metric(service: ServiceProcess, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    series = f"{name}{{{selector}}}" if labels else name
    found = re.search("^" + re.escape(series) + r" (\S+)$", service.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def still_answers(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=5, headers={"X-API-Key": API_KEY}) as http:
        assert http.get("/jobs", params={"limit": 1}).status_code == 200


def sync_head(length: int) -> bytes:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    return request_head("POST", "/sync", {**headers, "Content-Length": str(length)})


def test_an_idle_new_connection_is_cut_at_the_header_deadline(service):
    with connect(service.port) as idle:
        still_answers(service)

        answer = read_until_closed(idle, WITHIN)

    assert answer.startswith(b"HTTP/1.1 408")


def test_headers_trickling_in_are_cut_at_the_header_deadline(service):
    before = metric(service, "ecr_ocir_sync_connections_cut_total", deadline="header")
    lines = [b"POST /sync HTTP/1.1\r\n"] + [b"X-Pad-%d: 1\r\n" % i for i in range(100)]
    with connect(service.port) as slow:
        answer = trickle_until_cut(slow, lines, every=0.2, within=WITHIN)
        still_answers(service)

    assert answer.startswith(b"HTTP/1.1 408")
    after = metric(service, "ecr_ocir_sync_connections_cut_total", deadline="header")
    assert after == before + 1


def test_a_body_trickling_in_is_cut_at_the_body_deadline(service):
    body = json.dumps(ecr_event("app", "slow-body")).encode()
    with connect(service.port) as slow:
        slow.sendall(sync_head(len(body)))
        pieces = [body[i : i + 1] for i in range(len(body))]
        answer = trickle_until_cut(slow, pieces, every=0.2, within=WITHIN)
        still_answers(service)

    assert answer.startswith(b"HTTP/1.1 408")
    assert metric(service, "ecr_ocir_sync_connections_cut_total", deadline="body") >= 1
    with service.client() as http:
        assert all(job["tag"] != "slow-body" for job in http.get("/jobs").json()["jobs"])


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(service):
    with connect(service.port) as kept:
        kept.sendall(request_head("GET", "/jobs?limit=1", {"X-API-Key": API_KEY}))

        answer = read_until_closed(kept, 3.0)  # uvicorn's own default would be 5 s

    assert answer.startswith(b"HTTP/1.1 200")


def test_a_client_leaving_mid_body_is_counted_without_a_traceback(service):
    before = metric(service, "ecr_ocir_sync_client_disconnects_total")
    with connect(service.port) as leaving:
        leaving.sendall(sync_head(1000) + b'{"account": ')

    service.wait_until(
        lambda: metric(service, "ecr_ocir_sync_client_disconnects_total") == before + 1,
        WITHIN,
        "the disconnect to be counted",
    )
    still_answers(service)
    assert "Traceback" not in service.log()
    assert "Exception in ASGI application" not in service.log()


def test_connections_beyond_the_concurrency_limit_get_503_and_probes_still_answer(tmp_path):
    env = service_env(
        UNREACHABLE,
        {"mel": UNREACHABLE},
        SYNC_MAX_CONCURRENCY="3",
        SYNC_HEADER_TIMEOUT_SECONDS="30",
    )
    service = ServiceProcess(tmp_path / "data", env).start()
    try:
        held = [connect(service.port) for _ in range(3)]
        try:
            with httpx.Client(base_url=service.url, timeout=5) as http:
                refused = http.get("/jobs", headers={"X-API-Key": API_KEY})
            probe = httpx.get(f"{service.ops_url}/readyz", timeout=5)
        finally:
            for sock in held:
                sock.close()
        service.wait_until(
            lambda: (
                httpx.get(f"{service.url}/jobs", headers={"X-API-Key": API_KEY}).status_code == 200
            ),
            WITHIN,
            "the API to answer again",
        )
    finally:
        service.stop()

    assert refused.status_code == 503
    assert probe.status_code == 200
