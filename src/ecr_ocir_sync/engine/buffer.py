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

Per-chunk costs are kept off the byte path: over a real link the source's
reads return tens of KiB each, so the spool is written in batches of
``_WRITE_BATCH`` (one thread hop per batch, not per chunk; a chunk leaves
memory only once it is on the file), and a reader is handed every contiguous
byte it may take at once (up to ``_READ_MAX``) rather than one chunk a
request, so an upload that waited for its socket catches up in one write.
"""

from __future__ import annotations

import asyncio
import itertools
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
_READ_MAX = 1024 * 1024  # bytes handed to a reader at once from memory
_WRITE_BATCH = 256 * 1024  # bytes gathered before one write to the spool file


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
        self._written = 0  # bytes on the spool file; the rest of received is in memory only
        self._unwritten: list[bytes] = []
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
            self.received = self._written = count
            self._changed.notify_all()

    async def append(self, chunk: bytes, watch: Watch) -> None:
        """Add the next bytes; in lockstep, first wait for room in the window."""
        if not chunk:
            return
        async with self._changed:
            if self._fd is None:
                with watch.waiting():  # the slow destination's own watch judges it
                    await self._changed.wait_for(lambda: self._room_for(len(chunk)))
            self._chunks.append((self.received, chunk))
            self._held += len(chunk)
            self.received += len(chunk)
            self._changed.notify_all()
        if self._fd is not None:
            self._unwritten.append(chunk)
            if self.received - self._written >= _WRITE_BATCH:
                await self._flush()

    async def flush(self) -> None:
        """Put every byte appended so far on the spool file (a checkpoint names them)."""
        await self._flush()

    async def _flush(self) -> None:
        """Put the bytes gathered so far on the spool file, then let the window drop
        what is on the file beyond its size."""
        if self._fd is None or not self._unwritten:
            return
        # Taken off the list only once written: a read cancelled meanwhile (the watchdog)
        # and resumed writes the same bytes at the same offset again, never a gap.
        pieces = list(self._unwritten)
        await asyncio.to_thread(_write_all, self._fd, pieces, self._written)
        del self._unwritten[: len(pieces)]
        self._written += sum(len(piece) for piece in pieces)
        while self._held > self._window and len(self._chunks) > 1:
            offset, first = self._chunks[0]
            if offset + len(first) > self._written:
                break
            self._held -= len(self._chunks.popleft()[1])

    def _room_for(self, count: int) -> bool:
        low = min(self._positions.values(), default=self.received)
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= low:
            self._held -= len(self._chunks.popleft()[1])
        return self._held == 0 or self._held + count <= self._window

    async def finish(self, error: SyncError | None) -> None:
        """The source read ended: verified (None) or failed for good."""
        if error is None:
            await self._flush()
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
        held = self._held_from(offset, min(end, offset + _READ_MAX))
        if held is not None:
            return held
        if self._fd is None:
            raise NotRetainedError(f"byte {offset} of the blob is no longer held (lockstep)")
        # Not in memory, so on the file (a chunk leaves memory only once written there).
        count = min(end, self._written, offset + _FILE_READ) - offset
        # The buffer is allocated here, on the event loop's thread: bytes allocated in
        # the worker threads stay in their malloc arenas (tens of MiB of peak RSS).
        buffer = bytearray(count)
        read = await asyncio.to_thread(os.preadv, self._fd, [buffer], offset)
        if read <= 0:
            raise OSError(f"spool file ends at byte {offset}; {count} more were written")
        return bytes(memoryview(buffer)[:read])

    def _held_from(self, offset: int, end: int) -> bytes | None:
        """Bytes ``offset`` up to ``end`` that memory holds contiguously from ``offset``
        (at least one), or None when ``offset`` is no longer in memory."""
        chunks = self._chunks
        if not chunks or offset < chunks[0][0]:
            return None
        index = len(chunks) - 1
        while chunks[index][0] > offset:  # readers are mostly near the newest bytes
            index -= 1
        chunk_offset, chunk = chunks[index]
        if chunk_offset + len(chunk) >= end or index == len(chunks) - 1:
            return chunk[offset - chunk_offset : end - chunk_offset]
        pieces = [memoryview(chunk)[offset - chunk_offset :]]
        reached = chunk_offset + len(chunk)
        for chunk_offset, chunk in itertools.islice(chunks, index + 1, None):
            if reached >= end:
                break
            pieces.append(memoryview(chunk)[: end - chunk_offset])
            reached = chunk_offset + len(chunk)
        return b"".join(pieces)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, pieces: list[bytes], offset: int) -> None:
    views = [memoryview(piece) for piece in pieces]
    while views:
        written = os.pwritev(fd, views, offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]
