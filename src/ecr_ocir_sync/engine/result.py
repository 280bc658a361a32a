"""What a copy or delete did, per destination."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ecr_ocir_sync.outcome import DestinationStatus, TransferCounts

__all__ = ["CopyResult", "DestinationResult", "DestinationStatus", "flat_counts"]


@dataclass(slots=True)
class DestinationResult:
    """One destination's outcome; ``error`` says why when it failed.

    ``destination`` is the caller's key for it (see Destination.key).
    """

    destination: str
    status: DestinationStatus = DestinationStatus.SUCCEEDED
    error: str | None = None
    retryable: bool = False
    counts: TransferCounts = field(default_factory=TransferCounts)
    seconds: float = 0.0
    detail: str | None = None
    retry_after: float | None = None  # what a 429 / 503 asked for, if anything

    @property
    def ok(self) -> bool:
        return self.status is DestinationStatus.SUCCEEDED

    def supersede(self, reason: str) -> None:
        """The source no longer holds what this write would mirror: leave the destination."""
        if self.ok:
            self.status = DestinationStatus.SUPERSEDED
            self.detail = reason

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
        document["destinations"] = [flat_counts(d) for d in document["destinations"]]
        document["ok"] = self.ok
        return document


def flat_counts(document: dict[str, Any]) -> dict[str, Any]:
    """A destination's JSON with its counts beside its other fields, as jobs show them."""
    return {**{k: v for k, v in document.items() if k != "counts"}, **document["counts"]}
