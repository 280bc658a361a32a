"""Copies into a real distribution registry that wants Bearer tokens from a token server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.result import CopyResult
from ecr_ocir_sync.errors import AuthError
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.registry.credentials import Credentials, StaticCredentials
from ecr_ocir_sync.registry.pool import Registries
from tests.conftest import FAST_RETRY
from tests.support import skopeo
from tests.support.images import Pusher, build_image, build_index, layer_bytes
from tests.support.registry import RegistryServer
from tests.support.token_server import TokenServer

TOKEN_USER, TOKEN_PASSWORD = "syncer", "t0ken-test-only"
CREDS = f"{TOKEN_USER}:{TOKEN_PASSWORD}"


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path / "token", username=TOKEN_USER, password=TOKEN_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dest_token(
    start_registry: Callable[..., RegistryServer], token_server: TokenServer
) -> RegistryServer:
    """A destination that sends clients to the token server, like Docker Hub or Harbor."""
    return start_registry("dest-token", token_auth=token_server.registry_config())


def _registries(password: str, dest: RegistryServer, *others: RegistryServer) -> Registries:
    credentials = StaticCredentials({dest.host: Credentials(TOKEN_USER, password)})
    insecure = frozenset({dest.host, *(server.host for server in others)})
    return Registries(credentials, insecure=insecure, retry=FAST_RETRY)


@pytest.fixture
async def token_registries(
    source: RegistryServer, dest_token: RegistryServer
) -> AsyncIterator[Registries]:
    async with _registries(TOKEN_PASSWORD, dest_token, source) as pool:
        yield pool


async def _copy(
    registries: Registries, source: RegistryServer, reference: str, *dests: RegistryServer
) -> CopyResult:
    destinations = [
        Destination(registries.client(dest.host), parse_reference(f"{dest.host}/ns/app"))
        for dest in dests
    ]
    return await copy_image(
        registries.client(source.host),
        parse_reference(f"{source.host}/{reference}"),
        destinations,
        options=CopyOptions(retry=FAST_RETRY),
    )


async def test_copy_into_token_registry_lands_intact(
    source: RegistryServer,
    dest_token: RegistryServer,
    push_source: Pusher,
    token_registries: Registries,
    tmp_path: Path,
) -> None:
    index = build_index(
        [
            (build_image([layer_bytes(120_000, 11)], oci=True, arch="amd64"), "amd64"),
            (build_image([layer_bytes(80_000, 12)], oci=True, arch="arm64"), "arm64"),
        ]
    )
    push_source.index("app", "1.0", index)

    result = await _copy(token_registries, source, "app:1.0", dest_token)

    assert result.ok, result.destinations[0].error
    assert skopeo.manifest_digest(f"{dest_token.host}/ns/app:1.0", CREDS) == index.digest
    skopeo.pull_all(f"{dest_token.host}/ns/app:1.0", tmp_path / "out", CREDS)


async def test_second_copy_to_same_repository_reuses_cached_tokens(
    source: RegistryServer,
    dest_token: RegistryServer,
    token_server: TokenServer,
    push_source: Pusher,
    token_registries: Registries,
) -> None:
    push_source.image("app", "1.0", build_image([layer_bytes(50_000, 21)], label="one"))
    push_source.image("app", "2.0", build_image([layer_bytes(60_000, 22)], label="two"))
    pull, push = "repository:ns/app:pull", "repository:ns/app:pull,push"

    first = await _copy(token_registries, source, "app:1.0", dest_token)
    assert first.ok, first.destinations[0].error
    after_first = token_server.requests_by_scope()
    # One token per scope the copy needed: probing (pull) and uploading (pull,push).
    assert after_first == {"*": 2, pull: 1, push: 1}

    second = await _copy(token_registries, source, "app:2.0", dest_token)

    assert second.ok, second.destinations[0].error
    # It really uploaded: a new config and layer.
    assert second.destinations[0].counts.blobs_copied == 2
    assert token_server.requests_by_scope() == after_first


async def test_wrong_password_fails_only_the_token_destination(
    source: RegistryServer,
    dest_token: RegistryServer,
    dest_open: RegistryServer,
    token_server: TokenServer,
    push_source: Pusher,
) -> None:
    image = build_image([layer_bytes(70_000, 31)])
    push_source.image("app", "1.0", image)

    async with _registries("wrong-password", dest_token, source, dest_open) as registries:
        result = await _copy(registries, source, "app:1.0", dest_token, dest_open)

    refused, opened = result.destinations
    assert not refused.ok
    assert refused.error is not None
    assert "401 Unauthorized" in refused.error
    assert not refused.retryable
    assert token_server.refused >= 1
    assert token_server.issued() == 0
    assert opened.ok, opened.error
    assert skopeo.manifest_digest(f"{dest_open.host}/ns/app:1.0") == image.digest
    assert not skopeo.exists(f"{dest_token.host}/ns/app:1.0", CREDS)


async def test_wrong_password_is_auth_error(
    source: RegistryServer, dest_token: RegistryServer
) -> None:
    async with _registries("wrong-password", dest_token, source) as registries:
        client = registries.client(dest_token.host)
        with pytest.raises(AuthError) as caught:
            await client.manifest_digest("ns/app", "1.0")

    assert caught.value.status == 401
    assert not caught.value.retryable


async def test_refused_token_login_names_the_registry_host(
    source: RegistryServer, dest_token: RegistryServer
) -> None:
    async with _registries("wrong-password", dest_token, source) as registries:
        client = registries.client(dest_token.host)
        with pytest.raises(AuthError) as caught:
            await client.manifest_digest("ns/app", "1.0")

    assert dest_token.host in caught.value.message
