"""Reading one blob from the source into a BlobBuffer, resuming where a read drops.

A read that fails midway continues from the byte reached: the blob URL is
requested again (so ECR issues a fresh pre-signed redirect) with a closed
``Range: bytes=N-M``, and only a 206 with exactly that ``Content-Range`` is
accepted.  The digest check runs over the whole stream, across resumes.
Consecutive failures without progress are bounded by the retry policy;
a read that moves no byte for the stall limit is cancelled and resumed.

With a journal (a resumable spool file) the read records a checkpoint every
``checkpoint_bytes``, and, when an earlier attempt left bytes, first
re-hashes them against its last checkpoint: if they match, the read starts
after them; if not, the file is started over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ecr_ocir_sync.engine.buffer import BlobBuffer
from ecr_ocir_sync.engine.spool_journal import SpoolJournal
from ecr_ocir_sync.engine.watchdog import Watch, watched
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.digest import DigestVerifier
from ecr_ocir_sync.oci.manifest import Descriptor
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.retry import RetryPolicy
from ecr_ocir_sync.registry.transport import iter_body

__all__ = ["SourceRead"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SourceRead:
    """The one read of ``blob`` from ``source`` feeding ``buffer``."""

    source: RegistryClient
    repository: str
    blob: Descriptor
    buffer: BlobBuffer
    retry: RetryPolicy
    stall_seconds: float
    on_read: Callable[[int], None]
    on_resume: Callable[[int, SyncError, float], None]
    take_slot: bool = True  # False when the caller already holds the source's stream slot
    journal: SpoolJournal | None = None  # checkpoints of a resumable spool file
    checkpoint_bytes: int = 8 * 1024 * 1024  # between two checkpoints
    resume: bool = False  # the spool file holds an earlier attempt's bytes
    on_reused: Callable[[int], None] = lambda _count: None  # earlier bytes re-hashed and used
    # Set once the read holds its stream slot (kept to the end, across resumes).
    reading: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def where(self) -> str:
        return f"reading blob {self.blob.digest} from {self.source.host}/{self.repository}"

    async def run(self) -> None:
        """Fill the buffer; end it verified, or with the error that stopped the read."""
        verifier = await self._start()  # before the slot: re-hashing needs no connection
        slot = self.source.streams if self.take_slot else contextlib.nullcontext()
        async with slot:
            self.reading.set()
            await self._run(verifier)

    async def _run(self, verifier: DigestVerifier) -> None:
        failures = 0
        while True:
            start = self.buffer.received
            watch = Watch(self.stall_seconds)
            try:
                await watched(self._read_from(start, verifier, watch), watch, self.where)
                verifier.verify()
            except SyncError as error:
                failures = 1 if self.buffer.received > start else failures + 1
                if not error.retryable or failures >= self.retry.attempts:
                    await self.buffer.finish(error)
                    return
                delay = self.retry.delay(failures, error)
                self.on_resume(self.buffer.received, error, delay)
                await self.retry.sleep(delay)
                continue
            if self.journal is not None and self.journal.verified < self.blob.size:
                await self.buffer.flush()  # a checkpoint names bytes on the file only
                self.journal.checkpoint(self.blob.size, verifier.prefix_hexdigest())
            await self.buffer.finish(None)
            return

    def _verifier(self) -> DigestVerifier:
        return DigestVerifier(
            self.blob.digest, self.blob.size, f"{self.source.host}/{self.repository}"
        )

    async def _start(self) -> DigestVerifier:
        """A verifier holding what an earlier attempt left and still checks, if anything."""
        verifier = self._verifier()
        journal = self.journal
        if not (self.resume and journal is not None and journal.verified > 0):
            return verifier
        complete = await asyncio.to_thread(self.buffer.rehash, journal.verified, verifier)
        if complete and verifier.prefix_hexdigest() == journal.prefix_sha256:
            await self.buffer.adopt(journal.verified)
            self.on_reused(journal.verified)
            return verifier
        log.warning(
            "spool file of blob %s no longer matches its checkpoint (%d bytes); "
            "reading the blob from the source again",
            self.blob.digest,
            journal.verified,
        )
        journal.forget_progress()
        await self.buffer.adopt(0)
        return self._verifier()

    async def _checkpoint(self, verifier: DigestVerifier) -> None:
        journal = self.journal
        if journal is not None and verifier.received - journal.verified >= self.checkpoint_bytes:
            await self.buffer.flush()  # the file gets appended bytes in batches
            journal.checkpoint(verifier.received, verifier.prefix_hexdigest())

    async def _read_from(self, start: int, verifier: DigestVerifier, watch: Watch) -> None:
        size = self.blob.size
        if start >= size:
            return  # every byte arrived; the EOF checks follow
        ranged = {"start": start, "end": size - 1} if start else {}
        async with self.source.open_blob(self.repository, self.blob.digest, **ranged) as response:
            async for chunk in iter_body(response, self.where):
                verifier.update(chunk)
                watch.touch()
                await self.buffer.append(chunk, watch)
                self.on_read(len(chunk))
                await self._checkpoint(verifier)
