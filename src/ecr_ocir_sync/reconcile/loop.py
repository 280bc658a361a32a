"""Running reconciliation: one pass on demand (CLI) or periodically inside ``serve``.

Passes are recorded in the job store, so one runs at a time across restarts:
a pass cut short by a restart is started again at once, otherwise the next
one is due ``SYNC_RECONCILE_INTERVAL_SECONDS`` after the last one finished.
A pass runs under the store's reconciliation lock: with PostgreSQL every
process may reconcile and the lock lets one at a time (a dead holder's lock
goes with its connection); with SQLite the one process always holds it.
``SYNC_RECONCILE_LEADER=false`` keeps a process out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

from ecr_ocir_sync.cloud.ecr_api import EcrCatalog
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.jobs.backend import Store
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.reconcile.planner import ReconcilePlan, Reconciler
from ecr_ocir_sync.registry.pool import Registries
from ecr_ocir_sync.rules.patterns import EVERY_REPOSITORY, Glob
from ecr_ocir_sync.rules.placer import Placer
from ecr_ocir_sync.settings import Settings

__all__ = ["ReconcileLoop", "TaskStarter", "apply_plans", "plan_all"]

log = logging.getLogger("ecr_ocir_sync.reconcile.planner")

_LOCK_RETRY_SECONDS = 60.0  # how often a process that found the lock taken looks again
#: Starts a long-lived task under supervision (the service's Supervisor.start):
#: its name, its kind (a metric label) and the coroutine function it runs.
TaskStarter = Callable[[str, str, Callable[[], Awaitable[None]]], "asyncio.Task[None]"]


async def plan_all(
    settings: Settings,
    registries: Registries,
    placer: Placer,
    repositories: Glob = EVERY_REPOSITORY,
) -> list[ReconcilePlan]:
    """A plan for every allowed account and region, over the repositories matched."""
    plans = []
    for account in sorted(settings.allowed_accounts):
        for region in sorted(settings.allowed_regions):
            reconciler = Reconciler(EcrCatalog(account, region), registries, placer)
            plans.append(await reconciler.plan(repositories))
    return plans


async def apply_plans(plans: list[ReconcilePlan], store: Store) -> int:
    """Enqueue the jobs the plans call for; returns how many were new (not coalesced)."""
    submitted = await asyncio.gather(
        *(store.submit(request) for plan in plans for request in plan.requests())
    )
    return sum(1 for result in submitted if not result.coalesced)


class ReconcileLoop:
    """The periodic pass of ``serve``."""

    def __init__(
        self,
        settings: Settings,
        registries: Registries,
        placer: Placer,
        store: Store,
        *,
        metrics: Metrics,
        wake_workers: Callable[[], None],
        start_task: TaskStarter,
    ) -> None:
        self._settings = settings
        self._registries = registries
        self._placer = placer
        self._store = store
        self._metrics = metrics
        self._wake = wake_workers
        self._start_task = start_task
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        settings = self._settings
        if settings.reconcile_interval_seconds <= 0 or not settings.reconcile_leader:
            log.info("periodic reconciliation is off in this process")
            self._metrics.reconcile_interval.set(0)
            return
        self._metrics.reconcile_interval.set(settings.reconcile_interval_seconds)
        # Supervised: an error that is not a SyncError is logged, counted, and the
        # loop goes on after a backoff (the unfinished pass runs again at once).
        self._task = self._start_task("reconcile", "reconcile", self._run)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _due_in(self) -> float:
        last = await self._store.last_pass()
        if last is None or last[1] is None:
            return 0.0  # never ran, or the last pass was cut short
        return max(0.0, last[1] + self._settings.reconcile_interval_seconds - time.time())

    async def _run(self) -> None:
        last_complete = await self._store.last_complete_pass()
        self._metrics.reconcile_last_complete.set(last_complete or time.time())
        while True:
            await asyncio.sleep(await self._due_in())
            async with self._store.reconcile_lock() as held:
                # Due again under the lock: another process may have just finished a pass.
                if held and await self._due_in() == 0:
                    await self.run_pass()
                    continue
            await asyncio.sleep(min(_LOCK_RETRY_SECONDS, self._settings.reconcile_interval_seconds))

    async def run_pass(self) -> None:
        pass_id = await self._store.begin_pass()
        try:
            plans = await plan_all(self._settings, self._registries, self._placer)
            created = await apply_plans(plans, self._store)
        except SyncError as error:
            log.warning("reconciliation pass failed: %s", error)
            self._metrics.reconcile_passes.labels("failed").inc()
            await self._store.end_pass(pass_id, "failed", json.dumps({"error": str(error)}))
            return
        totals = {
            key: sum(plan.totals()[key] for plan in plans)
            for key in ("copy", "update", "delete", "expire", "in_sync", "errors")
        }
        for kind, count in totals.items():
            self._metrics.reconcile_drift.labels(kind).set(count)
        self._metrics.reconcile_passes.labels("complete").inc()
        self._metrics.reconcile_last_complete.set(time.time())
        await self._store.end_pass(pass_id, "complete", json.dumps({**totals, "jobs": created}))
        log.info("reconciliation pass complete: %s, %d new job(s)", totals, created)
        if created:
            self._wake()
