"""The spool: blob bytes kept on the pod's volume while a destination may need them.

Every blob copied with a spool is written to one file under the spool
directory as it is read from the source, so a region that falls behind, or
retries, reads it from disk instead of from the source again.  The spool has
a byte budget; a blob that does not fit at that moment is copied in lockstep
instead (every region at the pace of the slowest, a retry re-reads the source).

A blob's file is named by its digest, with a journal beside it
(:mod:`engine.spool_journal`).  Once every destination has the blob both are
deleted.  When a copy ends without that (a region down, the process stopped
or killed) they stay, so the next attempt, in this process or the next one,
continues from them: the journal's verified bytes are re-hashed before use.
What stays is counted against the budget and removed when its room is needed,
after :data:`KEEP_SECONDS`, or at start-up when it has no usable journal.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ecr_ocir_sync.engine.spool_journal import SpoolJournal
from ecr_ocir_sync.oci.digest import Digest

__all__ = ["KEEP_SECONDS", "Spool", "SpoolFile", "default_budget"]

log = logging.getLogger(__name__)

# Half of what is free when the process starts: room for the job store, logs and
# a neighbour on the same volume, and for several blobs in flight at once.
_DEFAULT_SHARE = 0.5
# How long an unfinished blob's file waits for its job to come back: longer than a
# job's retries take, short enough that a job given up on frees its room within a day.
KEEP_SECONDS = 24 * 3600.0


def default_budget(directory: Path) -> int:
    """The budget when SYNC_SPOOL_MAX_BYTES is not set: a share of the free space."""
    return int(shutil.disk_usage(directory).free * _DEFAULT_SHARE)


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """A reservation of ``size`` bytes and the path the blob is written to.

    ``journal`` is None for a file no later attempt can use (a second copy of
    a blob this process is already spooling); ``resume`` is True when the file
    was left by an earlier attempt and its journal says what of it to re-hash.
    """

    path: Path
    size: int
    journal: SpoolJournal | None = None
    resume: bool = False


@dataclass(slots=True)
class _Leftover:
    """A file an earlier attempt left: its bytes on disk count against the budget."""

    journal: SpoolJournal
    on_disk: int
    since: float  # monotonic time it became a leftover (or this process found it)


@dataclass(slots=True)
class Spool:
    """A directory and a byte budget shared by every copy of one process."""

    directory: Path
    budget: int
    used: int = 0
    fallbacks: int = 0  # blobs that did not fit and went lockstep
    keep_seconds: float = KEEP_SECONDS
    _open: set[Path] = field(default_factory=set)
    _leftovers: dict[Digest, _Leftover] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: Path, budget: int | None = None) -> Spool:
        """Create the directory; keep what an earlier process left that it can resume
        (a file named by its digest with a usable journal), remove everything else."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if budget is None:
            budget = default_budget(directory)
        spool = cls(directory, budget)
        spool._adopt_leftovers()
        return spool

    def _adopt_leftovers(self) -> None:
        now = time.time()
        kept: set[Path] = set()
        for journal_path in sorted(self.directory.glob("*.json")):
            journal = SpoolJournal.load(journal_path)
            data = journal_path.with_suffix(".spool")
            if (
                journal is None
                or journal_path.stem != journal.digest.removeprefix("sha256:")
                or not data.is_file()
                or now - journal_path.stat().st_mtime > self.keep_seconds
            ):
                continue
            on_disk = data.stat().st_size
            self._leftovers[journal.digest] = _Leftover(journal, on_disk, time.monotonic())
            self.used += on_disk
            kept.update({journal_path, data})
        for leftover in self.directory.iterdir():
            if leftover.is_file() and leftover not in kept:
                leftover.unlink(missing_ok=True)
        if self._leftovers:
            log.info(
                "spool: %d unfinished blob(s), %d bytes, kept from an earlier process to resume",
                len(self._leftovers),
                self.used,
            )

    def reserve(self, digest: Digest, size: int) -> SpoolFile | None:
        """Room for ``size`` bytes, or None when the budget cannot hold them now."""
        self._expire()
        leftover = self._leftovers.pop(digest, None)
        if leftover is not None:
            self.used -= leftover.on_disk
            if leftover.journal.size != size:  # not the blob the journal describes
                self._delete(leftover.journal)
                leftover = None
        path = self.directory / f"{digest.removeprefix('sha256:')}.spool"
        if path in self._open:  # this process spools the blob already: a private file
            private = f"{digest.removeprefix('sha256:')[:16]}-{uuid.uuid4().hex[:8]}.private"
            path = self.directory / private
        self._make_room(size)
        if self.used + size > self.budget:
            if leftover is not None:
                self._leftovers[digest] = leftover
                self.used += leftover.on_disk
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
        self._open.add(path)
        if path.suffix != ".spool":
            return SpoolFile(path, size)
        if leftover is not None:
            return SpoolFile(path, size, leftover.journal, resume=True)
        journal = SpoolJournal(path.with_suffix(".json"), digest, size)
        journal.save()
        return SpoolFile(path, size, journal)

    def release(self, reservation: SpoolFile, *, keep: bool = False) -> None:
        """The copy of this blob ended.  ``keep``: some destination still lacks it, so
        the file stays for the next attempt (when its journal has anything to offer)."""
        if reservation.path in self._open:
            self._open.discard(reservation.path)
            self.used -= reservation.size
        journal = reservation.journal
        if keep and journal is not None and journal.useful and reservation.path.is_file():
            on_disk = reservation.path.stat().st_size
            self._leftovers[journal.digest] = _Leftover(journal, on_disk, time.monotonic())
            self.used += on_disk
            return
        reservation.path.unlink(missing_ok=True)
        if journal is not None:
            journal.remove()

    def _make_room(self, size: int) -> None:
        """Drop leftovers, oldest first, until ``size`` more bytes fit (or none is left)."""
        oldest_first = sorted(self._leftovers, key=lambda d: self._leftovers[d].since)
        for digest in oldest_first:
            if self.used + size <= self.budget:
                return
            log.info("spool: dropping unfinished blob %s to make room", digest)
            self._drop(digest)

    def _expire(self) -> None:
        limit = time.monotonic() - self.keep_seconds
        for digest in [d for d, left in self._leftovers.items() if left.since < limit]:
            log.info("spool: unfinished blob %s waited %.0f s; removed", digest, self.keep_seconds)
            self._drop(digest)

    def _drop(self, digest: Digest) -> None:
        leftover = self._leftovers.pop(digest)
        self.used -= leftover.on_disk
        self._delete(leftover.journal)

    @staticmethod
    def _delete(journal: SpoolJournal) -> None:
        journal.path.with_suffix(".spool").unlink(missing_ok=True)
        journal.remove()

    def files(self) -> list[Path]:
        """The files present on disk (tests and benchmarks check it empties)."""
        return sorted(path for path in self.directory.iterdir() if path.is_file())
