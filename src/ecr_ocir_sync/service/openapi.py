"""What the OpenAPI page (/docs) shows: request and answer shapes of the web app.

The handlers parse and answer by hand (fast, and with the field-and-rule
messages the API promises).  The shapes shown are the types they use: the
answers of /sync are the TypedDicts the handlers build, and the job document
is generated from :class:`~ecr_ocir_sync.jobs.model.Job` itself (less its
private fields), so the page cannot drift from what is sent.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, NotRequired, get_type_hints

from pydantic import BaseModel, Field, create_model
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from ecr_ocir_sync.jobs.model import PRIVATE_FIELDS, Job, JobState

__all__ = [
    "JOB_ANSWERS",
    "RETRY_ANSWERS",
    "SYNC_ANSWERS",
    "SYNC_REQUEST_BODY",
    "Rejected",
    "SyncAccepted",
    "SyncIgnored",
]


class SyncAccepted(TypedDict):
    status: Literal["success"]
    message: Annotated[str, Field(examples=["Task is running asynchronously"])]
    job_id: str
    state: Annotated[
        JobState, Field(description="pending, or superseded when a newer event already won")
    ]
    coalesced: Annotated[bool, Field(description="folded into a pending job for the same image")]


class SyncIgnored(TypedDict):
    status: Literal["ignored"]
    message: Annotated[
        str, Field(examples=["detail.result is 'FAILURE', only SUCCESS events are synced"])
    ]


class Rejected(TypedDict):
    status: Literal["error"]
    message: Annotated[
        str, Field(examples=["detail.image-tag: invalid tag '-x': up to 128 letters, …"])
    ]
    field: NotRequired[Annotated[str, Field(examples=["detail.image-tag"])]]


def _document_model(name: str, source: type[Any], private: tuple[str, ...]) -> type[BaseModel]:
    """A pydantic model of ``source``'s dataclass fields but ``private``, for the schema."""
    hints = get_type_hints(source)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], ...) for f in dataclasses.fields(source) if f.name not in private
    }
    return create_model(name, __doc__=source.__doc__, **fields)


#: The job as GET /jobs/{id} sends it (Job.to_json).
JobDocument = _document_model("JobDocument", Job, PRIVATE_FIELDS)

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

RETRY_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": JobDocument, "description": "pending again"},
    401: {"model": Rejected},
    404: {"model": Rejected},
    409: {"model": Rejected, "description": "the job has not failed"},
}
