"""Retries with exponential backoff and equal jitter, honouring Retry-After.

:func:`backoff_delay` is the one backoff formula of the project: registry
requests, blob transfers (engine) and job attempts (service workers) all wait
what it says.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ecr_ocir_sync.errors import SyncError

__all__ = ["RetryPolicy", "backoff_delay", "with_retries"]

T = TypeVar("T")


def backoff_delay(attempt: int, base: float, ceiling: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (counting from 1).

    Exponential (``base``, doubling, at most ``ceiling``) with *equal* jitter: a
    uniform draw from the upper half, ``[d/2, d]``.  Not full jitter (``[0, d]``):
    the spread still de-synchronises retrying clients, while the floor keeps a retry
    from hitting a registry that has just failed at once, or re-leasing a job at once.
    """
    exponential = min(ceiling, base * 2 ** max(0, attempt - 1))
    return random.uniform(exponential / 2, exponential)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    # Injected in tests to observe the waits instead of spending them.
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def delay(self, attempt: int, error: SyncError) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        return backoff_delay(attempt, self.base_delay, self.max_delay)


async def with_retries(
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    on_retry: Callable[[SyncError, float], None] | None = None,
) -> T:
    """Run ``operation``; retry it while it raises a retryable SyncError."""
    attempt = 1
    while True:
        try:
            return await operation()
        except SyncError as error:
            if not error.retryable or attempt >= policy.attempts:
                raise
            delay = policy.delay(attempt, error)
            if on_retry is not None:
                on_retry(error, delay)
            await policy.sleep(delay)
            attempt += 1
