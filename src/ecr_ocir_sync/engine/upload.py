"""Uploading one blob to one destination from a BlobBuffer, at that destination's pace.

Two ways to send (regclient's strategy): one streamed PATCH, as docker push
does (the default), or ``Content-Range`` chunks of ``upload_chunk_bytes``.
If the registry rejects the one it is offered (400, 405, 413, 416), the other
is tried.  After a transient failure, with the bytes on the spool:

1. the registry is asked where the upload stands (GET on its URL, ``Range``);
   if it can say, the upload continues from there with ``Content-Range``;
2. else a new upload session starts from byte 0 of the spool.

Neither reads the source again.  In lockstep (no spool) a failure ends this
delivery: the caller re-reads the source for it in a new round.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ecr_ocir_sync.engine.buffer import BlobBuffer
from ecr_ocir_sync.engine.watchdog import Watch, watched
from ecr_ocir_sync.errors import RegistryError, SyncError
from ecr_ocir_sync.oci.manifest import Descriptor
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.retry import RetryPolicy

__all__ = ["FALLBACK_CHUNK_BYTES", "BlobSink", "Delivery"]

# Chunk size when a registry refuses the single streamed PATCH and none is configured.
FALLBACK_CHUNK_BYTES = 64 * 1024 * 1024
# Answers meaning "not this way of uploading" rather than "not now".
_REFUSED = frozenset({400, 405, 413, 416})


@dataclass(frozen=True, slots=True)
class BlobSink:
    """Where a blob goes: a registry client, a repository, a name for messages and the
    destination's key for progress events."""

    client: RegistryClient
    repository: str
    name: str
    key: str


@dataclass(slots=True)
class _Session:
    """An upload session and the bytes the registry has confirmed in it."""

    location: str | None = None
    offset: int = 0


@dataclass(slots=True, eq=False)  # identity: a key of the buffer's readers
class Delivery:
    """Everything that happens to get ``blob`` from ``buffer`` into ``sink``."""

    sink: BlobSink
    blob: Descriptor
    buffer: BlobBuffer
    retry: RetryPolicy
    stall_seconds: float
    chunk_bytes: int
    on_sent: Callable[[int], None]
    on_retry: Callable[[SyncError, float], None]
    take_slot: bool = True  # False in lockstep: the caller holds every stream slot
    source_ready: asyncio.Event | None = None  # a slot is taken only once the read has one

    @property
    def where(self) -> str:
        return f"writing blob {self.blob.digest} to {self.sink.name}"

    async def run(self) -> SyncError | None:
        """None once the registry committed the blob, else the error that ended it."""
        try:
            return await self._run()
        finally:
            await self.buffer.leave(self)

    async def _run(self) -> SyncError | None:
        session = _Session()
        attempt = 1
        switched = False
        while True:
            watch = Watch(self.stall_seconds)
            if self.source_ready is not None:
                await self.source_ready.wait()
            try:
                slot = self.sink.client.streams if self.take_slot else contextlib.nullcontext()
                async with slot:
                    watch.touch()
                    await watched(self._send(session, watch), watch, self.where)
            except SyncError as error:
                if self.buffer.error is not None:
                    await self._abandon(session)
                    return self.buffer.error  # the source failed: nothing to retry here
                if _refused(error) and not switched:
                    switched = True  # the other way of uploading, in a new session
                    self.chunk_bytes = 0 if self.chunk_bytes > 0 else FALLBACK_CHUNK_BYTES
                    await self._abandon(session)
                    session = _Session()
                    continue
                if not (error.retryable and self.buffer.spooled) or attempt >= self.retry.attempts:
                    await self._abandon(session)
                    return error
                delay = self.retry.delay(attempt, error)
                self.on_retry(error, delay)
                await self.retry.sleep(delay)
                session = await self._where_it_stands(session)
                attempt += 1
            else:
                return None

    async def _send(self, session: _Session, watch: Watch) -> None:
        client, repository, size = self.sink.client, self.sink.repository, self.blob.size
        digest = self.blob.digest
        if session.location is None:
            session.location = await client.start_upload(repository)
            session.offset = 0
        if session.offset == 0 and (self.chunk_bytes <= 0 or size == 0):
            body = self._body(0, size, watch)
            session.location = await client.patch_upload(
                repository, session.location, digest, size, body
            )
            session.offset = size
        step = self.chunk_bytes if self.chunk_bytes > 0 else size
        while session.offset < size:
            count = min(step, size - session.offset)
            body = self._body(session.offset, session.offset + count, watch)
            session.location = await client.patch_upload(
                repository, session.location, digest, count, body, offset=session.offset
            )
            session.offset += count
        await client.commit_upload(repository, session.location, digest)

    async def _body(self, start: int, end: int, watch: Watch) -> AsyncIterator[bytes]:
        async for piece in self.buffer.read(start, end, watch, self):
            yield piece
            self.on_sent(len(piece))

    async def _where_it_stands(self, session: _Session) -> _Session:
        """Continue where the registry says the upload stands, else a new session."""
        if session.location is None:
            return _Session()
        status = await self.sink.client.upload_status(self.sink.repository, session.location)
        if status is None or status.offset > self.blob.size:
            await self._abandon(session)
            return _Session()
        return _Session(status.location, status.offset)

    async def _abandon(self, session: _Session) -> None:
        if session.location is not None:
            await self.sink.client.cancel_upload(self.sink.repository, session.location)


def _refused(error: SyncError) -> bool:
    return isinstance(error, RegistryError) and getattr(error, "status", None) in _REFUSED
