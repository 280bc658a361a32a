"""Readiness without a write per probe: one store check per interval, shared by all callers.

Probes are unauthenticated and may come often; each would otherwise be a
durable write.  The answer is a fixed text: the store's own error goes to the
log, never to whoever asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["NOT_WRITABLE", "Readiness"]

log = logging.getLogger("ecr_ocir_sync.service.readiness")

NOT_WRITABLE = "job store not writable"


class Readiness:
    """Whether the store can commit, checked at most once per ``interval`` seconds."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ping = ping
        self._interval = interval
        self._clock = clock
        self._checked_at: float | None = None
        self._ready = False
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._checked_at is not None and self._clock() - self._checked_at < self._interval

    async def ready(self) -> bool:
        if self._fresh():
            return self._ready
        async with self._lock:  # callers arriving during a check share its result
            if not self._fresh():
                try:
                    await self._ping()
                except Exception as error:  # noqa: BLE001 - any failure means not ready
                    if self._ready or self._checked_at is None:
                        log.warning("%s: %s", NOT_WRITABLE, error)
                    self._ready = False
                else:
                    self._ready = True
                self._checked_at = self._clock()
        return self._ready
