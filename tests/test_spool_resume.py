"""Continuing a blob after its copy was cut off: the spool file and upload sessions an
earlier attempt left (a process stopped, cancelled or killed) are used again.

An "earlier process" here is a copy cancelled mid-blob, then a new Spool opened
on the same directory, as a restarted pod does; tests/test_service.py kills the
real service with SIGKILL.  Registries are real, behind fault proxies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ecr_ocir_sync.engine.copy import CopyOptions
from ecr_ocir_sync.engine.progress import (
    BytesWritten,
    ProgressEvent,
    SpoolReused,
    UploadResumed,
)
from ecr_ocir_sync.engine.result import CopyResult
from ecr_ocir_sync.engine.spool import Spool
from ecr_ocir_sync.engine.spool_journal import SpoolJournal
from ecr_ocir_sync.registry.credentials import Credentials
from tests.conftest import FAST_RETRY, PASSWORD, USER, make_registries
from tests.support import skopeo
from tests.support.faults import Fault, HttpFaultProxy, SlowProxy
from tests.support.images import Image, Pusher, build_image, layer_bytes, sha256
from tests.support.registry import RegistryServer
from tests.test_transfer import copy

MiB = 1024 * 1024
CHECKPOINT = 256 * 1024


def options(spool: Spool, **more: Any) -> CopyOptions:
    more.setdefault("checkpoint_bytes", CHECKPOINT)
    return CopyOptions(retry=FAST_RETRY, spool=spool, stall_seconds=60.0, **more)


def journal_of(directory: Path, data: bytes) -> dict[str, Any] | None:
    path = directory / f"{sha256(data).removeprefix('sha256:')}.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return loaded


async def until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Polls ``condition`` (a journal on disk says nothing when it changes)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


def verified(directory: Path, data: bytes) -> int:
    """The bytes of ``data`` its journal names as on the spool file (0: no journal yet)."""
    return int((journal_of(directory, data) or {}).get("verified", 0))


def one_layer_image(
    source: Pusher, destination: RegistryServer | None, size: int, seed: int
) -> tuple[bytes, Image]:
    """``app:1`` at the source, one layer.  With a ``destination``, the config is there
    already: the layer is the only blob that moves, so which PATCH a proxy holds is known."""
    layer = layer_bytes(size, seed)
    image = build_image([layer])
    source.image("app", "1", image)
    if destination is not None:
        pusher = Pusher(destination.url)
        try:
            for data in image.blobs.values():
                if data != layer:
                    pusher.blob("app", data)
        finally:
            pusher.close()
    return layer, image


async def copy_after_restart(
    spool_dir: Path,
    source_host: str,
    dest_host: str,
    logins: dict[str, Credentials] | None = None,
    **more: Any,
) -> tuple[CopyResult, list[ProgressEvent], Spool]:
    """The copy a restarted process makes: a new Spool on the same directory."""
    spool = Spool.open(spool_dir, budget=256 * MiB)
    events: list[ProgressEvent] = []
    async with make_registries(source_host, dest_host, logins=logins or {}) as pool:
        result = await copy(
            pool, f"{source_host}/app:1", [f"{dest_host}/app"], options(spool, **more), events
        )
    return result, events, spool


async def cut_off(
    source_host: str,
    dest_host: str,
    spool_dir: Path,
    stop_when: Callable[[], bool],
    **more: Any,
) -> None:
    """A copy that is cancelled (as a stopping process is) once ``stop_when`` holds."""
    spool = Spool.open(spool_dir, budget=256 * MiB)
    async with make_registries(source_host, dest_host, logins={}) as pool:
        copying = asyncio.create_task(
            copy(pool, f"{source_host}/app:1", [f"{dest_host}/app"], options(spool, **more))
        )
        await until(stop_when, "the copy to reach the point where it is cut off")
        copying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copying


async def test_a_blob_fully_spooled_before_a_restart_is_not_read_from_the_source_again(
    source, dest_open, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, dest_open, 3 * MiB, 230)
    spool_dir = tmp_path / "spool"
    held = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, stall=True)).start()
    try:
        await cut_off(
            source.host, held.host, spool_dir, lambda: verified(spool_dir, layer) == len(layer)
        )
        held.release()
        assert Spool.open(spool_dir, budget=256 * MiB).used == len(layer)  # counted
        result, events, spool = await copy_after_restart(spool_dir, source.host, held.host)
    finally:
        await held.stop()

    assert result.ok, result
    assert [e.count for e in events if isinstance(e, SpoolReused)] == [len(layer)]
    assert result.bytes_read == 0
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert spool.files() == []
    assert spool.used == 0


async def test_a_blob_partly_spooled_before_a_restart_continues_with_a_range_from_its_checkpoint(
    source, dest_open, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, dest_open, 4 * MiB, 231)
    spool_dir = tmp_path / "spool"
    slow = SlowProxy(source.port, bytes_per_second=2 * MiB).start()
    held = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, stall=True)).start()
    try:
        await cut_off(
            slow.host,
            held.host,
            spool_dir,
            lambda: verified(spool_dir, layer) >= 2 * MiB,
        )
        kept = verified(spool_dir, layer)
        assert kept < len(layer)
        slow.rate = 1 << 40  # the link is fine again
        held.release()
        counted = await HttpFaultProxy(slow.port).start()  # records the source's requests
        try:
            result, events, spool = await copy_after_restart(spool_dir, counted.host, held.host)
        finally:
            await counted.stop()
    finally:
        await held.stop()
        slow.stop()

    assert result.ok, result
    assert [e.count for e in events if isinstance(e, SpoolReused)] == [kept]
    assert result.bytes_read == len(layer) - kept
    ranges = [head.get("range") for head in counted.heads if head.get("range")]
    assert ranges == [f"bytes={kept}-{len(layer) - 1}"]
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert spool.files() == []


async def test_a_spool_file_changed_since_its_checkpoint_is_not_used_and_the_blob_is_read_again(
    source, dest_open, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, dest_open, 3 * MiB, 232)
    spool_dir = tmp_path / "spool"
    held = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, stall=True)).start()
    try:
        await cut_off(
            source.host, held.host, spool_dir, lambda: verified(spool_dir, layer) == len(layer)
        )
        held.release()
        data = spool_dir / f"{sha256(layer).removeprefix('sha256:')}.spool"
        with data.open("r+b") as damaged:  # a bit flipped on the volume
            damaged.seek(MiB)
            byte = damaged.read(1)
            damaged.seek(MiB)
            damaged.write(bytes([byte[0] ^ 1]))
        result, events, spool = await copy_after_restart(spool_dir, source.host, held.host)
    finally:
        await held.stop()

    assert result.ok, result
    assert not [e for e in events if isinstance(e, SpoolReused)]
    assert result.bytes_read == len(layer)
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert spool.files() == []


async def test_an_upload_session_open_before_a_restart_continues_where_the_registry_says(
    source, dest_open, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, dest_open, 3 * MiB, 233)
    spool_dir = tmp_path / "spool"
    # Chunks of 1 MiB: the first two land, the third is held (the registry never sees it).
    held = await HttpFaultProxy(dest_open.port, Fault("PATCH", 3, stall=True)).start()

    def two_chunks_confirmed() -> bool:
        uploads = (journal_of(spool_dir, layer) or {}).get("uploads", {})
        return [u["offset"] for u in uploads.values()] == [2 * MiB]

    try:
        await cut_off(
            source.host, held.host, spool_dir, two_chunks_confirmed, upload_chunk_bytes=MiB
        )
        held.release()
        result, events, _ = await copy_after_restart(
            spool_dir, source.host, held.host, upload_chunk_bytes=MiB
        )
    finally:
        await held.stop()

    assert result.ok, result
    assert [e.offset for e in events if isinstance(e, UploadResumed)] == [2 * MiB]
    assert sum(e.count for e in events if isinstance(e, BytesWritten)) == len(layer) - 2 * MiB
    assert held.count("POST") == 1  # one upload session, across both attempts
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_a_region_that_failed_every_retry_gets_the_blob_from_the_spool_at_the_next_attempt(
    source, dest_open, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, dest_open, 2 * MiB, 234)
    down = [Fault("PATCH", n, status=503) for n in range(1, FAST_RETRY.attempts + 1)]
    failing = await HttpFaultProxy(dest_open.port, *down).start()
    spool = Spool.open(tmp_path / "spool", budget=256 * MiB)  # one process, two attempts
    events: list[ProgressEvent] = []
    try:
        async with make_registries(source.host, failing.host, logins={}) as pool:
            target = [f"{failing.host}/app"]
            first = await copy(pool, f"{source.host}/app:1", target, options(spool))
            assert not first.ok
            assert spool.used == len(layer)  # kept, counted
            second = await copy(pool, f"{source.host}/app:1", target, options(spool), events)
    finally:
        await failing.stop()

    assert second.ok, second
    assert [e.count for e in events if isinstance(e, SpoolReused)] == [len(layer)]
    assert second.bytes_read == 0
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert spool.files() == []
    assert spool.used == 0


async def test_a_journal_naming_an_upload_at_another_origin_gets_no_credentials(
    source, dest_basic, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, None, MiB, 235)
    foreign = await HttpFaultProxy(dest_basic.port).start()  # records whatever reaches it
    journal = _leave(tmp_path / "spool", layer)
    journal.record_upload(
        f"{dest_basic.host}/app", f"http://{foreign.host}/v2/app/blobs/uploads/x?_state=y", 4096
    )
    logins = {dest_basic.host: Credentials(USER, PASSWORD)}
    try:
        result, events, _ = await copy_after_restart(
            tmp_path / "spool", source.host, dest_basic.host, logins
        )
    finally:
        await foreign.stop()

    assert result.ok, result
    assert [head for head in foreign.heads if "authorization" in head] == []
    assert not [e for e in events if isinstance(e, UploadResumed)]
    assert skopeo.manifest_digest(f"{dest_basic.host}/app:1", f"{USER}:{PASSWORD}") == (
        image.digest
    )


async def test_a_spool_file_shorter_than_its_checkpoint_is_read_again_from_the_source(
    source, dest_open, push_source, tmp_path
):
    layer, image = one_layer_image(push_source, None, MiB, 236)
    journal = _leave(tmp_path / "spool", layer)
    with journal.path.with_suffix(".spool").open("r+b") as cut:
        cut.truncate(1000)  # the pages after it never reached the disk
    result, events, _ = await copy_after_restart(tmp_path / "spool", source.host, dest_open.host)

    assert result.ok, result
    assert not [e for e in events if isinstance(e, SpoolReused)]
    assert result.bytes_read == image.size
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


# -- the spool's own bookkeeping ----------------------------------------------------


def _leave(directory: Path, data: bytes, verified: int | None = None) -> SpoolJournal:
    """What a killed process leaves: a blob's file and its journal."""
    digest = sha256(data)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{digest.removeprefix('sha256:')}.spool").write_bytes(data)
    journal = SpoolJournal(
        directory / f"{digest.removeprefix('sha256:')}.json",
        digest,
        len(data),  # type: ignore[arg-type]
    )
    count = len(data) if verified is None else verified
    journal.checkpoint(count, sha256(data[:count]).removeprefix("sha256:"))
    return journal


