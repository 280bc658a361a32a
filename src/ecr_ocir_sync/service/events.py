"""Turning an ECR event into a validated SyncRequest, or saying exactly what is wrong.

Two shapes are accepted: the original service's short payload
(``account``, ``region``, ``detail.action-type``, ``detail.repository-name``,
``detail.image-tag``) and the full EventBridge "ECR Image Action" event.
The source registry is always derived from account and region; nothing in
the request names a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecr_ocir_sync.errors import InvalidReferenceError, SyncError
from ecr_ocir_sync.jobs.request import EVENT_ACTIONS, Action, SyncRequest
from ecr_ocir_sync.oci.digest import Digest, parse_digest
from ecr_ocir_sync.oci.reference import check_repository, check_tag

__all__ = ["IgnoredEvent", "InvalidEventError", "parse_event"]

# Stored with the job: bounded, printable ASCII (EventBridge's ids are 36-character UUIDs).
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")


class InvalidEventError(SyncError):
    """The request can never succeed as sent; ``field`` names what to fix."""

    def __init__(self, field: str, rule: str, status: int = 400) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """A well-formed event that needs no work, with the reason."""

    reason: str


def _optional(container: Mapping[str, Any], key: str, path: str = "") -> str | None:
    value = container.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEventError(f"{path}{key}", f"must be a string, got {type(value).__name__}")
    return value


def _required(container: Mapping[str, Any], key: str, path: str = "") -> str:
    value = _optional(container, key, path)
    if value is None:
        raise InvalidEventError(f"{path}{key}", "is required")
    return value


def _checked(field: str, check: Any, value: str) -> str:
    try:
        return str(check(value))
    except InvalidReferenceError as error:
        raise InvalidEventError(field, error.message) from None


def _event_id(text: str | None) -> str | None:
    if text is not None and not _EVENT_ID.fullmatch(text):
        raise InvalidEventError(
            "id", f"must be 1 to 128 printable ASCII characters, got {len(text)} characters"
        )
    return text


def _event_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidEventError(
            "time", f"{text!r} is not an ISO 8601 time such as 2019-11-16T01:54:34Z"
        ) from None


def parse_event(
    payload: Any, *, allowed_accounts: frozenset[str], allowed_regions: frozenset[str]
) -> SyncRequest | IgnoredEvent:
    """Validate ``payload`` (decoded JSON); raise InvalidEventError naming field and rule."""
    if not isinstance(payload, dict):
        raise InvalidEventError("body", "must be a JSON object")
    detail = payload.get("detail")
    if not isinstance(detail, dict):
        raise InvalidEventError("detail", "is required and must be an object")
    source = _optional(payload, "source", "")
    if source is not None and source != "aws.ecr":
        raise InvalidEventError("source", f"must be 'aws.ecr', got {source!r}")
    kind = _optional(payload, "detail-type", "")
    if kind is not None and kind != "ECR Image Action":
        return IgnoredEvent(f"detail-type {kind!r} is not 'ECR Image Action'")
    account = _required(payload, "account", "")
    region = _required(payload, "region", "")
    if account not in allowed_accounts:
        raise InvalidEventError(
            "account", f"{account!r} is not an allowed account (see SYNC_ALLOWED_ACCOUNTS)", 403
        )
    if region not in allowed_regions:
        raise InvalidEventError(
            "region", f"{region!r} is not an allowed region (see SYNC_ALLOWED_REGIONS)", 403
        )
    result = _optional(detail, "result", "detail.")
    if result is not None and result != "SUCCESS":
        return IgnoredEvent(f"detail.result is {result!r}, only SUCCESS events are synced")
    action_text = _required(detail, "action-type", "detail.")
    if action_text not in EVENT_ACTIONS:
        return IgnoredEvent(f"detail.action-type {action_text!r} is neither PUSH nor DELETE")
    repository = _required(detail, "repository-name", "detail.")
    repository = _checked("detail.repository-name", check_repository, repository)
    tag = _optional(detail, "image-tag", "detail.")
    if tag is not None:
        tag = _checked("detail.image-tag", check_tag, tag)
    digest_text = _optional(detail, "image-digest", "detail.")
    digest = (
        Digest(_checked("detail.image-digest", parse_digest, digest_text))
        if digest_text is not None
        else None
    )
    if tag is None and digest is None:
        raise InvalidEventError(
            "detail.image-tag", "is required when detail.image-digest is absent"
        )
    return SyncRequest(
        action=Action(action_text),
        account=account,
        region=region,
        repository=repository,
        tag=tag,
        digest=digest,
        event_time=_event_time(_optional(payload, "time", "")),
        event_id=_event_id(_optional(payload, "id", "")),
    )
