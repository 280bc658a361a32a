"""Copying images between real registries; skopeo checks what landed."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.locations import BlobLocations
from ecr_ocir_sync.engine.progress import ProgressEvent, SourcePlanned, SourceResumed
from ecr_ocir_sync.engine.result import CopyResult
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.outcome import TransferCounts
from ecr_ocir_sync.registry.credentials import Credentials
from ecr_ocir_sync.registry.pool import Registries
from tests.conftest import FAST_RETRY, PASSWORD, USER, make_registries
from tests.support import skopeo
from tests.support.faults import CuttingProxy
from tests.support.images import Image, build_image, build_index, layer_bytes
from tests.support.ports import free_port
from tests.support.registry import RegistryServer

CREDS = f"{USER}:{PASSWORD}"


async def copy(
    registries: Registries,
    source: str,
    *destinations: str,
    progress: list[ProgressEvent] | None = None,
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
        options=CopyOptions(retry=FAST_RETRY),
        progress=(progress.append if progress is not None else lambda _event: None),
    )


def blob_present(server: RegistryServer, repository: str, digest: str) -> bool:
    answer = httpx.head(f"{server.url}/v2/{repository}/blobs/{digest}", auth=(USER, PASSWORD))
    return answer.status_code == 200


@pytest.mark.parametrize("oci", [False, True], ids=["docker-v2", "oci"])
async def test_single_platform_image_lands_with_the_same_digest_in_both_destinations(
    oci, source, dest_open, dest_basic, push_source, registries, tmp_path
):
    image = build_image([layer_bytes(200_000, 1), layer_bytes(50_000, 2)], oci=oci)
    push_source.image("team/app", "1.0", image)

    result = await copy(
        registries,
        f"{source.host}/team/app:1.0",
        f"{dest_open.host}/ns/team/app",
        f"{dest_basic.host}/ns/team/app",
    )

    assert result.ok, result
    assert result.digest == image.digest
    assert skopeo.manifest_digest(f"{dest_open.host}/ns/team/app:1.0") == image.digest
    assert skopeo.manifest_digest(f"{dest_basic.host}/ns/team/app:1.0", CREDS) == image.digest
    skopeo.pull_all(f"{dest_basic.host}/ns/team/app:1.0", tmp_path / "pulled", CREDS)


async def test_each_blob_is_read_from_the_source_once_for_two_destinations(
    source, dest_open, dest_basic, push_source, registries
):
    image = build_image([layer_bytes(400_000, 3), layer_bytes(300_000, 4)])
    push_source.image("app", "v1", image)

    events: list[ProgressEvent] = []

    result = await copy(
        registries,
        f"{source.host}/app:v1",
        f"{dest_open.host}/app",
        f"{dest_basic.host}/app",
        progress=events,
    )

    assert result.ok, result
    assert result.bytes_read == image.size
    assert [e for e in events if isinstance(e, SourcePlanned)] == [SourcePlanned(3, image.size)]
    for destination in result.destinations:
        assert destination.counts.bytes_sent == image.size
        assert destination.counts.blobs_copied == 3


@pytest.mark.parametrize("oci", [False, True], ids=["docker-manifest-list", "oci-index"])
async def test_multi_platform_index_is_copied_whole_with_shared_layers_read_once(
    oci, source, dest_open, dest_basic, push_source, registries, tmp_path
):
    shared = layer_bytes(250_000, 10)
    amd64 = build_image([shared, layer_bytes(20_000, 11)], oci=oci, arch="amd64")
    arm64 = build_image([shared, layer_bytes(30_000, 12)], oci=oci, arch="arm64")
    children = [(amd64, "amd64"), (arm64, "arm64")]
    if oci:  # an attestation manifest rides along as a child, as buildx writes it
        children.append((build_image([layer_bytes(1_000, 13)], oci=True, label="att"), "unknown"))
    index = build_index(children, oci=oci)
    push_source.index("multi", "2.0", index)
    unique_bytes = sum(
        len(blob) for blob in {d: b for c, _ in children for d, b in c.blobs.items()}.values()
    )

    result = await copy(
        registries, f"{source.host}/multi:2.0", f"{dest_open.host}/multi", f"{dest_basic.host}/m"
    )

    assert result.ok, result
    assert result.bytes_read == unique_bytes
    assert skopeo.manifest_digest(f"{dest_open.host}/multi:2.0") == index.digest
    assert skopeo.manifest_digest(f"{dest_basic.host}/m:2.0", CREDS) == index.digest
    for child, _ in children:
        assert skopeo.manifest_digest(f"{dest_open.host}/multi@{child.digest}") == child.digest
    skopeo.pull_all(f"{dest_basic.host}/m:2.0", tmp_path / "pulled", CREDS)


async def test_a_rerun_sends_no_blob_and_reports_the_destination_up_to_date(
    source, dest_open, dest_basic, push_source, registries
):
    image = build_image([layer_bytes(100_000, 20)])
    push_source.image("app", "1", image)
    first = await copy(registries, f"{source.host}/app:1", f"{dest_open.host}/app")
    assert first.ok, first

    again = await copy(registries, f"{source.host}/app:1", f"{dest_open.host}/app")

    assert again.ok, again
    assert again.bytes_read == 0
    (destination,) = again.destinations
    assert destination.counts == TransferCounts()  # nothing sent, nothing pushed
    assert destination.detail == f"already at {image.digest}"


async def test_blobs_a_destination_already_holds_are_skipped(
    source, dest_open, dest_basic, push_source, registries
):
    base = layer_bytes(300_000, 30)
    push_source.image("app", "1", build_image([base]))
    second = build_image([base, layer_bytes(10_000, 31)])
    push_source.image("app", "2", second)
    await copy(registries, f"{source.host}/app:1", f"{dest_open.host}/app")

    result = await copy(registries, f"{source.host}/app:2", f"{dest_open.host}/app")

    assert result.ok, result
    (destination,) = result.destinations
    assert destination.counts.blobs_skipped == 1  # the shared base layer
    assert destination.counts.blobs_copied == 2  # new config and new layer
    assert destination.counts.bytes_sent == second.size - len(base)


async def test_an_unreachable_destination_fails_alone_while_the_other_succeeds(
    source, dest_open, dest_basic, push_source, source_and_dead_registries
):
    registries, dead_host = source_and_dead_registries
    image = build_image([layer_bytes(100_000, 40)])
    push_source.image("app", "1", image)

    result = await copy(
        registries, f"{source.host}/app:1", f"{dead_host}/app", f"{dest_open.host}/app"
    )

    dead, alive = result.destinations
    assert alive.ok, alive
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert not dead.ok
    assert dead.retryable
    assert dead_host in (dead.error or "")


async def test_a_corrupt_source_blob_is_committed_nowhere(
    source, dest_open, dest_basic, push_source, registries
):
    good, bad = layer_bytes(100_000, 50), layer_bytes(200_000, 51)
    image = build_image([good, bad])
    push_source.image("app", "1", image)
    bad_digest = next(d for d, b in image.blobs.items() if b == bad)
    stored = source.blob_path(bad_digest)
    stored.write_bytes(bytes(len(bad)))  # same size, wrong content

    result = await copy(
        registries, f"{source.host}/app:1", f"{dest_open.host}/app", f"{dest_basic.host}/app"
    )

    assert not result.ok
    for destination in result.destinations:
        assert not destination.ok
        assert "corrupt" in (destination.error or "")
        assert bad_digest in (destination.error or "")
    for server in (dest_open, dest_basic):
        assert not blob_present(server, "app", bad_digest)
    assert not skopeo.exists(f"{dest_open.host}/app:1")
    assert not skopeo.exists(f"{dest_basic.host}/app:1", CREDS)


async def test_a_connection_dropped_mid_blob_is_retried_and_the_copy_succeeds(
    source, dest_open, dest_basic, push_source
):
    image = build_image([layer_bytes(1_500_000, 60)])
    push_source.image("app", "1", image)
    proxy = await CuttingProxy(source.port, cut_after=600_000).start()
    events: list[ProgressEvent] = []
    logins = {dest_basic.host: Credentials(USER, PASSWORD)}
    try:
        async with make_registries(
            proxy.host, dest_open.host, dest_basic.host, logins=logins
        ) as registries:
            result = await copy(
                registries,
                f"{proxy.host}/app:1",
                f"{dest_open.host}/app",
                f"{dest_basic.host}/app",
                progress=events,
            )
    finally:
        await proxy.stop()

    assert proxy.cuts == 1
    assert result.ok, result
    assert any(isinstance(event, SourceResumed) for event in events)
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest
    assert skopeo.manifest_digest(f"{dest_basic.host}/app:1", CREDS) == image.digest


async def test_a_destination_may_take_a_different_tag(source, dest_open, push_source, registries):
    image = build_image([layer_bytes(10_000, 70)])
    push_source.image("app", "build-17", image)

    result = await copy(registries, f"{source.host}/app:build-17", f"{dest_open.host}/app:prod")

    assert result.ok, result
    assert skopeo.manifest_digest(f"{dest_open.host}/app:prod") == image.digest


async def test_a_source_named_by_digest_lands_by_digest(source, dest_open, push_source, registries):
    image: Image = build_image([layer_bytes(10_000, 80)])
    push_source.image("app", None, image)

    result = await copy(registries, f"{source.host}/app@{image.digest}", f"{dest_open.host}/app")

    assert result.ok, result
    assert skopeo.manifest_digest(f"{dest_open.host}/app@{image.digest}") == image.digest


async def test_a_missing_source_image_fails_every_destination_with_not_found(
    source, dest_open, push_source, registries
):
    result = await copy(registries, f"{source.host}/nothing:1", f"{dest_open.host}/nothing")

    (destination,) = result.destinations
    assert not destination.ok
    assert not destination.retryable
    assert "404" in (destination.error or "")


@pytest.fixture
async def source_and_dead_registries(source, dest_open):
    dead_host = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with make_registries(source.host, dest_open.host, dead_host, logins={}) as pool:
        yield pool, dead_host


async def test_two_copies_needing_the_same_blob_at_once_share_one_transfer(
    source, dest_open, push_source, registries
):
    base = layer_bytes(2_000_000, 120)
    first, second = build_image([base], label="a"), build_image([base], label="b")
    push_source.image("app", "a", first)
    push_source.image("app", "b", second)
    locations = BlobLocations()  # what one service process shares between its jobs

    async def one(tag: str) -> CopyResult:
        src = parse_reference(f"{source.host}/app:{tag}")
        dest = parse_reference(f"{dest_open.host}/app:{tag}")
        return await copy_image(
            registries.client(source.host),
            src,
            [Destination(registries.client(dest_open.host), dest)],
            locations=locations,
        )

    results = await asyncio.gather(one("a"), one("b"))

    assert all(result.ok for result in results), results
    unique = {**first.blobs, **second.blobs}  # the shared base layer counted once
    assert sum(result.bytes_read for result in results) == sum(map(len, unique.values()))
    assert skopeo.manifest_digest(f"{dest_open.host}/app:a") == first.digest
    assert skopeo.manifest_digest(f"{dest_open.host}/app:b") == second.digest


async def test_a_second_repository_at_the_same_registry_gets_the_blob_by_mount(
    source, dest_open, push_source, registries
):
    image = build_image([layer_bytes(500_000, 121)])
    push_source.image("app", "1", image)

    result = await copy(
        registries, f"{source.host}/app:1", f"{dest_open.host}/one/app", f"{dest_open.host}/two/app"
    )

    assert result.ok, result
    assert result.bytes_read == image.size  # read once; the second repository mounted it
    one, two = result.destinations
    assert (one.counts.blobs_copied, two.counts.blobs_mounted) == (2, 2)
    assert skopeo.manifest_digest(f"{dest_open.host}/two/app:1") == image.digest
