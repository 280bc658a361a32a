"""What a copy or delete did, per destination."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CopyResult", "DestinationResult", "DestinationStatus"]


class DestinationStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(slots=True)
class DestinationResult:
    """One destination's outcome; ``error`` says why when it failed."""

    destination: str
    status: DestinationStatus = DestinationStatus.SUCCEEDED
    error: str | None = None
    retryable: bool = False
    bytes_sent: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    manifests_pushed: int = 0
    seconds: float = 0.0
    detail: str | None = None
    retry_after: float | None = None  # what a 429 / 503 asked for, if anything

    @property
    def ok(self) -> bool:
        return self.status is DestinationStatus.SUCCEEDED

    def fail(self, error: Exception, *, retryable: bool) -> None:
        """Record the first failure; later ones are consequences of it."""
        if self.ok:
            self.status = DestinationStatus.FAILED
            self.error = str(error) or type(error).__name__
            self.retryable = retryable
            self.retry_after = getattr(error, "retry_after", None)


@dataclass(slots=True)
class CopyResult:
    """A whole copy (or delete): the source side and every destination."""

    source: str
    digest: str | None = None
    bytes_read: int = 0
    seconds: float = 0.0
    destinations: list[DestinationResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(destination.ok for destination in self.destinations)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["ok"] = self.ok
        return document
