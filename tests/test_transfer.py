"""Moving blobs over bad links: the spool, resumes, the no-progress rule, small pools.

Real registries behind fault proxies; the source's bytes are counted by the
engine (``bytes_read``) and skopeo checks what landed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.progress import (
    BlobDone,
    ProgressEvent,
    Retrying,
    SourceResumed,
    SpoolFallback,
)
from ecr_ocir_sync.engine.result import CopyResult
from ecr_ocir_sync.engine.spool import Spool
from ecr_ocir_sync.oci.mediatypes import DOCKER_MANIFEST, OCI_MANIFEST
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.registry.credentials import StaticCredentials
from ecr_ocir_sync.registry.pool import ConnectionLimits, Registries
from tests.conftest import FAST_RETRY, make_registries
from tests.support import skopeo
from tests.support.faults import CuttingProxy, Fault, HttpFaultProxy
from tests.support.images import build_image, layer_bytes
from tests.support.registry import RegistryServer

MiB = 1024 * 1024


async def copy(
    registries: Registries,
    source: str,
    destinations: Sequence[str],
    options: CopyOptions,
    events: list[ProgressEvent] | None = None,
) -> CopyResult:
    src = parse_reference(source)
    dests = [
        Destination(registries.client(ref.registry), ref)
        for ref in map(parse_reference, destinations)
    ]
    return await copy_image(
        registries.client(src.registry),
        src,
        dests,
        options=options,
        progress=(events.append if events is not None else lambda _event: None),
    )


async def tag_present(server: RegistryServer, repository: str, tag: str) -> None:
    """Returns once ``repository:tag`` exists at ``server`` (polled: no event says so)."""
    url = f"{server.url}/v2/{repository}/manifests/{tag}"
    accept = {"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"}
    async with httpx.AsyncClient() as http:
        while (await http.head(url, headers=accept)).status_code != 200:
            await asyncio.sleep(0.05)


def spooled(tmp_path: Path, **options: object) -> CopyOptions:
    spool = Spool.open(tmp_path / "spool", budget=256 * MiB)
    return CopyOptions(retry=FAST_RETRY, spool=spool, **options)  # type: ignore[arg-type]


async def test_a_source_read_dropped_mid_blob_resumes_with_a_range_reading_each_byte_once(
    source, dest_open, push_source, tmp_path
):
    image = build_image([layer_bytes(1_500_000, 200)])
    push_source.image("app", "1", image)
    proxy = await CuttingProxy(source.port, cut_after=600_000).start()
    events: list[ProgressEvent] = []
    try:
        async with make_registries(proxy.host, dest_open.host, logins={}) as registries:
            result = await copy(
                registries,
                f"{proxy.host}/app:1",
                [f"{dest_open.host}/app"],
                spooled(tmp_path),
                events,
            )
    finally:
        await proxy.stop()

    assert proxy.cuts == 1
    assert result.ok, result
    assert any(isinstance(event, SourceResumed) for event in events)
    assert result.bytes_read == image.size  # no byte read twice
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_a_destination_reset_mid_upload_is_retried_from_the_spool_not_the_source(
    source, dest_open, push_source, registries, tmp_path
):
    image = build_image([layer_bytes(3_000_000, 201)])
    push_source.image("app", "1", image)
    proxy = await CuttingProxy(dest_open.port, cut_after=1_800_000, requests=True).start()
    events: list[ProgressEvent] = []
    options = spooled(tmp_path)
    try:
        async with make_registries(source.host, proxy.host, logins={}) as pool:
            result = await copy(
                pool, f"{source.host}/app:1", [f"{proxy.host}/app"], options, events
            )
    finally:
        await proxy.stop()

    assert proxy.cuts == 1
    assert result.ok, result
    assert any(isinstance(event, Retrying) for event in events)
    assert result.bytes_read == image.size
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert options.spool is not None
    assert options.spool.files() == []
    assert options.spool.used == 0


@pytest.mark.parametrize("status", [503, 429])
async def test_a_refused_chunk_resumes_the_same_upload_where_the_registry_says_it_stands(
    status, source, dest_open, push_source, tmp_path
):
    image = build_image([layer_bytes(1_000_000, 202)])
    push_source.image("app", "1", image)
    proxy = await HttpFaultProxy(dest_open.port, Fault("PATCH", 2, status=status)).start()
    try:
        async with make_registries(source.host, proxy.host, logins={}) as pool:
            result = await copy(
                pool,
                f"{source.host}/app:1",
                [f"{proxy.host}/app"],
                spooled(tmp_path, upload_chunk_bytes=256 * 1024),
            )
    finally:
        await proxy.stop()

    assert result.ok, result
    assert result.bytes_read == image.size
    layer_patches = [line for line in proxy.requests if line.startswith("PATCH")]
    assert len(layer_patches) >= 5  # chunked: 4 chunks of the layer, one answered twice
    assert proxy.count("GET") >= 1  # asked where the upload stood
    assert proxy.count("POST") == 2, proxy.requests  # a session per blob: resumed, not new
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


def _patches(proxy: HttpFaultProxy) -> list[str | None]:
    """Each PATCH's Content-Range header (None: one streamed PATCH of the whole blob)."""
    return [
        head.get("content-range")
        for line, head in zip(proxy.requests, proxy.heads, strict=True)
        if line.startswith("PATCH ")
    ]


