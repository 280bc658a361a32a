"""Getting one blob to the destinations that lack it: mount if possible, else stream.

Streaming is one FanOut: with the spool, transient failures are retried from
it inside the fan-out; in lockstep (no room in the spool) the destinations
that failed transiently get a new round that reads the source again.  A
permanent failure (integrity, auth, not found) ends that destination's copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ecr_ocir_sync.engine.fanout import FanOut, TransferSettings
from ecr_ocir_sync.engine.locations import BlobLocations, InFlight
from ecr_ocir_sync.engine.progress import (
    BlobDone,
    BlobOutcome,
    BytesRead,
    BytesWritten,
    ProgressListener,
    Retrying,
    SourceResumed,
    SpoolFallback,
    SpoolReused,
    UploadResumed,
)
from ecr_ocir_sync.engine.spool import Spool
from ecr_ocir_sync.engine.upload import BlobSink
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.manifest import Descriptor
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.retry import RetryPolicy

__all__ = ["BlobCopier"]


@dataclass(slots=True)
class BlobCopier:
    """Copies blobs from one source repository; shared by every blob of one image."""

    source: RegistryClient
    source_repository: str
    transfer: TransferSettings
    progress: ProgressListener
    locations: BlobLocations
    spool: Spool | None = None
    # Told as soon as one sink holds a streamed blob, before the other sinks finish.
    on_copied: Callable[[BlobSink, Descriptor], None] | None = None

    @property
    def retry(self) -> RetryPolicy:
        return self.transfer.retry

    def _fan_out(self) -> FanOut:
        def on_retry(
            sink: BlobSink | None, blob: Descriptor, error: SyncError, delay: float
        ) -> None:
            if sink is None:
                self.progress(SourceResumed(blob.digest, 0, str(error), delay))
            else:
                self.progress(
                    Retrying(sink.key, blob.digest, str(error), delay, type(error).__name__)
                )

        return FanOut(
            self.source,
            self.source_repository,
            self.transfer,
            self.spool,
            on_read=lambda count: self.progress(BytesRead(count)),
            on_sent=lambda sink, count: self.progress(BytesWritten(sink.key, count)),
            on_retry=on_retry,
            on_fallback=lambda blob: self.progress(SpoolFallback(blob.digest, blob.size)),
            on_delivered=self._copied,
            on_reused=lambda blob, count: self.progress(SpoolReused(blob.digest, count)),
            on_upload_resumed=lambda sink, blob, offset: self.progress(
                UploadResumed(sink.key, blob.digest, offset)
            ),
        )

    def _copied(self, blob: Descriptor, sink: BlobSink) -> None:
        self.locations.remember(sink.client.host, blob.digest, sink.repository)
        self.progress(BlobDone(sink.key, blob.digest, blob.size, BlobOutcome.COPIED))
        if self.on_copied is not None:
            self.on_copied(sink, blob)

    async def copy(
        self,
        blob: Descriptor,
        sinks: Sequence[BlobSink],
        on_read: Callable[[], None] | None = None,
    ) -> dict[BlobSink, SyncError | None]:
        """Put ``blob`` in every sink; each sink's final error, or None when it has it.

        A sink whose registry is already receiving this blob (from another copy
        of this process, or another sink of this one) waits for that transfer,
        then finds the blob there or mounts it, instead of sending it again.
        ``on_read``: see :meth:`FanOut.send`.
        """
        results: dict[BlobSink, SyncError | None] = {}
        owned: list[BlobSink] = []
        followers: list[tuple[BlobSink, InFlight]] = []
        for sink in sinks:
            moving = self.locations.claim(sink.client.host, blob.digest, sink.repository)
            if moving is None:
                owned.append(sink)
            else:
                followers.append((sink, moving))
        try:
            results.update(await self._transfer(blob, owned, on_read))
        finally:
            for sink in owned:
                ok = sink in results and results[sink] is None
                self.locations.release(sink.client.host, blob.digest, ok=ok)
        for sink, moving in followers:
            results[sink] = await self._follow(blob, sink, moving)
        return results

    async def _follow(self, blob: Descriptor, sink: BlobSink, moving: InFlight) -> SyncError | None:
        if await asyncio.shield(moving.done):
            if moving.repository == sink.repository:
                self.progress(BlobDone(sink.key, blob.digest, blob.size, BlobOutcome.SKIPPED))
                return None
            if await self._mount(blob, sink, moving.repository):
                return None
        return (await self.copy(blob, [sink]))[sink]

    async def _transfer(
        self,
        blob: Descriptor,
        sinks: Sequence[BlobSink],
        on_read: Callable[[], None] | None = None,
    ) -> dict[BlobSink, SyncError | None]:
        """Mount where possible, else stream from the source with per-blob retries."""
        results: dict[BlobSink, SyncError | None] = {}
        pending: list[BlobSink] = []
        for sink in sinks:
            if await self._try_mount(blob, sink):
                results[sink] = None
            else:
                pending.append(sink)
        attempt = 1
        fan_out = self._fan_out()
        while pending:
            sent = await fan_out.send(blob, pending, on_read)
            retry: list[tuple[BlobSink, SyncError]] = []
            for sink, error in zip(pending, sent.errors, strict=True):
                if error is None:
                    results[sink] = None  # reported by _copied as it happened
                elif error.retryable and not sent.spooled and attempt < self.retry.attempts:
                    retry.append((sink, error))
                else:
                    results[sink] = error
            if retry:
                delay = max(self.retry.delay(attempt, error) for _, error in retry)
                for sink, error in retry:
                    self.progress(
                        Retrying(sink.key, blob.digest, str(error), delay, type(error).__name__)
                    )
                await self.retry.sleep(delay)
            pending = [sink for sink, _ in retry]
            attempt += 1
        return results

    async def _try_mount(self, blob: Descriptor, sink: BlobSink) -> bool:
        """Mount from a repository of the same registry that holds the blob."""
        host = sink.client.host
        from_repository = self.locations.find(host, blob.digest, exclude=sink.repository)
        if from_repository is None and host == self.source.host:
            from_repository = self.source_repository
        if from_repository is None or from_repository == sink.repository:
            return False
        return await self._mount(blob, sink, from_repository)

    async def _mount(self, blob: Descriptor, sink: BlobSink, from_repository: str) -> bool:
        try:
            mounted = await sink.client.mount_blob(sink.repository, blob.digest, from_repository)
        except SyncError:
            return False  # a refused mount is no failure: the blob is streamed instead
        if mounted:
            self.progress(BlobDone(sink.key, blob.digest, blob.size, BlobOutcome.MOUNTED))
        return mounted
