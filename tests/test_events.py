"""ECR events become SyncRequests; anything else is rejected naming field and rule."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from ecr_ocir_sync.jobs.request import Action
from ecr_ocir_sync.service.events import IgnoredEvent, InvalidEventError, parse_event
from tests.support.service import ACCOUNT, REGION, ecr_event

ALLOWED = {"allowed_accounts": frozenset({ACCOUNT}), "allowed_regions": frozenset({REGION})}
DIGEST = "sha256:" + "c" * 64


def original_payload(**detail: Any) -> dict[str, Any]:
    """The short payload the original service documented."""
    return {
        "account": ACCOUNT,
        "region": REGION,
        "detail": {
            "action-type": "PUSH",
            "repository-name": "team/app",
            "image-tag": "1.0",
            **detail,
        },
    }


def test_the_original_short_payload_is_accepted():
    request = parse_event(original_payload(), **ALLOWED)

    assert not isinstance(request, IgnoredEvent)
    assert (request.action, request.repository, request.tag) == (Action.PUSH, "team/app", "1.0")
    assert request.event_time is None
    assert request.image_key == f"{ACCOUNT}/{REGION}/team/app:1.0"


def test_a_full_eventbridge_event_carries_digest_time_and_id():
    event = ecr_event("team/app", "1.0", digest=DIGEST, time_text="2019-11-16T01:54:34Z")

    request = parse_event(event, **ALLOWED)

    assert not isinstance(request, IgnoredEvent)
    assert request.digest == DIGEST
    assert request.event_time == datetime(2019, 11, 16, 1, 54, 34, tzinfo=UTC).timestamp()
    assert request.event_id == event["id"]


def test_a_push_without_a_tag_syncs_by_digest():
    request = parse_event(ecr_event("team/app", None, digest=DIGEST), **ALLOWED)

    assert not isinstance(request, IgnoredEvent)
    assert (request.tag, request.digest) == (None, DIGEST)
    assert request.image_key.endswith(f"team/app:{DIGEST}")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"result": "FAILURE"}, "only SUCCESS events are synced"),
        ({"action-type": "SCAN"}, "neither PUSH nor DELETE"),
    ],
)
def test_events_needing_no_work_are_ignored_with_the_reason(change, reason):
    event = ecr_event("team/app", "1.0")
    event["detail"].update(change)

    outcome = parse_event(event, **ALLOWED)

    assert isinstance(outcome, IgnoredEvent)
    assert reason in outcome.reason


def _without(path: str) -> dict[str, Any]:
    event = ecr_event("team/app", "1.0")
    container = event["detail"] if path.startswith("detail.") else event
    container.pop(path.removeprefix("detail."))
    return event


def _with(path: str, value: Any) -> dict[str, Any]:
    event = copy.deepcopy(ecr_event("team/app", "1.0"))
    if path.startswith("detail."):
        event["detail"][path.removeprefix("detail.")] = value
    else:
        event[path] = value
    return event


BAD_EVENTS = [
    ([], "body", "must be a JSON object", 400),
    (_without("detail"), "detail", "is required", 400),
    (_without("account"), "account", "is required", 400),
    (_without("region"), "region", "is required", 400),
    (_without("detail.repository-name"), "detail.repository-name", "is required", 400),
    (_without("detail.action-type"), "detail.action-type", "is required", 400),
    (_with("detail.repository-name", "Team/App"), "detail.repository-name", "lowercase", 400),
    (_with("detail.repository-name", "../etc"), "detail.repository-name", "lowercase", 400),
    (_with("detail.image-tag", "-bad"), "detail.image-tag", "invalid tag", 400),
    (_with("detail.image-tag", 7), "detail.image-tag", "must be a string", 400),
    (_with("detail.image-digest", "sha256:xyz"), "detail.image-digest", "sha256", 400),
    (_with("time", "yesterday"), "time", "ISO 8601", 400),
    (_with("source", "aws.s3"), "source", "must be 'aws.ecr'", 400),
    (_with("account", "999999999999"), "account", "not an allowed account", 403),
    (_with("region", "us-east-1"), "region", "not an allowed region", 403),
]


@pytest.mark.parametrize(("payload", "field", "rule", "status"), BAD_EVENTS)
def test_bad_events_are_rejected_naming_the_field_and_the_rule(payload, field, rule, status):
    with pytest.raises(InvalidEventError) as caught:
        parse_event(payload, **ALLOWED)

    assert caught.value.field == field
    assert rule in caught.value.message
    assert caught.value.status == status


def test_a_tagless_event_needs_a_digest():
    event = ecr_event("team/app", None)

    with pytest.raises(InvalidEventError, match=r"detail\.image-tag"):
        parse_event(event, **ALLOWED)
