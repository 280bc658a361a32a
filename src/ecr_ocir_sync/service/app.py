"""The web app: ``/sync`` intake, ``/jobs`` status, health, readiness and metrics.

``/sync`` answers 202 only after the job is committed to the store, 5xx when
it could not be (EventBridge retries those), and 4xx only for input that
can never succeed, naming the field and the rule.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ecr_ocir_sync import __version__
from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.jobs.model import JobState
from ecr_ocir_sync.jobs.request import SyncRequest
from ecr_ocir_sync.jobs.store import JobNotFoundError, JobStateError
from ecr_ocir_sync.service.events import IgnoredEvent, InvalidEventError, parse_event
from ecr_ocir_sync.service.openapi import (
    JOB_ANSWERS,
    RETRY_ANSWERS,
    SYNC_ANSWERS,
    SYNC_REQUEST_BODY,
    Rejected,
    SyncAccepted,
    SyncIgnored,
)
from ecr_ocir_sync.service.wiring import Service

__all__ = ["create_app"]

log = logging.getLogger("ecr_ocir_sync.service.app")

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


class _RejectedError(Exception):
    """A request that gets a 4xx; carries the status, field and rule."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = _RejectedError(413, f"body: larger than {limit} bytes", "body")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


class _Authorizer:
    """Checks the shared secret in constant time (X-API-Key or Bearer)."""

    def __init__(self, api_key: str | None) -> None:
        self._key = api_key.encode() if api_key else None

    def __call__(self, request: Request) -> bool:
        if self._key is None:
            return True
        offered = request.headers.get("x-api-key")
        if offered is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            offered = token if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(offered.encode(), self._key)

    def require(self, request: Request) -> None:
        if not self(request):
            raise _RejectedError(401, _UNAUTHORIZED)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="ecr-ocir-sync",
        version=__version__,
        description="Mirror AWS ECR images to OCIR regions: ECR events in, durable jobs out.",
    )
    authorized = _Authorizer(service.settings.api_key)
    _add_intake(app, service, authorized)
    _add_jobs(app, service, authorized)
    _add_health(app, service)
    return app


async def _parse(request: Request, service: Service) -> SyncRequest | IgnoredEvent:
    settings = service.settings
    body = await _read_limited(request, settings.max_body_bytes)
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise _RejectedError(400, f"body: not valid JSON ({error})", "body") from None
    try:
        return parse_event(
            payload,
            allowed_accounts=settings.allowed_accounts,
            allowed_regions=settings.allowed_regions,
        )
    except InvalidEventError as error:
        raise _RejectedError(error.status, error.message, error.field) from None


def _placed(service: Service, request: SyncRequest) -> bool:
    """Events obey the sync rules: an image no rule places is acknowledged and ignored."""
    try:
        return service.placer.destinations(request.repository, request.tag) is not None
    except ConfigError:
        return False


def _add_intake(app: FastAPI, service: Service, authorized: _Authorizer) -> None:
    events = service.metrics.events

    @app.post(
        "/sync",
        status_code=202,
        summary="Accept an ECR image event",
        responses=SYNC_ANSWERS,
        openapi_extra=SYNC_REQUEST_BODY,
    )
    async def sync(request: Request) -> JSONResponse:
        try:
            authorized.require(request)
            parsed = await _parse(request, service)
        except _RejectedError as rejection:
            events.labels("rejected").inc()
            return _error(rejection.status, rejection.message, rejection.field or None)
        if not isinstance(parsed, IgnoredEvent) and not _placed(service, parsed):
            image = f"{parsed.repository}:{parsed.tag or parsed.digest}"
            parsed = IgnoredEvent(f"no sync rule places {image} (see SYNC_RULES_FILE)")
        if isinstance(parsed, IgnoredEvent):
            events.labels("ignored").inc()
            ignored: SyncIgnored = {"status": "ignored", "message": parsed.reason}
            return JSONResponse(ignored, 200)
        try:
            submitted = await service.store.submit(parsed)
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


def _add_jobs(app: FastAPI, service: Service, authorized: _Authorizer) -> None:
    @app.get("/jobs", summary="List jobs, newest first")
    async def list_jobs(
        request: Request, state: str | None = None, limit: int = 100
    ) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        wanted: JobState | None = None
        if state is not None:
            try:
                wanted = JobState(state)
            except ValueError:
                valid = ", ".join(s.value for s in JobState)
                return _error(400, f"state: {state!r} is not one of {valid}", field="state")
        if not 1 <= limit <= 1000:
            return _error(400, "limit: must be between 1 and 1000", field="limit")
        jobs = await service.store.list(wanted, limit)
        return JSONResponse({"jobs": [job.to_json() for job in jobs]})

    @app.get(
        "/jobs/{job_id}",
        summary="One job: state, attempts, per-destination progress",
        responses=JOB_ANSWERS,
    )
    async def show_job(request: Request, job_id: str) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        try:
            job = await service.store.get(job_id)
        except JobNotFoundError:
            return _error(404, f"no job with id {job_id!r}")
        return JSONResponse(job.to_json())

    @app.post(
        "/jobs/{job_id}/retry",
        status_code=202,
        summary="Start a failed job again",
        responses=RETRY_ANSWERS,
    )
    async def retry_job(request: Request, job_id: str) -> JSONResponse:
        if not authorized(request):
            return _error(401, _UNAUTHORIZED)
        try:
            job = await service.store.retry(job_id)
        except JobNotFoundError:
            return _error(404, f"no job with id {job_id!r}")
        except JobStateError as error:
            return _error(409, str(error))
        service.workers.wake()
        return JSONResponse(job.to_json(), 202)


def _add_health(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the store commits and the service is not draining")
    async def readyz() -> JSONResponse:
        if service.draining:
            return JSONResponse({"status": "draining"}, 503)
        try:
            await service.store.ping()
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"status": f"job store not writable: {error}"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        counts = await service.store.counts()
        for state, count in counts.items():
            service.metrics.queue_depth.labels(state.value).set(count)
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
