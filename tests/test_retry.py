"""The one backoff formula: exponential, capped, with equal jitter."""

from __future__ import annotations

import pytest

from ecr_ocir_sync.errors import UnavailableError
from ecr_ocir_sync.registry.retry import RetryPolicy, backoff_delay

DRAWS = 200


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12, 40])
def test_a_backoff_delay_lies_in_the_upper_half_of_the_capped_exponential(attempt):
    exponential = min(30.0, 0.5 * 2 ** (attempt - 1))

    delays = [backoff_delay(attempt, 0.5, 30.0) for _ in range(DRAWS)]

    assert all(exponential / 2 <= delay <= exponential for delay in delays)
    assert len(set(delays)) > 1  # jittered: clients retrying together spread out


def test_a_retry_after_is_waited_as_asked_up_to_the_policy_ceiling():
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)

    assert policy.delay(1, UnavailableError("busy", retry_after=7.0)) == 7.0
    assert policy.delay(1, UnavailableError("busy", retry_after=600.0)) == 30.0
