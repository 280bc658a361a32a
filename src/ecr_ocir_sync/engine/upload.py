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

With a journal (a resumable spool file) the session's URL and confirmed
offset are recorded after every request that moves them, so an attempt after
a restart asks the registry where that session stands (step 1) before
opening a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ecr_ocir_sync.engine.buffer import BlobBuffer
from ecr_ocir_sync.engine.spool_journal import SpoolJournal
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
    journal: SpoolJournal | None = None  # where upload sessions are recorded for a restart
    on_resumed: Callable[[int], None] = lambda _offset: None  # an earlier session continued

    @property
    def key(self) -> str:
        """The destination's name in the journal: registry host and repository."""
        return f"{self.sink.client.host}/{self.sink.repository}"

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
        session = await self._stored_session()
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
            self._record(session)
        if session.offset == 0 and (self.chunk_bytes <= 0 or size == 0):
            body = self._body(0, size, watch)
            session.location = await client.patch_upload(
                repository, session.location, digest, size, body
            )
            session.offset = size
            self._record(session)
        step = self.chunk_bytes if self.chunk_bytes > 0 else size
        while session.offset < size:
            count = min(step, size - session.offset)
            body = self._body(session.offset, session.offset + count, watch)
            session.location = await client.patch_upload(
                repository, session.location, digest, count, body, offset=session.offset
            )
            session.offset += count
            self._record(session)
        await client.commit_upload(repository, session.location, digest)
        if self.journal is not None:
            self.journal.forget_upload(self.key)

    async def _body(self, start: int, end: int, watch: Watch) -> AsyncIterator[bytes]:
        async for piece in self.buffer.read(start, end, watch, self):
            yield piece
            self.on_sent(len(piece))

    def _record(self, session: _Session) -> None:
        if self.journal is not None and session.location is not None:
            self.journal.record_upload(self.key, session.location, session.offset)

    async def _stored_session(self) -> _Session:
        """The session an earlier attempt recorded, where the registry says it stands;
        else none (a new one is opened)."""
        stored = self.journal.stored_upload(self.key) if self.journal is not None else None
        if stored is None:
            return _Session()
        session = await self._where_it_stands(_Session(stored.location, stored.offset))
        if session.location is not None:
            self.on_resumed(session.offset)
        return session

    async def _where_it_stands(self, session: _Session) -> _Session:
        """Continue where the registry says the upload stands, else a new session."""
        if session.location is None:
            return _Session()
        status = await self.sink.client.upload_status(self.sink.repository, session.location)
        if status is None or status.offset > self.blob.size:
            await self._abandon(session)
            return _Session()
        session = _Session(status.location, status.offset)
        self._record(session)
        return session

    async def _abandon(self, session: _Session) -> None:
        if self.journal is not None:
            self.journal.forget_upload(self.key)
        if session.location is not None:
            await self.sink.client.cancel_upload(self.sink.repository, session.location)


def _refused(error: SyncError) -> bool:
    return isinstance(error, RegistryError) and getattr(error, "status", None) in _REFUSED
