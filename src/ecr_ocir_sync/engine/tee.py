"""One read from the source, streamed to every destination at once.

Each destination gets a bounded queue of chunks feeding its PATCH body.  The
reader puts every chunk into every live queue, so the slowest destination
sets the pace and memory stays at ``depth`` chunks per destination whatever
the blob's size.  A destination that fails is dropped without stopping the
others.  The bytes are hashed as they pass; if size or digest turn out wrong
at EOF every PATCH is aborted, so no upload is committed anywhere.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from ecr_ocir_sync.errors import SyncError, UnavailableError
from ecr_ocir_sync.oci.digest import DigestVerifier
from ecr_ocir_sync.oci.manifest import Descriptor
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.transport import iter_body

__all__ = ["BlobSink", "tee_blob"]

_END = object()


@dataclass(frozen=True, slots=True)
class BlobSink:
    """Where a blob goes: a registry client, a repository, a name for messages and the
    destination's key for progress events."""

    client: RegistryClient
    repository: str
    name: str
    key: str


class _Channel:
    """A bounded chunk queue between the reader and one destination's upload."""

    def __init__(self, depth: int, on_sent: Callable[[int], None]) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue(depth)
        self._on_sent = on_sent
        self.dead = False

    async def put(self, item: object) -> None:
        if not self.dead:
            await self._queue.put(item)

    def consumer_finished(self, _task: object) -> None:
        """The upload ended (or failed): unblock a reader waiting on a full queue."""
        self.dead = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            self._on_sent(len(item))
            yield item


def _as_sync_error(error: BaseException, where: str) -> SyncError:
    if isinstance(error, SyncError):
        return error
    return UnavailableError(f"{where}: {type(error).__name__}: {error}")


async def tee_blob(
    source: RegistryClient,
    source_repository: str,
    blob: Descriptor,
    sinks: Sequence[BlobSink],
    *,
    on_read: Callable[[int], None],
    on_sent: Callable[[BlobSink, int], None],
    depth: int = 16,
) -> list[SyncError | None]:
    """Copy ``blob`` to every sink; returns each sink's error, or None on success."""
    errors: list[SyncError | None] = [None] * len(sinks)
    starts = await asyncio.gather(
        *(sink.client.start_upload(sink.repository) for sink in sinks), return_exceptions=True
    )
    uploads: dict[int, tuple[str, _Channel, asyncio.Task[None]]] = {}
    for index, (sink, started) in enumerate(zip(sinks, starts, strict=True)):
        if isinstance(started, BaseException):
            errors[index] = _as_sync_error(started, f"starting upload to {sink.name}")
            continue
        channel = _Channel(depth, functools.partial(on_sent, sink))
        task = asyncio.create_task(
            sink.client.upload_blob(
                sink.repository, started, blob.digest, blob.size, channel.chunks()
            )
        )
        task.add_done_callback(channel.consumer_finished)
        uploads[index] = (started, channel, task)
    if not uploads:
        return errors

    try:
        source_error = await _pump(source, source_repository, blob, uploads, on_read)
    except BaseException:
        # Cancelled: stop every upload; none of them was committed.
        for _location, _channel, task in uploads.values():
            task.cancel()
        await asyncio.gather(*(task for _, _, task in uploads.values()), return_exceptions=True)
        raise
    for _location, channel, _task in uploads.values():
        await channel.put(source_error if source_error is not None else _END)
    outcomes = await asyncio.gather(
        *(task for _, _, task in uploads.values()), return_exceptions=True
    )
    for (index, (location, _channel, _task)), outcome in zip(
        uploads.items(), outcomes, strict=True
    ):
        sink = sinks[index]
        if source_error is not None:
            errors[index] = source_error
        elif isinstance(outcome, BaseException):
            errors[index] = _as_sync_error(outcome, f"writing blob {blob.digest} to {sink.name}")
        if errors[index] is not None:
            await sink.client.cancel_upload(sink.repository, location)
    return errors


async def _pump(
    source: RegistryClient,
    repository: str,
    blob: Descriptor,
    uploads: dict[int, tuple[str, _Channel, asyncio.Task[None]]],
    on_read: Callable[[int], None],
) -> SyncError | None:
    """Read the blob once into every live channel; the error that stopped it, if any."""
    channels = [channel for _, channel, _ in uploads.values()]
    verifier = DigestVerifier(blob.digest, blob.size, f"{source.host}/{repository}")
    where = f"reading blob {blob.digest} from {source.host}/{repository}"
    try:
        async with source.open_blob(repository, blob.digest) as response:
            async for chunk in iter_body(response, where):
                verifier.update(chunk)
                on_read(len(chunk))
                for channel in channels:
                    await channel.put(chunk)
                if all(channel.dead for channel in channels):
                    return None  # every destination failed; each task holds its reason
        verifier.verify()
    except SyncError as error:
        return error
    return None
