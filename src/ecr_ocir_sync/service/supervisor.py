"""Long-lived tasks that never die silently.

Every loop that must run for the life of the process — the worker loops, the
periodic reconciliation — runs under a Supervisor: an error that escapes it is
logged with its traceback, counted in ``ecr_ocir_sync_task_restarts_total``,
and the loop starts again after a backoff.  ``alive(kind)`` says how many loops
of a kind are running right now (not waiting out a backoff), which is what
readiness reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from ecr_ocir_sync.observability.metrics import Metrics

__all__ = ["Supervisor"]

log = logging.getLogger("ecr_ocir_sync.service.supervisor")

_HEALTHY_RUN = 60.0  # a loop that ran this long before failing starts its backoff afresh


class Supervisor:
    """Starts supervised tasks and knows how many of each kind are alive."""

    def __init__(self, metrics: Metrics, delay: Callable[[int], float]) -> None:
        self._metrics = metrics
        self._delay = delay  # consecutive failures → seconds before the next start
        self._alive: Counter[str] = Counter()

    def alive(self, kind: str) -> int:
        return self._alive[kind]

    def start(
        self, name: str, kind: str, body: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Run ``body()`` as task ``name`` until it returns or is cancelled."""
        self._count(kind, +1)  # alive from now: readiness right after start-up is true
        return asyncio.create_task(self._keep(name, kind, body), name=name)

    def _count(self, kind: str, change: int) -> None:
        self._alive[kind] += change

    async def _keep(self, name: str, kind: str, body: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        try:
            while True:
                started = time.monotonic()
                try:
                    await body()
                except Exception:
                    ran = time.monotonic() - started
                    failures = 1 if ran >= _HEALTHY_RUN else failures + 1
                    delay = self._delay(failures)
                    log.exception("%s failed; starting it again in %.1fs", name, delay)
                    self._metrics.task_restarts.labels(kind).inc()
                else:
                    return
                self._count(kind, -1)
                try:
                    await asyncio.sleep(delay)
                finally:
                    self._count(kind, +1)
        finally:
            self._count(kind, -1)