@pytest.mark.parametrize("status", [413, 405])
async def test_a_refused_single_upload_falls_back_to_chunks_in_a_new_session(
    status, source, dest_open, push_source, tmp_path
):
    image = build_image([layer_bytes(1_000_000, 206)])
    push_source.image("app", "1", image)
    proxy = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, status=status)).start()
    try:
        async with make_registries(source.host, proxy.host, logins={}) as pool:
            result = await copy(
                pool, f"{source.host}/app:1", [f"{proxy.host}/app"], spooled(tmp_path)
            )
    finally:
        await proxy.stop()

    assert result.ok, result
    patches = _patches(proxy)
    assert patches[0] is None  # offered the single streamed PATCH first (the default)
    assert len([p for p in patches if p is not None]) == 1, patches  # then one chunk
    assert proxy.count("POST") == 3, proxy.requests  # the refused blob got a new session
    assert result.bytes_read == image.size  # the second way was fed from the spool
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_a_refused_chunk_falls_back_to_one_streamed_upload(
    source, dest_open, push_source, tmp_path
):
    image = build_image([layer_bytes(1_000_000, 207)])
    push_source.image("app", "1", image)
    proxy = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, status=416)).start()
    try:
        async with make_registries(source.host, proxy.host, logins={}) as pool:
            result = await copy(
                pool,
                f"{source.host}/app:1",
                [f"{proxy.host}/app"],
                spooled(tmp_path, upload_chunk_bytes=256 * 1024),
            )
    finally:
        await proxy.stop()

    assert result.ok, result
    patches = _patches(proxy)
    assert patches[0] is not None  # offered chunks first (configured)
    assert None in patches, patches  # the refused blob then went as one streamed PATCH
    assert proxy.count("POST") == 3, proxy.requests
    assert result.bytes_read == image.size
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_a_stalled_destination_is_cancelled_by_the_no_progress_rule_and_retried(
    source, dest_open, push_source, tmp_path
):
    image = build_image([layer_bytes(1_000_000, 203)])
    push_source.image("app", "1", image)
    proxy = await HttpFaultProxy(dest_open.port, Fault("PATCH", 1, stall=True)).start()
    events: list[ProgressEvent] = []
    try:
        async with make_registries(source.host, proxy.host, logins={}) as pool:
            result = await copy(
                pool,
                f"{source.host}/app:1",
                [f"{proxy.host}/app"],
                spooled(tmp_path, stall_seconds=0.5),
                events,
            )
    finally:
        await proxy.stop()

    assert result.ok, result
    retries = [event for event in events if isinstance(event, Retrying)]
    assert any("no progress" in event.error for event in retries), retries
    assert result.bytes_read == image.size
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_with_the_spool_a_held_destination_does_not_hold_back_the_other(
    source, dest_open, start_registry, push_source, tmp_path
):
    slow_registry = start_registry("slow")
    image = build_image([layer_bytes(24 * MiB, 204)])
    push_source.image("app", "1", image)
    held = await HttpFaultProxy(slow_registry.port, Fault("PATCH", 1, stall=True)).start()
    fast_done = asyncio.Event()
    events: list[ProgressEvent] = []

    def listen(event: ProgressEvent) -> None:
        events.append(event)
        layer = len(max(image.blobs.values(), key=len))
        if (
            isinstance(event, BlobDone)
            and event.destination.startswith(dest_open.host)
            and event.size == layer
        ):
            fast_done.set()

    options = spooled(tmp_path, stall_seconds=60.0, window_bytes=256 * 1024)
    try:
        async with make_registries(source.host, dest_open.host, held.host, logins={}) as pool:
            src = parse_reference(f"{source.host}/app:1")
            dests = [
                Destination(pool.client(ref.registry), ref)
                for ref in map(parse_reference, [f"{dest_open.host}/app", f"{held.host}/app"])
            ]
            copying = asyncio.create_task(
                copy_image(pool.client(source.host), src, dests, options=options, progress=listen)
            )
            await asyncio.wait_for(fast_done.wait(), 30)
            await asyncio.wait_for(tag_present(dest_open, "app", "1"), 30)
            assert not copying.done()  # the held region is still waiting on its PATCH
            assert not [line for line in held.requests if "/manifests/" in line and "PUT" in line]
            held.release()
            result = await copying
    finally:
        await held.stop()

    assert result.ok, result
    assert result.bytes_read == image.size
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert skopeo.manifest_digest(f"{slow_registry.host}/app:1") == image.digest


