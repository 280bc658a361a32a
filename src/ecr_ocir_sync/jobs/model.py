"""Jobs and their per-destination records, as stored and as shown by the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from ecr_ocir_sync.jobs.request import Action, Origin
from ecr_ocir_sync.outcome import DestinationStatus, TransferCounts

__all__ = [
    "MAX_TEXT",
    "PRIVATE_FIELDS",
    "SUPERSEDED_REASON",
    "AttemptLimits",
    "BacklogFullError",
    "DestinationRecord",
    "Job",
    "JobNotFoundError",
    "JobState",
    "JobStateError",
    "LeaseLostError",
    "SubmitResult",
    "bounded",
]

# Error texts quote registries' answers; a hostile one must not grow the store or /jobs.
MAX_TEXT = 2000


def bounded(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """``text`` cut to ``limit`` characters, saying so."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 20] + f"… [{len(text) - limit + 20} more]"


class JobState(StrEnum):
    PENDING = "pending"  # waiting to run (first time, or after a failed attempt)
    RUNNING = "running"  # leased by a worker
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # out of attempts, or a failure no retry can fix
    SUPERSEDED = "superseded"  # a newer event for the same tag made it moot

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.SUPERSEDED)


@dataclass(frozen=True, slots=True)
class DestinationRecord(TransferCounts):
    """One destination region's progress and outcome within a job.

    It is its counts (rather than having them) so that stored and shown, it is
    one flat object whose schema the API documents from this very class.
    """

    status: DestinationStatus = DestinationStatus.PENDING
    error: str | None = None
    retryable: bool = False
    bytes_needed: int = 0  # what this attempt has to send, once the engine knows it
    seconds: float = 0.0
    detail: str | None = None

    def with_progress(self, **changes: Any) -> DestinationRecord:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job; ``destinations`` maps region key → record."""

    id: str
    seq: int
    action: Action
    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None
    image_key: str
    event_time: float
    event_id: str | None
    state: JobState
    attempts: int
    not_before: float
    created: float
    updated: float
    started: float | None = None
    finished: float | None = None
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires: float | None = None
    destinations: dict[str, DestinationRecord] = field(default_factory=dict)
    origin: Origin = Origin.EVENT

    def to_json(self) -> dict[str, Any]:
        """The job as the API and ``jobs show`` present it: all but PRIVATE_FIELDS."""
        document = asdict(self)
        for name in PRIVATE_FIELDS:
            document.pop(name)
        return document


#: Store-internal fields of a Job that its JSON leaves out.
PRIVATE_FIELDS = ("seq", "lease_owner")


def destinations_to_text(destinations: dict[str, DestinationRecord]) -> str:
    return json.dumps(
        {
            key: asdict(replace(record, error=bounded(record.error), detail=bounded(record.detail)))
            for key, record in destinations.items()
        }
    )


def destinations_from_text(text: str) -> dict[str, DestinationRecord]:
    return {
        key: DestinationRecord(**{**value, "status": DestinationStatus(value["status"])})
        for key, value in json.loads(text or "{}").items()
    }


SUPERSEDED_REASON = "a newer event for this tag was accepted; this one has no effect"


def _no_backoff(_attempts: int) -> float:
    return 0.0


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """How many attempts a job gets, counted when it is leased, and how long a job waits
    after an attempt that never ended (its process died, or its lease ran out)."""

    max_attempts: int = 10
    backoff: Callable[[int], float] = _no_backoff  # attempts so far → seconds to wait


class JobNotFoundError(LookupError):
    """No job has that id."""


class JobStateError(ValueError):
    """The job is not in a state that allows the operation."""


class BacklogFullError(RuntimeError):
    """``max_pending`` jobs wait or run already: the event must be sent again later."""


class LeaseLostError(RuntimeError):
    """The job is no longer leased by this owner: another worker (or pod) runs it now."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What happened to a submitted event: a new job, or folded into a pending one."""

    job: Job
    coalesced: bool
