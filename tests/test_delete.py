"""Propagating deletions to every destination."""

from __future__ import annotations

from ecr_ocir_sync.engine.delete import delete_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.registry.pool import Registries
from tests.conftest import PASSWORD, USER
from tests.support import skopeo
from tests.support.images import Pusher, build_image, layer_bytes

CREDS = f"{USER}:{PASSWORD}"


def destinations(registries: Registries, *references: str) -> list[Destination]:
    parsed = [parse_reference(text) for text in references]
    return [Destination(registries.client(ref.registry), ref) for ref in parsed]


def seed(dest_open, dest_basic, tag: str = "1") -> str:
    image = build_image([layer_bytes(10_000, 90)])
    for server, auth in ((dest_open, None), (dest_basic, (USER, PASSWORD))):
        pusher = Pusher(server.url, auth)
        pusher.image("app", tag, image)
        pusher.close()
    return image.digest


async def test_delete_removes_the_tags_manifest_at_every_destination(
    dest_open, dest_basic, registries
):
    digest = seed(dest_open, dest_basic)

    result = await delete_image(
        "event", destinations(registries, f"{dest_open.host}/app:1", f"{dest_basic.host}/app:1")
    )

    assert result.ok, result
    assert [d.detail for d in result.destinations] == [f"deleted {digest}"] * 2
    assert not skopeo.exists(f"{dest_open.host}/app:1")
    assert not skopeo.exists(f"{dest_basic.host}/app@{digest}", CREDS)


async def test_deleting_what_is_already_gone_succeeds_and_says_so(dest_open, registries):
    result = await delete_image("event", destinations(registries, f"{dest_open.host}/app:gone"))

    assert result.ok, result
    assert result.destinations[0].detail == "already absent"


async def test_a_deletion_naming_an_older_digest_leaves_a_newer_push_in_place(
    dest_open, dest_basic, registries
):
    current = seed(dest_open, dest_basic)
    older = "sha256:" + "0" * 64

    result = await delete_image(
        "event", destinations(registries, f"{dest_open.host}/app:1@{older}")
    )

    assert result.ok, result
    assert result.destinations[0].detail == f"tag now points at {current}; left in place"
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == current


def holds_in(registries: Registries, source, repository: str):
    """Asks the source registry (the ECR stand-in) whether it still holds a tag at a digest."""
    client = registries.client(source.host)

    async def holds(tag: str, digest) -> bool:
        return await client.manifest_digest(repository, tag) == digest

    return holds


async def test_deleting_a_tag_keeps_the_manifest_a_sibling_tag_the_source_holds_shares(
    source, dest_open, registries
):
    image = build_image([layer_bytes(10_000, 91)])
    for server, tags in ((dest_open, ("latest", "1.0")), (source, ("1.0",))):
        pusher = Pusher(server.url)
        for tag in tags:
            pusher.image("app", tag, image)
        pusher.close()

    result = await delete_image(
        "event",
        destinations(registries, f"{dest_open.host}/app:latest@{image.digest}"),
        source_holds=holds_in(registries, source, "app"),
    )

    assert result.ok, result
    assert result.destinations[0].detail == "kept: shared with 1.0"
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1.0") == image.digest


async def test_deleting_a_tag_whose_siblings_the_source_no_longer_holds_deletes_the_manifest(
    source, dest_open, registries
):
    image = build_image([layer_bytes(10_000, 92)])
    pusher = Pusher(dest_open.url)
    for tag in ("latest", "1.0"):
        pusher.image("app", tag, image)
    pusher.close()

    result = await delete_image(
        "event",
        destinations(registries, f"{dest_open.host}/app:latest@{image.digest}"),
        source_holds=holds_in(registries, source, "app"),
    )

    assert result.ok, result
    assert result.destinations[0].detail == f"deleted {image.digest}"
    assert not skopeo.exists(f"{dest_open.host}/app:1.0")


async def test_a_delete_the_source_no_longer_wants_right_before_it_leaves_the_destination(
    dest_open, dest_basic, registries
):
    digest = seed(dest_open, dest_basic)

    async def moved_on() -> str:
        return "tag 1 exists again in ECR; not deleted"

    result = await delete_image(
        "event", destinations(registries, f"{dest_open.host}/app:1"), recheck=moved_on
    )

    assert result.destinations[0].status == "superseded"
    assert result.destinations[0].detail == "tag 1 exists again in ECR; not deleted"
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == digest
