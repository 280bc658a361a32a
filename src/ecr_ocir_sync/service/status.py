"""``GET /status``: one document with what an operator looks at first.

Backlog, jobs running now with per-region progress, recent failures with their
reasons, the last reconciliation pass. ``ecr-ocir-sync status`` renders it.
"""

from __future__ import annotations

import time
from typing import Any

from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from ecr_ocir_sync.jobs.model import JobState
from ecr_ocir_sync.service.openapi import JobJson
from ecr_ocir_sync.service.wiring import Service

__all__ = ["RECENT_FAILURES", "StatusDocument", "status_document"]

RECENT_FAILURES = 10
_RUNNING_SHOWN = 50


class Backlog(TypedDict):
    pending: int
    running: int
    failed: int
    oldest_pending_age_seconds: float


class Workers(TypedDict):
    alive: int
    configured: int


class ReconcilePass(TypedDict):
    started: float
    finished: float | None
    outcome: str | None  # complete | failed; None while running or cut short
    summary: dict[str, Any] | None  # drift totals and jobs enqueued, or the error


class Reconciliation(TypedDict):
    interval_seconds: float  # 0 when this process runs no periodic pass
    last_pass: ReconcilePass | None


class StatusDocument(TypedDict):
    """What GET /status answers (the handler builds exactly this)."""

    now: float
    backlog: Backlog
    workers: Workers
    running: list[JobJson]
    recent_failures: list[JobJson]
    reconciliation: Reconciliation


async def status_document(service: Service) -> StatusDocument:
    store = service.store
    settings = service.settings
    counts = await store.counts()
    oldest = await store.oldest_pending_created()
    now = time.time()
    running = await store.list(JobState.RUNNING, _RUNNING_SHOWN)
    failed = await store.list(JobState.FAILED, RECENT_FAILURES)
    leader = settings.reconcile_interval_seconds > 0 and settings.reconcile_leader
    return {
        "now": now,
        "backlog": {
            "pending": counts[JobState.PENDING],
            "running": counts[JobState.RUNNING],
            "failed": counts[JobState.FAILED],
            "oldest_pending_age_seconds": 0.0 if oldest is None else max(0.0, now - oldest),
        },
        "workers": {"alive": service.workers.alive, "configured": settings.workers},
        "running": [job.to_json() for job in running],
        "recent_failures": [job.to_json() for job in failed],
        "reconciliation": {
            "interval_seconds": settings.reconcile_interval_seconds if leader else 0.0,
            "last_pass": _last_pass(await store.latest_pass()),
        },
    }


def _last_pass(recorded: dict[str, Any] | None) -> ReconcilePass | None:
    if recorded is None:
        return None
    return {
        "started": recorded["started"],
        "finished": recorded["finished"],
        "outcome": recorded["outcome"],
        "summary": recorded["summary"],
    }
