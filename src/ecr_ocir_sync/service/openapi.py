"""What the OpenAPI page (/docs) shows: request and answer shapes of the web app.

The handlers parse and answer by hand (fast, and with the field-and-rule
messages the API promises).  The shapes shown are the types they use: the
answers of /sync are the TypedDicts the handlers build, and the job document
is generated from :class:`~ecr_ocir_sync.jobs.model.Job` itself (less its
private fields), so the page cannot drift from what is sent.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from ecr_ocir_sync.jobs.model import PRIVATE_FIELDS, Job, JobState

__all__ = [
    "API_KEY_SCHEMES",
    "JOBS_ANSWERS",
    "JOBS_PARAMETERS",
    "JOB_ANSWERS",
    "METRICS_ANSWERS",
    "READY_ANSWERS",
    "RETRY_ANSWERS",
    "SECURITY_SCHEMES",
    "SYNC_ANSWERS",
    "SYNC_REQUEST_BODY",
    "JobDocument",
    "JobJson",
    "Rejected",
    "SyncAccepted",
    "SyncIgnored",
    "add_payload_schemas",
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

# The grammar the intake enforces (oci/reference.py, service/events.py), ASCII only.
_REPOSITORY = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_DIGEST = r"^sha256:[a-f0-9]{64}$"


class EcrDetail(BaseModel):
    """``detail`` of an ECR Image Action; other fields are allowed and ignored."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    action_type: str = Field(
        alias="action-type",
        min_length=1,
        description="PUSH or DELETE are synced; any other action is answered 200 ignored",
        examples=["PUSH"],
    )
    repository_name: str = Field(
        alias="repository-name",
        pattern=_REPOSITORY,
        max_length=255,
        description="ECR repository; with the OCIR namespace it must stay within 255 "
        "characters (else 400)",
    )
    image_tag: str | None = Field(
        default=None,
        alias="image-tag",
        pattern=_TAG,
        description="required unless image-digest is given",
    )
    image_digest: str | None = Field(default=None, alias="image-digest", pattern=_DIGEST)
    result: str | None = Field(
        default=None, description="only SUCCESS is synced; FAILURE is answered 200 ignored"
    )


class OriginalPayload(BaseModel):
    """The original service's short payload."""

    model_config = ConfigDict(extra="allow")

    account: str = Field(pattern=r"^[0-9]{12}$", description="one of SYNC_ALLOWED_ACCOUNTS")
    region: str = Field(
        pattern=r"^[a-z]{2}(?:-[a-z]+)+-[0-9]$",
        description="one of SYNC_ALLOWED_REGIONS",
        examples=["ap-southeast-2"],
    )
    detail: EcrDetail


class EventBridgeEvent(OriginalPayload):
    """A full EventBridge "ECR Image Action" event."""

    version: str | None = Field(default=None, examples=["0"])
    id: str | None = Field(
        default=None, pattern=r"^[\x21-\x7e]{1,128}$", description="stored with the job"
    )
    detail_type: str | None = Field(
        default=None,
        alias="detail-type",
        description="only 'ECR Image Action' is synced; others are answered 200 ignored",
    )
    source: str | None = Field(default=None, pattern="^aws\\.ecr$")
    time: str | None = Field(default=None, description="ISO 8601; the newest event per tag wins")
    resources: list[Any] | None = None


if TYPE_CHECKING:
    JobJson = dict[str, Any]  # what Job.to_json returns, for answers that embed jobs
else:
    JobJson = JobDocument  # ... and how the schema of those answers documents it

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
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/OriginalPayload"},
                        {"$ref": "#/components/schemas/EventBridgeEvent"},
                    ]
                },
                "examples": {
                    "original payload": {"value": _ORIGINAL},
                    "EventBridge event": {"value": _EVENTBRIDGE},
                },
            }
        },
    }
}


#: A page of GET /jobs.
JobPage = create_model(
    "JobPage",
    jobs=(list[JobDocument], ...),  # type: ignore[valid-type]
    next_cursor=(
        str | None,
        Field(description="pass as ?cursor= for the next (older) page; null on the last page"),
    ),
)


class Status(BaseModel):
    status: str = Field(examples=["ready", "draining", "job store not writable"])


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_UNAUTHORIZED: dict[str, Any] = {"model": Rejected, "description": "missing or wrong API key"}
_TIMEOUT: dict[str, Any] = {
    "description": "headers or body not received within SYNC_HEADER_TIMEOUT_SECONDS / "
    "SYNC_BODY_TIMEOUT_SECONDS",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
_OVERLOADED: dict[str, Any] = {
    "description": "more than SYNC_MAX_CONCURRENCY connections and requests in flight",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}

SYNC_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": SyncAccepted, "description": "committed to the job store"},
    200: {"model": SyncIgnored, "description": "well formed, nothing to do"},
    400: {"model": Rejected, "description": "malformed; names the field and the rule"},
    401: _UNAUTHORIZED,
    403: {"model": Rejected, "description": "account or region not allowed"},
    408: _TIMEOUT,
    413: {"model": Rejected, "description": "body over SYNC_MAX_BODY_BYTES"},
    415: {"model": Rejected, "description": "not sent as application/json"},
    503: {
        "model": Rejected,
        "description": "the store could not commit, or SYNC_MAX_PENDING_JOBS jobs are "
        "unfinished (JSON, with Retry-After), or too many connections (text): retry later",
        "headers": _RETRY_AFTER,
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}

JOBS_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "state",
        "in": "query",
        "required": False,
        "schema": {
            "type": "string",
            "enum": ["pending", "running", "succeeded", "failed", "superseded"],
        },
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "next_cursor of the previous page",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
]

JOBS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": JobPage, "description": "a page of jobs, newest first"},
    400: {"model": Rejected, "description": "a bad state, limit or cursor; names it"},
    401: _UNAUTHORIZED,
    408: _TIMEOUT,
    503: _OVERLOADED,
}

JOB_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": JobDocument, "description": "the job"},
    401: _UNAUTHORIZED,
    404: {"model": Rejected, "description": "no job with that id"},
    408: _TIMEOUT,
    503: _OVERLOADED,
}

RETRY_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": JobDocument, "description": "pending again, with fresh attempts"},
    401: _UNAUTHORIZED,
    404: {"model": Rejected, "description": "no job with that id"},
    408: _TIMEOUT,
    409: {"model": Rejected, "description": "only a failed job can be retried"},
    503: _OVERLOADED,
}

READY_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": Status, "description": "ready"},
    503: {
        "model": Status,
        "description": "draining, fewer workers running than configured, or the job store "
        "cannot commit",
    },
}

METRICS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same shared secret"},
}
API_KEY_SCHEMES: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]


def add_payload_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The payload models and the security schemes in ``document``'s components."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (OriginalPayload, EventBridgeEvent):
        definition = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        schemas.update(definition.pop("$defs", {}))
        schemas[model.__name__] = definition
    components["securitySchemes"] = SECURITY_SCHEMES
    return document