def test_files_without_a_usable_journal_are_removed_at_start_up_and_journaled_ones_kept(
    tmp_path,
):
    directory = tmp_path / "spool"
    kept = _leave(directory, b"k" * 1000)
    (directory / "0123456789abcdef-1234abcd.private").write_bytes(b"x" * 1000)  # a private copy
    (directory / f"{'ab' * 32}.spool").write_bytes(b"y" * 1000)  # no journal
    (directory / f"{'cd' * 32}.json").write_text("{not json")  # no file, a broken journal
    misnamed = _leave(directory, b"m" * 10)  # a journal under another blob's name
    misnamed.path.rename(directory / f"{'ef' * 32}.json")
    misnamed.path.with_suffix(".spool").rename(directory / f"{'ef' * 32}.spool")

    spool = Spool.open(directory, budget=10_000)

    assert spool.files() == sorted([kept.path, kept.path.with_suffix(".spool")])
    assert spool.used == 1000


def test_kept_files_give_their_room_to_new_blobs_when_the_budget_needs_it(tmp_path):
    directory = tmp_path / "spool"
    old = _leave(directory, b"o" * 6000)
    spool = Spool.open(directory, budget=10_000)

    reservation = spool.reserve(sha256(b"n" * 8000), 8000)  # type: ignore[arg-type]

    assert reservation is not None
    assert not old.path.exists()
    assert not old.path.with_suffix(".spool").exists()
    assert spool.used == 8000


