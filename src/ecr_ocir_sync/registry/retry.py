"""Retries with exponential backoff and full jitter, honouring Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ecr_ocir_sync.errors import SyncError

__all__ = ["RetryPolicy", "with_retries"]

T = TypeVar("T")


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
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


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
