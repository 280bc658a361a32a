"""One read from the source, delivered to every destination at its own pace.

With room in the spool (the usual case) the source read and each delivery
run independently: the read never waits for a destination, a destination
that falls behind or retries reads the spool file, and each takes its own
stream slot at its own registry when it starts.  Without room, the blob goes
in lockstep: bounded memory only, the slowest destination sets the pace, and
every stream slot the transfer needs is taken before the source is opened.

Why this cannot deadlock: a spooled read takes its slot once and keeps it
to the end, waiting on nothing else; a spooled delivery takes its slot only
once that read holds one, so it waits only for a read that always moves on;
a lockstep transfer takes all its slots before it starts, in host-name order
(:func:`_take_all`), so lockstep transfers cannot wait on each other in a
circle.  What stalls anyway (a silent peer) is cancelled by the no-progress
watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ecr_ocir_sync.engine.buffer import BlobBuffer
from ecr_ocir_sync.engine.source_read import SourceRead
from ecr_ocir_sync.engine.spool import Spool, SpoolFile
from ecr_ocir_sync.engine.upload import BlobSink, Delivery
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.manifest import Descriptor
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.retry import RetryPolicy

__all__ = ["FanOut", "FanOutResult", "TransferSettings"]


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """How blobs move; the defaults suit a pod with a few hundred MiB of memory."""

    retry: RetryPolicy
    stall_seconds: float = 300.0
    upload_chunk_bytes: int = 0  # 0: one streamed PATCH per blob
    window_bytes: int = 4 * 1024 * 1024  # newest bytes of a blob kept in memory
    # Bytes between two checkpoints of a spool file's journal: at most what a crash
    # costs to read from the source again (a checkpoint is one small file write).
    checkpoint_bytes: int = 8 * 1024 * 1024
    # With a spool file at most this much of window_bytes: a reader further behind
    # reads the file, so memory only serves readers keeping up (peak RSS of a 1 GiB
    # copy to 2 regions over loopback: 98 -> 86 MiB).
    spooled_window_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FanOutResult:
    """Each sink's final error (None: it has the blob), and whether the spool was used
    (then transient failures were already retried from it)."""

    errors: list[SyncError | None]
    spooled: bool


@dataclass(slots=True)
class FanOut:
    """Moves blobs of one source repository; shared by every blob of one copy."""

    source: RegistryClient
    repository: str
    settings: TransferSettings
    spool: Spool | None
    on_read: Callable[[int], None]
    on_sent: Callable[[BlobSink, int], None]
    on_retry: Callable[[BlobSink | None, Descriptor, SyncError, float], None]
    on_fallback: Callable[[Descriptor], None]
    on_delivered: Callable[[Descriptor, BlobSink], None]  # a sink has it, as it happens
    on_reused: Callable[[Descriptor, int], None] = lambda _blob, _count: None  # from the spool
    on_upload_resumed: Callable[[BlobSink, Descriptor, int], None] = lambda _sink, _blob, _offset: (
        None
    )

    async def send(
        self,
        blob: Descriptor,
        sinks: Sequence[BlobSink],
        on_read: Callable[[], None] | None = None,
    ) -> FanOutResult:
        """Read ``blob`` once and deliver it to every sink. ``on_read`` is called as soon
        as the source read has ended verified with every byte on the spool: from then on
        the deliveries need nothing from the source (nor the caller's blob slot)."""
        reservation = self.spool.reserve(blob.digest, blob.size) if self.spool else None
        if self.spool is not None and reservation is None:
            self.on_fallback(blob)
        window = self.settings.window_bytes
        if reservation is not None:
            window = min(window, self.settings.spooled_window_bytes)
        buffer = BlobBuffer(
            blob.size,
            window,
            reservation.path if reservation else None,
            keep_file=reservation is not None and reservation.resume,
        )
        finished = False  # every sink has the blob, or the source can never give it
        try:
            async with contextlib.AsyncExitStack() as slots:
                if not buffer.spooled:
                    await _take_all(slots, [self.source, *(sink.client for sink in sinks)])
                errors = await self._run(blob, sinks, buffer, on_read, reservation)
                source_failed = buffer.error is not None and not buffer.error.retryable
                finished = source_failed or all(error is None for error in errors)
                return FanOutResult(errors, buffer.spooled)
        finally:
            buffer.close()
            if reservation is not None and self.spool is not None:
                # Unfinished (a region failed, the job was cancelled): the next attempt
                # continues from the file instead of reading the source again.
                self.spool.release(reservation, keep=not finished)

    async def _run(
        self,
        blob: Descriptor,
        sinks: Sequence[BlobSink],
        buffer: BlobBuffer,
        on_read: Callable[[], None] | None,
        reservation: SpoolFile | None,
    ) -> list[SyncError | None]:
        settings = self.settings
        journal = reservation.journal if reservation is not None else None
        read = SourceRead(
            self.source,
            self.repository,
            blob,
            buffer,
            settings.retry,
            settings.stall_seconds,
            self.on_read,
            lambda _offset, error, delay: self.on_retry(None, blob, error, delay),
            take_slot=buffer.spooled,
            journal=journal,
            checkpoint_bytes=settings.checkpoint_bytes,
            resume=reservation is not None and reservation.resume,
            on_reused=lambda count: self.on_reused(blob, count),
        )
        deliveries = [
            Delivery(
                sink,
                blob,
                buffer,
                settings.retry,
                settings.stall_seconds,
                settings.upload_chunk_bytes,
                on_sent=lambda count, sink=sink: self.on_sent(sink, count),  # type: ignore[misc]
                on_retry=lambda error, delay, sink=sink: self.on_retry(sink, blob, error, delay),  # type: ignore[misc]
                take_slot=buffer.spooled,
                source_ready=read.reading,
                journal=journal,
                on_resumed=lambda offset, sink=sink: self.on_upload_resumed(sink, blob, offset),  # type: ignore[misc]
            )
            for sink in sinks
        ]
        for delivery in deliveries:
            buffer.expect(delivery)
        reader = asyncio.create_task(_read_then(read, buffer, on_read))
        tasks = [asyncio.create_task(self._deliver(blob, delivery)) for delivery in deliveries]
        try:
            # When every delivery has ended, nobody needs the rest of the source.
            errors = await asyncio.gather(*tasks)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            return list(errors)
        finally:
            for task in (reader, *tasks):
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def _deliver(self, blob: Descriptor, delivery: Delivery) -> SyncError | None:
        error = await delivery.run()
        if error is None:
            self.on_delivered(blob, delivery.sink)
        return error


async def _read_then(
    read: SourceRead, buffer: BlobBuffer, on_read: Callable[[], None] | None
) -> None:
    await read.run()
    if on_read is not None and buffer.spooled and buffer.complete:
        on_read()


async def _take_all(stack: contextlib.AsyncExitStack, clients: Sequence[RegistryClient]) -> None:
    """Every client's stream slot (one per host), always in host-name order, so two
    lockstep transfers can never each hold a slot the other waits for."""
    for _host, client in sorted({client.host: client for client in clients}.items()):
        await stack.enter_async_context(client.streams)
