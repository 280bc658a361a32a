"""Operations endpoints: liveness, readiness and metrics, for probes and Prometheus.

They need no secret, so they are served on their own port (``SYNC_OPS_PORT``)
that an ingress never exposes; with ``SYNC_OPS_PORT=0`` they join the API port.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ecr_ocir_sync import __version__
from ecr_ocir_sync.service.openapi import METRICS_ANSWERS, READY_ANSWERS
from ecr_ocir_sync.service.readiness import NOT_WRITABLE
from ecr_ocir_sync.service.wiring import Service

__all__ = ["create_ops_app", "ops_router"]


def ops_router(service: Service) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: every worker runs, the store commits (checked at most once a "
        "second), not draining",
        responses=READY_ANSWERS,
    )
    async def readyz() -> JSONResponse:
        if service.draining:
            return JSONResponse({"status": "draining"}, 503)
        if not service.store.healthy or not await service.readiness.ready():
            return JSONResponse({"status": NOT_WRITABLE}, 503)
        alive, wanted = service.workers.alive, service.settings.workers
        if alive < wanted:
            return JSONResponse(
                {"status": f"only {alive} of {wanted} workers are running (see the logs)"}, 503
            )
        return JSONResponse({"status": "ready"})

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=Response,
        responses=METRICS_ANSWERS,
    )
    async def metrics() -> Response:
        # The readiness check is the store's write probe (at most once a second).
        writable = await service.readiness.ready()
        service.metrics.store_writable.set(1 if writable else 0)
        if writable:
            await _observe_queue(service)
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _observe_queue(service: Service) -> None:
    metrics = service.metrics
    for state, count in (await service.store.counts()).items():
        metrics.queue_depth.labels(state.value).set(count)
    oldest = await service.store.oldest_pending_created()
    metrics.oldest_pending_age.set(0 if oldest is None else max(0.0, time.time() - oldest))


def create_ops_app(service: Service) -> FastAPI:
    """The operations port's app: no docs, no secret, nothing that changes state."""
    app = FastAPI(
        title="ecr-ocir-sync operations",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.include_router(ops_router(service))
    return app