def test_kept_files_older_than_the_keep_time_are_removed(tmp_path):
    directory = tmp_path / "spool"
    old = _leave(directory, b"o" * 600)
    spool = Spool.open(directory, budget=10_000)
    spool.keep_seconds = 0.0  # what a day later looks like

    spool.reserve(sha256(b"n" * 10), 10)  # type: ignore[arg-type]

    assert not old.path.with_suffix(".spool").exists()
    assert spool.used == 10


async def test_a_checkpoint_names_only_bytes_already_on_the_spool_file(
    source, dest_open, push_source, tmp_path
):
    # The file receives appended bytes in batches; a checkpoint between two batches must
    # still find its bytes there after the process is gone.
    # Under 1 MiB: read in small pieces (no SO_RCVLOWAT batches).
    layer, _ = one_layer_image(push_source, dest_open, MiB - 1000, 232)
    spool_dir = tmp_path / "spool"
    # Slow: the copy is cut off soon after the first checkpoint, before another batch.
    slow = SlowProxy(source.port, bytes_per_second=512 * 1024).start()
    held = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, stall=True)).start()
    try:
        await cut_off(
            slow.host,
            held.host,
            spool_dir,
            lambda: verified(spool_dir, layer) > 0,
            checkpoint_bytes=64 * 1024,  # well before the file's first batch
        )
    finally:
        held.release()
        await held.stop()
        slow.stop()

    kept = verified(spool_dir, layer)
    [spool_file] = list(spool_dir.glob("*.spool"))
    assert 0 < kept < len(layer)
    assert spool_file.read_bytes()[:kept] == layer[:kept]
