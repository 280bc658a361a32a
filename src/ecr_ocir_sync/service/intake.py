"""Reading a ``/sync`` request: content type, size, JSON and the event, each rejection
naming what was wrong and how to fix it.

Only what can never succeed is a 4xx; a body the client stopped sending is a
:class:`ClientGoneError` (counted, nothing answered).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.jobs.request import SyncRequest
from ecr_ocir_sync.rules.placer import Placer
from ecr_ocir_sync.service.events import IgnoredEvent, InvalidEventError, parse_event
from ecr_ocir_sync.settings import Settings

__all__ = ["ClientGoneError", "RejectedError", "classify", "read_event"]

_JSON = "application/json"


class RejectedError(Exception):
    """A request that gets a 4xx; carries the status, field and rule."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class ClientGoneError(Exception):
    """The client disconnected before its body was complete: nobody to answer."""


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != _JSON:
        sent = f"'{media_type}'" if media_type else "no Content-Type"
        rule = f"sent as {sent}; send the event as JSON with 'Content-Type: {_JSON}'"
        raise RejectedError(415, f"body: {rule}", "body")


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = RejectedError(
        413, f"body: larger than {limit} bytes (SYNC_MAX_BODY_BYTES); send one event", "body"
    )
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:
        raise ClientGoneError from None
    return bytes(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise RejectedError(400, "body: JSON nested too deeply", "body") from None
    except ValueError as error:  # also bad UTF-8 (UnicodeDecodeError)
        raise RejectedError(400, f"body: not valid JSON ({error})", "body") from None


def _check_placeable(placer: Placer, request: SyncRequest) -> bool:
    """Whether a sync rule places ``request``; a name OCIR cannot hold is the sender's 400."""
    try:
        return placer.destinations(request.repository, request.tag) is not None
    except ConfigError as error:
        raise RejectedError(
            400, f"detail.repository-name: {error.message}", "detail.repository-name"
        ) from None


def classify(payload: Any, settings: Settings, placer: Placer) -> SyncRequest | IgnoredEvent:
    """What a decoded event becomes, however it came (``/sync`` or SQS): a job to
    commit, or why none is needed; raises RejectedError for input that can never succeed."""
    try:
        parsed = parse_event(
            payload,
            allowed_accounts=settings.allowed_accounts,
            allowed_regions=settings.allowed_regions,
        )
    except InvalidEventError as error:
        raise RejectedError(error.status, error.message, error.field) from None
    if isinstance(parsed, IgnoredEvent) or _check_placeable(placer, parsed):
        return parsed
    image = f"{parsed.repository}:{parsed.tag or parsed.digest}"
    return IgnoredEvent(f"no sync rule places {image} (see SYNC_RULES_FILE)")


async def read_event(
    request: Request, settings: Settings, placer: Placer
) -> SyncRequest | IgnoredEvent:
    """The validated event in ``request``; raises RejectedError or ClientGoneError."""
    _check_content_type(request)
    payload = _decode(await _read_limited(request, settings.max_body_bytes))
    return classify(payload, settings, placer)
