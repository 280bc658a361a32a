"""The no-progress rule: an attempt that moves no byte for a while is cancelled.

There is deliberately no total deadline (a 40 GB layer takes hours over a
slow link); what is bounded is the time without progress.  Time spent waiting
for bytes that another stream has not fetched yet is not a stall of this one:
it is marked with :meth:`Watch.waiting` and judged by that stream's own watch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from ecr_ocir_sync.errors import UnavailableError

__all__ = ["StalledError", "Watch", "watched"]

T = TypeVar("T")


class StalledError(UnavailableError):
    """No byte moved for the configured time; the attempt was cancelled (retryable)."""


class Watch:
    """When an attempt last made progress."""

    __slots__ = ("_clock", "_last", "_waiting", "limit")

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._last = clock()
        self._waiting = 0

    def touch(self) -> None:
        self._last = self._clock()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Waiting on someone else (another stream's bytes, a free slot): no stall."""
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self.touch()

    def remaining(self) -> float:
        """Seconds until this watch calls a stall (the full limit while waiting)."""
        if self._waiting:
            return self.limit
        return self._last + self.limit - self._clock()


async def watched(work: Awaitable[T], watch: Watch, where: str) -> T:
    """Run ``work``; cancel it and raise StalledError once ``watch`` sees no progress."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            remaining = watch.remaining()
            if remaining <= 0:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise StalledError(
                    f"{where}: no progress for {watch.limit:g} s (SYNC_STALL_SECONDS); "
                    "cancelled, will retry"
                )
            done, _ = await asyncio.wait({task}, timeout=remaining)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
