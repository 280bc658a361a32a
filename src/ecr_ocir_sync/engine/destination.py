"""A destination of a copy and its bookkeeping while the copy runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from ecr_ocir_sync.engine.result import DestinationResult
from ecr_ocir_sync.engine.tee import BlobSink
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient

__all__ = ["Destination", "DestinationState"]


@dataclass(frozen=True, slots=True)
class Destination:
    """Push to ``reference`` (its tag; the source's tag when it has none) via ``client``."""

    client: RegistryClient
    reference: ImageReference

    @property
    def name(self) -> str:
        return str(self.reference)


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
        return BlobSink(dest.client, dest.reference.repository, dest.name)

    def fail(self, error: SyncError) -> None:
        self.result.fail(error, retryable=error.retryable)
