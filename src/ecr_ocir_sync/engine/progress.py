"""Progress events the engine emits; metrics and displays subscribe to them.

The engine never formats or aggregates: it reports what happened, as it happens.
An event's ``destination`` is the caller's key for it (``Destination.key``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.outcome import BlobOutcome

__all__ = [
    "BlobDone",
    "BlobOutcome",
    "BytesRead",
    "BytesWritten",
    "DestinationPlanned",
    "ProgressEvent",
    "ProgressListener",
    "Retrying",
    "SourcePlanned",
    "SourceResumed",
    "SpoolFallback",
    "SpoolReused",
    "UploadResumed",
    "ignore_progress",
]


@dataclass(frozen=True, slots=True)
class DestinationPlanned:
    """``destination`` needs ``bytes_needed`` bytes in ``blobs_needed`` blobs."""

    destination: str
    blobs_needed: int
    bytes_needed: int
    up_to_date: bool


@dataclass(frozen=True, slots=True)
class SourcePlanned:
    """``bytes_needed`` bytes in ``blobs_needed`` blobs will be read from the source."""

    blobs_needed: int
    bytes_needed: int


@dataclass(frozen=True, slots=True)
class BytesRead:
    """``count`` more bytes arrived from the source."""

    count: int


@dataclass(frozen=True, slots=True)
class BytesWritten:
    """``count`` more bytes were sent to ``destination``."""

    destination: str
    count: int


@dataclass(frozen=True, slots=True)
class BlobDone:
    destination: str
    digest: Digest
    size: int
    outcome: BlobOutcome


@dataclass(frozen=True, slots=True)
class Retrying:
    """A transient failure; the blob is tried again after ``delay`` seconds."""

    destination: str
    digest: Digest
    error: str
    delay: float
    reason: str = "SyncError"  # the error's class: a bounded label for metrics


@dataclass(frozen=True, slots=True)
class SourceResumed:
    """The source read of ``digest`` failed at ``offset``; it continues from there after
    ``delay`` seconds with a Range request."""

    digest: Digest
    offset: int
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class SpoolFallback:
    """``digest`` did not fit in the spool's budget: copied in lockstep instead."""

    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class SpoolReused:
    """An earlier attempt (maybe an earlier process) left ``count`` bytes of ``digest`` on
    the spool; they were re-hashed against its checkpoint and are used, not read again."""

    digest: Digest
    count: int


@dataclass(frozen=True, slots=True)
class UploadResumed:
    """``destination``'s upload session of ``digest`` from an earlier attempt is still
    open at the registry, holding ``offset`` bytes: it continues from there."""

    destination: str
    digest: Digest
    offset: int


ProgressEvent = (
    DestinationPlanned
    | SourcePlanned
    | BytesRead
    | BytesWritten
    | BlobDone
    | Retrying
    | SourceResumed
    | SpoolFallback
    | SpoolReused
    | UploadResumed
)


class ProgressListener(Protocol):
    def __call__(self, event: ProgressEvent) -> None: ...


def ignore_progress(event: ProgressEvent) -> None:
    """The listener used when nobody is listening."""