async def test_blobs_held_at_a_slow_region_do_not_keep_the_copys_blob_slots_from_a_fast_one(
    source, dest_open, start_registry, push_source, tmp_path
):
    slow_registry = start_registry("slow")
    image = build_image([layer_bytes(512 * 1024, 210 + n) for n in range(4)])
    push_source.image("app", "1", image)
    # Two uploads held at once: as many as the copy has blob slots.
    held = await HttpFaultProxy(
        slow_registry.port, Fault("PATCH", 1, stall=True), Fault("PATCH", 2, stall=True)
    ).start()
    options = spooled(tmp_path, stall_seconds=60.0, blob_concurrency=2)
    try:
        async with make_registries(source.host, dest_open.host, held.host, logins={}) as pool:
            copying = asyncio.create_task(
                copy(pool, f"{source.host}/app:1", [f"{dest_open.host}/app", f"{held.host}/app"],
                     options)
            )  # fmt: skip
            await asyncio.wait_for(tag_present(dest_open, "app", "1"), 30)
            assert not copying.done()  # the slow region still holds two uploads
            held.release()
            result = await copying
    finally:
        await held.stop()

    assert result.ok, result
    assert result.bytes_read == image.size  # the held uploads were retried from the spool
    assert skopeo.manifest_digest(f"{slow_registry.host}/app:1") == image.digest


async def test_a_blob_larger_than_the_spool_budget_goes_in_lockstep_with_a_warning_event(
    source, dest_open, push_source, registries, tmp_path
):
    image = build_image([layer_bytes(600_000, 205)])
    push_source.image("app", "1", image)
    spool = Spool.open(tmp_path / "spool", budget=100_000)
    events: list[ProgressEvent] = []

    result = await copy(
        registries,
        f"{source.host}/app:1",
        [f"{dest_open.host}/app"],
        CopyOptions(retry=FAST_RETRY, spool=spool),
        events,
    )

    assert result.ok, result
    fallbacks = [event for event in events if isinstance(event, SpoolFallback)]
    assert [event.size for event in fallbacks] == [len(max(image.blobs.values(), key=len))]
    assert spool.fallbacks == 1
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_chunked_uploads_land_the_same_digest(
    source, dest_open, push_source, registries, tmp_path
):
    image = build_image([layer_bytes(700_000, 206), layer_bytes(10, 207)])
    push_source.image("app", "1", image)

    result = await copy(
        registries,
        f"{source.host}/app:1",
        [f"{dest_open.host}/app"],
        spooled(tmp_path, upload_chunk_bytes=100_000),
    )

    assert result.ok, result
    skopeo.pull_all(f"{dest_open.host}/app:1", tmp_path / "pulled")
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


@pytest.mark.parametrize("with_spool", [False, True], ids=["lockstep", "spooled"])
async def test_a_deliberately_small_pool_cannot_deadlock_many_copies_to_many_regions(
    with_spool, source, start_registry, push_source, tmp_path
):
    regions: list[RegistryServer] = [start_registry(f"region-{i}") for i in range(3)]
    images = {
        f"app{n}": build_image([layer_bytes(300_000, 300 + 10 * n + i) for i in range(4)])
        for n in range(4)
    }
    for name, image in images.items():
        push_source.image(name, "1", image)
    # Room for about two blobs: the rest of the blobs go lockstep beside spooled ones.
    spool = Spool.open(tmp_path / "spool", budget=700_000) if with_spool else None
    options = CopyOptions(retry=FAST_RETRY, spool=spool, blob_concurrency=4, stall_seconds=10)
    insecure = frozenset({source.host, *(r.host for r in regions)})
    limits = ConnectionLimits(per_host=2, pool_timeout=5.0)
    async with Registries(
        StaticCredentials({}), insecure=insecure, retry=FAST_RETRY, limits=limits
    ) as pool:

        async def one(name: str) -> CopyResult:
            return await copy(
                pool, f"{source.host}/{name}:1", [f"{r.host}/{name}" for r in regions], options
            )

        async with asyncio.timeout(60):  # a deadlock fails here instead of hanging
            results = await asyncio.gather(*(one(name) for name in images))

    assert all(result.ok for result in results), results
    for name, image in images.items():
        assert result_sum(results, name) == image.size
        assert skopeo.manifest_digest(f"{regions[2].host}/{name}:1") == image.digest


def result_sum(results: list[CopyResult], name: str) -> int:
    (found,) = [result for result in results if f"/{name}:" in result.source]
    return found.bytes_read


def test_spool_fallbacks_and_source_resumes_are_counted_in_the_metrics():
    from ecr_ocir_sync.observability.metrics import Metrics, ProgressMetrics  # noqa: PLC0415
    from ecr_ocir_sync.oci.digest import Digest  # noqa: PLC0415

    metrics = Metrics()
    listen = ProgressMetrics(metrics)
    digest = Digest("sha256:" + "0" * 64)

    listen(SpoolFallback(digest, 10))
    listen(SourceResumed(digest, 5, "reset", 0.1))

    text = metrics.render().decode()
    assert "ecr_ocir_sync_spool_fallback_blobs_total 1.0" in text
    assert "ecr_ocir_sync_source_resumes_total 1.0" in text
