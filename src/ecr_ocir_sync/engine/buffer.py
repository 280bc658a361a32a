"""One blob's bytes between the source read and every destination's upload.

The source read appends; each destination reads from any offset at its own
pace.  The newest ``window`` bytes stay in memory for destinations keeping
up.  With a spool file every byte is also written to disk, so a destination
that falls behind or starts over reads from the file and the source never
waits.  Without one (lockstep) memory is the only copy: the source waits
until every reader has taken a chunk before it drops it, so the slowest
destination sets the pace, and a reader can never go back.

A reader's last chunk is handed over only once the source read has verified
size and digest, so no upload can be committed with bytes that did not check.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ecr_ocir_sync.engine.watchdog import Watch
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.digest import DigestVerifier

__all__ = ["BlobBuffer", "NotRetainedError"]

_FILE_READ = 1024 * 1024
_REHASH_READ = 8 * 1024 * 1024


class NotRetainedError(SyncError):
    """Bytes asked for are no longer held (lockstep): only a new source read has them."""

    retryable = True


class BlobBuffer:
    """Appended once by the source read, read by any number of destinations."""

    def __init__(
        self, size: int, window: int, spool_path: Path | None, *, keep_file: bool = False
    ) -> None:
        self.size = size
        self.received = 0
        self.complete = False  # every byte arrived and verified
        self.error: SyncError | None = None
        self._window = window
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._held = 0
        self._changed = asyncio.Condition()
        self._positions: dict[object, int] = {}  # lockstep: what each reader has taken
        # keep_file: an earlier attempt's bytes, re-hashed (rehash) before any is used.
        flags = os.O_RDWR | os.O_CREAT | (0 if keep_file else os.O_TRUNC)
        self._fd = os.open(spool_path, flags, 0o600) if spool_path is not None else None

    @property
    def spooled(self) -> bool:
        return self._fd is not None

    # -- the source side ----------------------------------------------------

    def rehash(self, count: int, verifier: DigestVerifier) -> bool:
        """Feed the spool file's first ``count`` bytes to ``verifier`` (blocking: run it
        in a thread); False when the file is shorter than that."""
        assert self._fd is not None
        offset = 0
        while offset < count:
            data = os.pread(self._fd, min(_REHASH_READ, count - offset), offset)
            if not data:
                return False
            verifier.update(data)
            offset += len(data)
        return True

    async def adopt(self, count: int) -> None:
        """The file's first ``count`` bytes are verified: readers may take them, the
        source read continues after them.  0: the file is started over."""
        assert self._fd is not None
        assert self.received == 0
        os.ftruncate(self._fd, count)
        async with self._changed:
            self.received = count
            self._changed.notify_all()

    async def append(self, chunk: bytes, watch: Watch) -> None:
        """Add the next bytes; in lockstep, first wait for room in the window."""
        if self._fd is not None:
            await asyncio.to_thread(_write_all, self._fd, chunk, self.received)
        async with self._changed:
            if self._fd is None:
                with watch.waiting():  # the slow destination's own watch judges it
                    await self._changed.wait_for(lambda: self._room_for(len(chunk)))
            self._chunks.append((self.received, chunk))
            self._held += len(chunk)
            self.received += len(chunk)
            if self._fd is not None:
                while self._held > self._window and len(self._chunks) > 1:
                    self._held -= len(self._chunks.popleft()[1])
            self._changed.notify_all()

    def _room_for(self, count: int) -> bool:
        low = min(self._positions.values(), default=self.received)
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= low:
            self._held -= len(self._chunks.popleft()[1])
        return self._held == 0 or self._held + count <= self._window

    async def finish(self, error: SyncError | None) -> None:
        """The source read ended: verified (None) or failed for good."""
        async with self._changed:
            if error is None:
                self.complete = True
                if self._fd is not None:
                    # Every byte is on the spool: the window's memory is not kept for
                    # regions that may take long to read the rest (they read the file).
                    self._chunks.clear()
                    self._held = 0
            else:
                self.error = error
            self._changed.notify_all()

    # -- the destination side -----------------------------------------------

    def expect(self, reader: object) -> None:
        """Lockstep: keep bytes for ``reader`` from byte 0 until it takes them or leaves."""
        if self._fd is None:
            self._positions[reader] = 0

    async def leave(self, reader: object) -> None:
        """``reader`` needs nothing more; the source need not wait for it."""
        async with self._changed:
            self._positions.pop(reader, None)
            self._changed.notify_all()

    async def read(
        self, start: int, end: int, watch: Watch, reader: object
    ) -> AsyncIterator[bytes]:
        """Bytes ``start`` up to (not including) ``end``, as they become available."""
        offset = start
        while offset < end:
            piece = await self._next(offset, end, watch)
            yield piece
            offset += len(piece)
            watch.touch()
            if reader in self._positions:
                async with self._changed:
                    self._positions[reader] = offset
                    self._changed.notify_all()
        if end == self.size:
            await self._wait(lambda: self.complete, watch)

    async def _wait(self, ready: Callable[[], bool], watch: Watch) -> None:
        async with self._changed:
            with watch.waiting():
                await self._changed.wait_for(lambda: ready() or self.error is not None)
            if self.error is not None:
                raise self.error

    async def _next(self, offset: int, end: int, watch: Watch) -> bytes:
        if self.received <= offset:
            await self._wait(lambda: self.received > offset, watch)
        for chunk_offset, chunk in reversed(self._chunks):
            if chunk_offset <= offset:
                if offset < chunk_offset + len(chunk):
                    return chunk[offset - chunk_offset : end - chunk_offset]
                break
        if self._fd is None:
            raise NotRetainedError(f"byte {offset} of the blob is no longer held (lockstep)")
        count = min(end, self.received, offset + _FILE_READ) - offset
        return await asyncio.to_thread(os.pread, self._fd, count, offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
