"""What the process knows about blobs at destinations: where they live, what is moving.

Shared by every copy a process runs.  A blob known in one repository of a
registry can be mounted into another instead of being sent again, and when
two copies need the same blob at the same registry at the same time, the
second waits for the first transfer rather than starting its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ecr_ocir_sync.oci.digest import Digest

__all__ = ["BlobLocations", "InFlight"]


@dataclass(frozen=True, slots=True)
class InFlight:
    """A transfer of a blob to ``repository`` already under way; resolves to its success."""

    repository: str
    done: asyncio.Future[bool]


@dataclass(slots=True)
class BlobLocations:
    _known: dict[tuple[str, Digest], str] = field(default_factory=dict)
    _moving: dict[tuple[str, Digest], InFlight] = field(default_factory=dict)

    def remember(self, host: str, digest: Digest, repository: str) -> None:
        self._known[(host, digest)] = repository

    def find(self, host: str, digest: Digest, exclude: str) -> str | None:
        """A repository of ``host`` holding ``digest``, other than ``exclude``."""
        repository = self._known.get((host, digest))
        return repository if repository != exclude else None

    def claim(self, host: str, digest: Digest, repository: str) -> InFlight | None:
        """Take the transfer of ``digest`` to ``host``, or get the one already under way."""
        key = (host, digest)
        moving = self._moving.get(key)
        if moving is not None:
            return moving
        self._moving[key] = InFlight(repository, asyncio.get_running_loop().create_future())
        return None

    def release(self, host: str, digest: Digest, *, ok: bool) -> None:
        """End a claimed transfer; whoever waits on it learns whether it succeeded."""
        moving = self._moving.pop((host, digest), None)
        if moving is not None and not moving.done.done():
            moving.done.set_result(ok)
