"""What the OpenAPI page (/docs) shows: request and answer shapes of the web app.

The handlers parse and answer by hand (fast, and with the field-and-rule
messages the API promises); these models only document those shapes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["JOB_ANSWERS", "SYNC_ANSWERS", "SYNC_REQUEST_BODY"]


class SyncAccepted(BaseModel):
    status: str = Field(examples=["success"])
    message: str = Field(examples=["Task is running asynchronously"])
    job_id: str
    state: str = Field(description="pending, or superseded when a newer event already won")
    coalesced: bool = Field(description="folded into a pending job for the same image")


class SyncIgnored(BaseModel):
    status: str = Field(examples=["ignored"])
    message: str = Field(examples=["detail.result is 'FAILURE', only SUCCESS events are synced"])


class Rejected(BaseModel):
    status: str = Field(examples=["error"])
    message: str = Field(examples=["detail.image-tag: invalid tag '-x': up to 128 letters, …"])
    field: str | None = Field(default=None, examples=["detail.image-tag"])


class DestinationRecord(BaseModel):
    status: str
    error: str | None
    retryable: bool
    bytes_sent: int
    blobs_copied: int
    blobs_skipped: int
    blobs_mounted: int
    seconds: float
    detail: str | None


class JobDocument(BaseModel):
    id: str
    action: str
    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None
    image_key: str
    event_time: float
    event_id: str | None
    state: str
    attempts: int
    not_before: float
    created: float
    updated: float
    started: float | None
    finished: float | None
    last_error: str | None
    lease_expires: float | None
    destinations: dict[str, DestinationRecord]


_ORIGINAL = {
    "account": "123456789012",
    "region": "ap-southeast-2",
    "detail": {"action-type": "PUSH", "repository-name": "team/web", "image-tag": "1.4"},
}
_EVENTBRIDGE = {
    "version": "0",
    "id": "13cde686-328b-6117-af20-0e5566167482",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2019-11-16T01:54:34Z",
    "region": "ap-southeast-2",
    "resources": [],
    "detail": {
        "result": "SUCCESS",
        "repository-name": "team/web",
        "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234abcd",
        "action-type": "PUSH",
        "image-tag": "1.4",
    },
}

SYNC_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The original service's short payload, or a full EventBridge "
        "'ECR Image Action' event. Send the shared secret as X-API-Key or Bearer.",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "examples": {
                    "original payload": {"value": _ORIGINAL},
                    "EventBridge event": {"value": _EVENTBRIDGE},
                },
            }
        },
    }
}

SYNC_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": SyncAccepted, "description": "committed to the job store"},
    200: {"model": SyncIgnored, "description": "well formed, nothing to do"},
    400: {"model": Rejected, "description": "malformed; names the field and the rule"},
    401: {"model": Rejected, "description": "missing or wrong shared secret"},
    403: {"model": Rejected, "description": "account or region not allowed"},
    413: {"model": Rejected, "description": "body over SYNC_MAX_BODY_BYTES"},
    503: {"model": Rejected, "description": "the store could not commit; retry (Retry-After)"},
}

JOB_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": JobDocument},
    401: {"model": Rejected},
    404: {"model": Rejected},
}
