"""A destination of a copy and its bookkeeping while the copy runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ecr_ocir_sync.engine.result import DestinationResult
from ecr_ocir_sync.engine.upload import BlobSink
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient

__all__ = ["Destination", "DestinationState", "Recheck"]

#: Asked right before a tag is written or deleted: why the source's current state makes
#: the write moot (the tag moved on, or exists again), or None to go ahead.  May raise
#: SyncError when the source cannot say; the destination then fails, retryably.
Recheck = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Destination:
    """Push to ``reference`` (its tag; the source's tag when it has none) via ``client``.

    ``key`` is who the caller means by it (the service: a region key); results and
    progress events carry it, so callers never map display names back.  It is the
    reference itself when not given.
    """

    client: RegistryClient
    reference: ImageReference
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", str(self.reference))

    @property
    def name(self) -> str:
        """For messages: the reference."""
        return str(self.reference)

    def to(self, reference: ImageReference) -> Destination:
        """The same destination (client and key), writing ``reference``."""
        return Destination(self.client, reference, self.key)


@dataclass(slots=True)
class DestinationState:
    """What one destination still needs, and how it fared so far."""

    destination: Destination
    result: DestinationResult
    up_to_date: bool = False
    missing_blobs: set[Digest] = field(default_factory=set)
    missing_manifests: set[Digest] = field(default_factory=set)

    @property
    def active(self) -> bool:
        return self.result.ok and not self.up_to_date

    @property
    def sink(self) -> BlobSink:
        dest = self.destination
        return BlobSink(dest.client, dest.reference.repository, dest.name, dest.key)

    def fail(self, error: SyncError) -> None:
        self.result.fail(error, retryable=error.retryable)
