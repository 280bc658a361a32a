"""The running service against its own OpenAPI document, property-based (schemathesis):
no 5xx, every answer as documented, and every job accepted is valid by an independent
grammar.  Examples are bounded so the module stays well under a minute."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.ports import free_port
from tests.support.service import ACCOUNT, API_KEY, REGION, ServiceProcess, service_env

NAMESPACE = "ns"
EXAMPLES = 80  # per operation: about 20 s in all on two cores
UNREACHABLE = f"127.0.0.1:{free_port()}"
# Written from the distribution spec, not from the service's own code.
COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
REPOSITORY = re.compile(f"{COMPONENT}(?:/{COMPONENT})*", re.ASCII)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
DIGEST = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)
EVENT_ID = re.compile(r"[!-~]{1,128}", re.ASCII)
# The document's promises: no 5xx, only documented statuses, content types, headers and
# bodies, and the API key enforced.  (Whether every schema-valid body is accepted is not
# one of them: a documented 400 or 403 answers rules the schema cannot state, such as
# "image-tag or image-digest" or the allow-listed accounts.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[ServiceProcess]:
    env = service_env(UNREACHABLE, {"mel": UNREACHABLE}, namespace=NAMESPACE, SYNC_API_DOCS="true")
    process = ServiceProcess(tmp_path_factory.mktemp("service"), env).start()
    yield process
    process.stop()


def assert_valid_job(job: dict[str, Any]) -> None:
    """What the store holds for an accepted event obeys the grammar and the bounds."""
    assert (job["account"], job["region"]) == (ACCOUNT, REGION)
    repository = job["repository"]
    assert REPOSITORY.fullmatch(repository), repository
    assert len(f"{NAMESPACE}/{repository}") <= 255
    assert job["tag"] is None or TAG.fullmatch(job["tag"]), job["tag"]
    assert job["digest"] is None or DIGEST.fullmatch(job["digest"]), job["digest"]
    assert job["tag"] is not None or job["digest"] is not None
    assert job["event_id"] is None or EVENT_ID.fullmatch(job["event_id"]), job["event_id"]


def test_every_answer_conforms_and_nothing_invalid_is_enqueued(service):
    document = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in document.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /sync", "GET /jobs"}

    accepted = 0
    for operation in operations:

        @given(
            case=operation.as_strategy(),
            allowed=st.booleans(),
            action=st.sampled_from(["PUSH", "DELETE"]),
        )
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,  # the same cases every run: a CI failure is reproducible
        )
        def check(case: Any, allowed: bool, action: str) -> None:
            nonlocal accepted
            if allowed and isinstance(case.body, dict) and isinstance(case.body["detail"], dict):
                # Half the events are from the allowed account and region and need work,
                # so names, tags, digests and ids reach the grammar and the store rather
                # than stopping at 403 or "ignored".
                case.body.update(account=ACCOUNT, region=REGION)
                case.body.pop("detail-type", None)
                case.body["detail"].pop("result", None)
                case.body["detail"]["action-type"] = action
            response = case.call_and_validate(
                headers={"X-API-Key": API_KEY}, checks=CHECKS, timeout=10
            )
            assert response.status_code < 500, response.text
            if case.path == "/sync" and response.status_code == 202:
                accepted += 1
                job_id = response.json()["job_id"]
                with service.client() as http:
                    assert_valid_job(http.get(f"/jobs/{job_id}").json())

        check()
    print(f"{accepted} events accepted")
    assert accepted > 0  # the property was exercised, not only the rejections
