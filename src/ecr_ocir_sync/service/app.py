"""The API app: ``/sync`` intake and ``/jobs`` status (health and metrics: see ops).

``/sync`` answers 202 only after the job is committed to the store, 5xx when
it could not be (EventBridge retries those), and 4xx only for input that
can never succeed, naming the field and the rule.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr

from ecr_ocir_sync import __version__
from ecr_ocir_sync.jobs.model import JobState
from ecr_ocir_sync.jobs.request import SyncRequest
from ecr_ocir_sync.jobs.store import BacklogFullError, JobNotFoundError, JobStateError
from ecr_ocir_sync.service.events import IgnoredEvent
from ecr_ocir_sync.service.intake import ClientGoneError, RejectedError, read_event
from ecr_ocir_sync.service.openapi import (
    API_KEY_SCHEMES,
    JOB_ANSWERS,
    JOBS_ANSWERS,
    JOBS_PARAMETERS,
    RETRY_ANSWERS,
    SYNC_ANSWERS,
    SYNC_REQUEST_BODY,
    Rejected,
    SyncAccepted,
    SyncIgnored,
    add_payload_schemas,
)
from ecr_ocir_sync.service.ops import ops_router
from ecr_ocir_sync.service.status import StatusDocument, status_document
from ecr_ocir_sync.service.wiring import Service

__all__ = ["MAX_LIST_LIMIT", "create_app"]

log = logging.getLogger("ecr_ocir_sync.service.app")

MAX_LIST_LIMIT = 1000
_MAX_CURSOR_DIGITS = 18
_UNAUTHORIZED = (
    "missing or wrong API key: send the shared secret (SYNC_API_KEY) in the X-API-Key header "
    "or as 'Authorization: Bearer <key>'"
)


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "5"} if status in (429, 503) else None
    body: Rejected = {"status": "error", "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status, headers=headers)


class _Authorizer:
    """Checks the shared secret in constant time (X-API-Key or Bearer)."""

    def __init__(self, api_key: SecretStr | None) -> None:
        self._key = api_key.get_secret_value().encode() if api_key else None

    def __call__(self, request: Request) -> bool:
        if self._key is None:
            return True
        offered = request.headers.get("x-api-key")
        if offered is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            offered = token if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(offered.encode(), self._key)


def create_app(service: Service) -> FastAPI:
    docs = service.settings.api_docs
    app = FastAPI(
        title="ecr-ocir-sync",
        version=__version__,
        description="Mirror AWS ECR images to OCIR regions: ECR events in, durable jobs out.",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    authorized = _Authorizer(service.settings.api_key)
    _add_intake(app, service, authorized)
    _add_jobs(app, service, authorized)
    _add_status(app, service, authorized)
    if service.settings.ops_port == 0:
        app.include_router(ops_router(service))
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_payload_schemas(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _add_intake(app: FastAPI, service: Service, authorized: _Authorizer) -> None:
    events = service.metrics.events
    settings = service.settings

    @app.post(
        "/sync",
        status_code=202,
        summary="Accept an ECR image event",
        responses=SYNC_ANSWERS,
        openapi_extra={**SYNC_REQUEST_BODY, "security": API_KEY_SCHEMES},
    )
    async def sync(request: Request) -> Response:
        if not authorized(request):
            events.labels("rejected").inc()
            return _error(401, _UNAUTHORIZED)
        try:
            parsed = await read_event(request, settings, service.placer)
        except ClientGoneError:
            return Response(status_code=400)  # counted by the guard; nobody is listening
        except RejectedError as rejection:
            events.labels("rejected").inc()
            return _error(rejection.status, rejection.message, rejection.field or None)
        if isinstance(parsed, IgnoredEvent):
            events.labels("ignored").inc()
            ignored: SyncIgnored = {"status": "ignored", "message": parsed.reason}
            return JSONResponse(ignored, 200)
        return await _commit(service, parsed)


async def _commit(service: Service, request: SyncRequest) -> JSONResponse:
    """202 once the job is committed; 503 with Retry-After when it cannot be."""
    events = service.metrics.events
    try:
        submitted = await service.store.submit(request, service.settings.max_pending_jobs)
    except BacklogFullError as full:
        events.labels("backlog_full").inc()
        return _error(503, f"the backlog is full: {full}; retry later")
    except Exception:
        log.exception("could not commit a job")
        events.labels("unavailable").inc()
        return _error(503, "the job store could not commit this event; retry later")
    events.labels("coalesced" if submitted.coalesced else "accepted").inc()
    service.workers.wake()
    accepted: SyncAccepted = {
        "status": "success",
        "message": "Task is running asynchronously",
        "job_id": submitted.job.id,
        "state": submitted.job.state,
        "coalesced": submitted.coalesced,
    }
    return JSONResponse(accepted, 202)


class _BadQueryError(Exception):
    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field


def _list_query(request: Request) -> tuple[JobState | None, int, int | None]:
    query = request.query_params
    wanted: JobState | None = None
    state = query.get("state")
    if state is not None:
        try:
            wanted = JobState(state)
        except ValueError:
            valid = ", ".join(s.value for s in JobState)
            raise _BadQueryError("state", f"{state[:40]!r} is not one of {valid}") from None
    limit_text = query.get("limit", "100")
    if not (limit_text.isascii() and limit_text.isdigit() and 1 <= int(limit_text) <= 1000):
        raise _BadQueryError("limit", f"must be a whole number from 1 to {MAX_LIST_LIMIT}")
    cursor = query.get("cursor")
    if cursor is not None and not (
        cursor.isascii() and cursor.isdigit() and len(cursor) <= _MAX_CURSOR_DIGITS
    ):
        raise _BadQueryError("cursor", "must be the next_cursor of a previous page")
    return wanted, int(limit_text), int(cursor) if cursor is not None else None


def _add_jobs(app: FastAPI, service: Service, authorized: _Authorizer) -> None:
    @app.get(
        "/jobs",
        summary="List jobs, newest first, a page at a time",
        responses=JOBS_ANSWERS,
        openapi_extra={"parameters": JOBS_PARAMETERS, "security": API_KEY_SCHEMES},
    )
    async def list_jobs(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        try:
            state, limit, before = _list_query(request)
        except _BadQueryError as bad:
            return _error(400, str(bad), field=bad.field)
        jobs = await service.store.list(state, limit, before)
        next_cursor = str(jobs[-1].seq) if len(jobs) == limit else None
        return JSONResponse({"jobs": [job.to_json() for job in jobs], "next_cursor": next_cursor})

    @app.get(
        "/jobs/{job_id}",
        summary="One job: state, attempts, per-destination progress",
        responses=JOB_ANSWERS,
        openapi_extra={"security": API_KEY_SCHEMES},
    )
    async def show_job(request: Request, job_id: str) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        try:
            job = await service.store.get(job_id)
        except JobNotFoundError:
            return _error(404, f"no job with id {job_id[:64]!r}")
        return JSONResponse(job.to_json())

    @app.post(
        "/jobs/{job_id}/retry",
        status_code=202,
        summary="Start a failed job again",
        responses=RETRY_ANSWERS,
        openapi_extra={"security": API_KEY_SCHEMES},
    )
    async def retry_job(request: Request, job_id: str) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        try:
            job = await service.store.retry(job_id)
        except JobNotFoundError:
            return _error(404, f"no job with id {job_id[:64]!r}")
        except JobStateError as error:
            return _error(409, str(error))
        service.workers.wake()
        return JSONResponse(job.to_json(), 202)


def _add_status(app: FastAPI, service: Service, authorized: _Authorizer) -> None:
    @app.get(
        "/status",
        summary="Backlog, running jobs with per-region progress, recent failures, last pass",
        responses={200: {"model": StatusDocument}, 401: {"model": Rejected}},
        openapi_extra={"security": API_KEY_SCHEMES},
    )
    async def status(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        return JSONResponse(await status_document(service))
