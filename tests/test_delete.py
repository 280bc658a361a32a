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
