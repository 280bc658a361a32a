"""The spool: blob bytes kept on the pod's volume while a destination may need them.

Every blob copied with a spool is written to one file under the spool
directory as it is read from the source, so a region that falls behind, or
retries, reads it from disk instead of from the source again.  The spool has
a byte budget; a blob that does not fit at that moment is copied in lockstep
instead (every region at the pace of the slowest, a retry re-reads the source).
Files are removed as soon as no destination needs them, and at start-up.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ecr_ocir_sync.oci.digest import Digest

__all__ = ["Spool", "SpoolFile", "default_budget"]

log = logging.getLogger(__name__)

# Half of what is free when the process starts: room for the job store, logs and
# a neighbour on the same volume, and for several blobs in flight at once.
_DEFAULT_SHARE = 0.5


def default_budget(directory: Path) -> int:
    """The budget when SYNC_SPOOL_MAX_BYTES is not set: a share of the free space."""
    return int(shutil.disk_usage(directory).free * _DEFAULT_SHARE)


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """A reservation of ``size`` bytes and the path the blob is written to."""

    path: Path
    size: int


@dataclass(slots=True)
class Spool:
    """A directory and a byte budget shared by every copy of one process."""

    directory: Path
    budget: int
    used: int = 0
    fallbacks: int = 0  # blobs that did not fit and went lockstep
    _open: set[Path] = field(default_factory=set)

    @classmethod
    def open(cls, directory: Path, budget: int | None = None) -> Spool:
        """Create the directory, remove what a previous process left there."""
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():
            if leftover.is_file() and leftover.suffix == ".spool":
                leftover.unlink(missing_ok=True)
        if budget is None:
            budget = default_budget(directory)
        return cls(directory, budget)

    def reserve(self, digest: Digest, size: int) -> SpoolFile | None:
        """Room for ``size`` bytes, or None when the budget cannot hold them now."""
        if self.used + size > self.budget:
            self.fallbacks += 1
            log.warning(
                "spool full: blob %s (%d bytes) does not fit in SYNC_SPOOL_MAX_BYTES=%d "
                "(%d in use); copying it in lockstep, a retry will read the source again",
                digest,
                size,
                self.budget,
                self.used,
            )
            return None
        self.used += size
        name = f"{digest.removeprefix('sha256:')[:16]}-{uuid.uuid4().hex[:8]}.spool"
        path = self.directory / name
        self._open.add(path)
        return SpoolFile(path, size)

    def release(self, reservation: SpoolFile) -> None:
        """The blob is no longer needed: delete its file and free its bytes."""
        if reservation.path in self._open:
            self._open.discard(reservation.path)
            self.used -= reservation.size
        reservation.path.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        """The spool files present on disk (tests and benchmarks check it empties)."""
        return sorted(self.directory.glob("*.spool"))
