"""BlobBuffer: the bytes between the one source read and every destination's upload.

Unit tests of the buffer alone (no registry takes part): what a reader is handed,
and what the spool file holds.
"""

from __future__ import annotations

import os
from pathlib import Path

from ecr_ocir_sync.engine.buffer import BlobBuffer
from ecr_ocir_sync.engine.watchdog import Watch

CHUNK = 16 * 1024  # what a source read over a real link returns at a time


def _blob(size: int) -> bytes:
    return os.urandom(size)


async def _fill(buffer: BlobBuffer, data: bytes) -> None:
    watch = Watch(60)
    for offset in range(0, len(data), CHUNK):
        await buffer.append(data[offset : offset + CHUNK], watch)


async def test_a_reader_behind_the_source_is_handed_the_held_bytes_in_one_piece(
    tmp_path: Path,
) -> None:
    data = _blob(64 * CHUNK)
    buffer = BlobBuffer(len(data), 4 * 1024 * 1024, tmp_path / "blob.spool")
    try:
        await _fill(buffer, data)  # all in memory, the source read still going
        reader = buffer.read(0, len(data), Watch(60), object())
        # Not one piece per source chunk: the upload catches up in one write.
        first = await anext(reader)
        assert first == data
        await buffer.finish(None)
        assert [piece async for piece in reader] == []
    finally:
        buffer.close()


async def test_bytes_gone_from_memory_are_read_from_the_spool_file(tmp_path: Path) -> None:
    data = _blob(200 * CHUNK)  # 3.1 MiB through a 64 KiB window
    buffer = BlobBuffer(len(data), 4 * CHUNK, tmp_path / "blob.spool")
    try:
        await _fill(buffer, data)  # the source read is still going (not finished)
        reader = buffer.read(0, len(data), Watch(60), object())
        received = b""
        while len(received) < len(data):
            received += await anext(reader)
        assert received == data
        await buffer.finish(None)
        assert [piece async for piece in reader] == []
    finally:
        buffer.close()


async def test_the_spool_file_holds_every_byte_once_the_read_is_verified(
    tmp_path: Path,
) -> None:
    data = _blob(100 * CHUNK + 123)  # ends in a part of a chunk
    path = tmp_path / "blob.spool"
    buffer = BlobBuffer(len(data), 4 * CHUNK, path)
    try:
        watch = Watch(60)
        for offset in range(0, len(data), CHUNK):
            await buffer.append(data[offset : offset + CHUNK], watch)
        await buffer.finish(None)
        assert path.read_bytes() == data
    finally:
        buffer.close()


async def test_a_reader_keeping_up_gets_each_byte_as_it_arrives(tmp_path: Path) -> None:
    data = _blob(8 * CHUNK)
    buffer = BlobBuffer(len(data), 4 * 1024 * 1024, tmp_path / "blob.spool")
    try:
        watch = Watch(60)
        reader = buffer.read(0, len(data), watch, object())
        received = b""
        for offset in range(0, len(data), CHUNK):
            await buffer.append(data[offset : offset + CHUNK], watch)
            received += await anext(reader)
            assert received == data[: offset + CHUNK]  # nothing waits for a batch
        await buffer.finish(None)
        assert [piece async for piece in reader] == []
    finally:
        buffer.close()
