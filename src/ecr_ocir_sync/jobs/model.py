"""Jobs and their per-destination records, as stored and as shown by the API."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

__all__ = ["DestinationRecord", "Job", "JobState", "SubmitResult"]


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
class DestinationRecord:
    """One destination region's progress and outcome within a job."""

    status: str = "pending"  # pending | running | succeeded | failed
    error: str | None = None
    retryable: bool = False
    bytes_sent: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    seconds: float = 0.0
    detail: str | None = None

    def with_progress(self, **changes: Any) -> DestinationRecord:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job; ``destinations`` maps region key → record."""

    id: str
    seq: int
    action: str
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

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document.pop("seq")
        document.pop("lease_owner")
        document["state"] = self.state.value
        return document


def destinations_to_text(destinations: dict[str, DestinationRecord]) -> str:
    return json.dumps({key: asdict(record) for key, record in destinations.items()})


def destinations_from_text(text: str) -> dict[str, DestinationRecord]:
    return {key: DestinationRecord(**value) for key, value in json.loads(text or "{}").items()}


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What happened to a submitted event: a new job, or folded into a pending one."""

    job: Job
    coalesced: bool
