"""Hostile input at /sync and /jobs: every answer a 4xx naming the problem, never a 5xx,
and nothing invalid enqueued.  One real service process serves the module."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support.service import API_KEY, ServiceProcess, ecr_event, service_env


@pytest.fixture(scope="module")
def silent_registry() -> Iterator[str]:
    """Accepts connections and never answers: accepted jobs stay unfinished."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def start(tmp_path_factory, registry: str, **extra: str) -> ServiceProcess:
    env = service_env(registry, {"mel": registry}, SYNC_WORKERS="1", **extra)
    return ServiceProcess(tmp_path_factory.mktemp("service"), env).start()


@pytest.fixture(scope="module")
def service(tmp_path_factory, silent_registry) -> Iterator[ServiceProcess]:
    process = start(tmp_path_factory, silent_registry)
    yield process
    process.stop()


def post(service: ServiceProcess, body: bytes, content_type: str = "application/json"):
    with service.client() as http:
        return http.post("/sync", content=body, headers={"Content-Type": content_type})


def job_count(service: ServiceProcess) -> int:
    with service.client() as http:
        return len(http.get("/jobs", params={"limit": 1000}).json()["jobs"])


def rejected(answer: httpx.Response, status: int, field: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field
    assert body["message"].startswith(f"{field}: ")
    return str(body["message"])


# -- item 2: bodies that do not parse ---------------------------------------------------


@pytest.mark.parametrize("depth", [990, 20_000])
def test_deeply_nested_json_is_a_400_not_a_500(service, depth):
    before = job_count(service)

    answer = post(service, b"[" * depth + b"]" * depth)

    assert "nested too deeply" in rejected(answer, 400, "body")
    assert job_count(service) == before


@pytest.mark.parametrize(
    "body",
    [b"{bad", b'{"account": NaN}', b"\xff\xfe{}", b""],
    ids=["syntax", "NaN", "utf8", "empty"],
)
def test_a_body_that_does_not_parse_is_a_400(service, body):
    assert "not valid JSON" in rejected(post(service, body), 400, "body")


# -- item 3: the ASCII grammar -----------------------------------------------------------


# "v" + Arabic-Indic one, full-width "v1", and a trailing newline (Python's "$" takes it)
@pytest.mark.parametrize("tag", ["é", "日本", "v\u0661", "\uff56\uff11", "1.0\n"])
def test_tags_outside_the_ascii_grammar_are_rejected_at_intake(service, tag):
    before = job_count(service)

    answer = post(service, json.dumps(ecr_event("app", tag)).encode())

    assert "ASCII" in rejected(answer, 400, "detail.image-tag")
    assert job_count(service) == before


@pytest.mark.parametrize("name", ["appé", "team/日本", "app\u0661", "\uff41pp"])
def test_repository_names_outside_the_ascii_grammar_are_rejected(service, name):
    answer = post(service, json.dumps(ecr_event(name, "1")).encode())

    rejected(answer, 400, "detail.repository-name")


# -- item 4: a name too long once placed --------------------------------------------------


def test_a_repository_too_long_with_the_namespace_is_a_400_naming_the_length_rule(service):
    before = job_count(service)

    answer = post(service, json.dumps(ecr_event("a" * 254, "1")).encode())

    message = rejected(answer, 400, "detail.repository-name")
    assert "the limit is 255" in message
    assert job_count(service) == before


# -- item 5: bounded fields, paged listing ----------------------------------------------


def test_an_event_id_beyond_128_characters_is_rejected_not_stored(service):
    before = job_count(service)
    event = {**ecr_event("app", "long-id"), "id": "x" * 60_000}

    answer = post(service, json.dumps(event).encode())

    assert "128" in rejected(answer, 400, "id")
    assert job_count(service) == before


def test_jobs_are_listed_a_page_at_a_time_with_a_cursor(service):
    for index in range(5):
        assert (
            post(service, json.dumps(ecr_event("paged", f"t{index}")).encode()).status_code == 202
        )
    with service.client() as http:
        seen: list[str] = []
        pages = 0
        params: dict[str, str | int] = {"limit": 2}
        while True:
            page = http.get("/jobs", params=params).json()
            seen += [job["id"] for job in page["jobs"]]
            pages += 1
            if page["next_cursor"] is None:
                break
            params = {"limit": 2, "cursor": page["next_cursor"]}
        everything = [job["id"] for job in http.get("/jobs", params={"limit": 1000}).json()["jobs"]]

    assert seen == everything
    assert pages == len(everything) // 2 + 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "\u0663"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"state": "bogus"}, "state"),
    ],
)
def test_a_bad_listing_query_is_a_400_naming_the_parameter(service, query, field):
    with service.client() as http:
        rejected(http.get("/jobs", params=query), 400, field)


def test_a_full_backlog_answers_503_with_retry_after_and_loses_nothing(
    tmp_path_factory, silent_registry
):
    capped = start(tmp_path_factory, silent_registry, SYNC_MAX_PENDING_JOBS="2")
    try:
        first = [post(capped, json.dumps(ecr_event("cap", t)).encode()) for t in ("a", "b")]
        refused = post(capped, json.dumps(ecr_event("cap", "c")).encode())
        with capped.client() as http:
            stored = {job["tag"] for job in http.get("/jobs").json()["jobs"]}
    finally:
        capped.stop()

    assert [answer.status_code for answer in first] == [202, 202]
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert "SYNC_MAX_PENDING_JOBS" in refused.json()["message"]
    assert stored == {"a", "b"}


# -- item 6: JSON only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_sync_takes_only_json(service, content_type):
    before = job_count(service)
    body = json.dumps(ecr_event("app", "typed")).encode()
    headers = {"X-API-Key": API_KEY}
    if content_type:
        headers["Content-Type"] = content_type

    with httpx.Client(base_url=service.url) as http:
        answer = http.post("/sync", content=body, headers=headers)

    assert "application/json" in rejected(answer, 415, "body")
    assert job_count(service) == before


def test_json_with_a_charset_is_json(service):
    body = json.dumps(ecr_event("app", "charset")).encode()

    answer = post(service, body, "application/json; charset=utf-8")

    assert answer.status_code == 202, answer.text
