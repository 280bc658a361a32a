"""What happened at one destination: its status and what was sent there.

One vocabulary for the engine that produces it, the job store that keeps it
and the API that shows it.  A leaf like ``errors``: it imports nothing from
the project, so any layer may use it without depending on another layer
(the job store must not import the engine, and the engine must not know jobs).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Self

__all__ = ["BlobOutcome", "DestinationStatus", "TransferCounts"]


class DestinationStatus(StrEnum):
    """A destination's status; a finished copy is succeeded, failed, or superseded."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # the source moved on before the write: nothing was written


class BlobOutcome(StrEnum):
    """How a blob came to be at a destination."""

    COPIED = "copied"  # streamed from the source
    SKIPPED = "skipped"  # it was there already
    MOUNTED = "mounted"  # mounted from another repository of the same registry


@dataclass(frozen=True, slots=True)
class TransferCounts:
    """What was sent to one destination.  Subclasses (a job's record) keep their own
    fields through every method, which all return a new value."""

    bytes_sent: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    manifests_pushed: int = 0

    def __add__(self, other: TransferCounts) -> Self:
        return self.with_counts(
            TransferCounts(*(getattr(self, name) + getattr(other, name) for name in _COUNT_FIELDS))
        )

    def with_counts(self, counts: TransferCounts) -> Self:
        """This value with ``counts`` in place of its own."""
        return replace(self, **{name: getattr(counts, name) for name in _COUNT_FIELDS})

    def sent(self, count: int) -> Self:
        return replace(self, bytes_sent=self.bytes_sent + count)

    def blob(self, outcome: BlobOutcome) -> Self:
        """One more blob with ``outcome``."""
        name = _BLOB_FIELDS[outcome]
        return replace(self, **{name: getattr(self, name) + 1})

    def pushed(self, count: int = 1) -> Self:
        return replace(self, manifests_pushed=self.manifests_pushed + count)


_COUNT_FIELDS = tuple(f.name for f in fields(TransferCounts))
_BLOB_FIELDS = {
    BlobOutcome.COPIED: "blobs_copied",
    BlobOutcome.SKIPPED: "blobs_skipped",
    BlobOutcome.MOUNTED: "blobs_mounted",
}
