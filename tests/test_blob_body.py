"""Reading a blob's body from a real registry (registry.transport.iter_body).

A large body is read with the kernel told to wake the reader only for a batch of
bytes (SO_RCVLOWAT); these tests hold the promises that makes: every byte arrives,
the end included, and the connection goes back to the pool answering small
requests at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.credentials import StaticCredentials
from ecr_ocir_sync.registry.transport import iter_body, new_http_client
from tests.conftest import FAST_RETRY
from tests.support.images import Pusher
from tests.support.registry import RegistryServer

# Larger than the low-water batches, and ending in a part of one.
BLOB = os.urandom(3 * 1024 * 1024 + 12345)
DIGEST = Digest(f"sha256:{hashlib.sha256(BLOB).hexdigest()}")


@asynccontextmanager
async def _one_connection_client(source: RegistryServer) -> AsyncIterator[RegistryClient]:
    # One connection: every request after the blob goes over the blob's connection.
    async with new_http_client(max_connections=1, pool_timeout=5) as http:
        yield RegistryClient(
            source.host, http, StaticCredentials({}), insecure=True, retry=FAST_RETRY
        )


async def test_a_large_blob_is_read_to_its_last_byte(
    source: RegistryServer, push_source: Pusher
) -> None:
    push_source.blob("app", BLOB)
    async with _one_connection_client(source) as client:
        async with client.open_blob("app", DIGEST) as response:
            body = b"".join([chunk async for chunk in iter_body(response, "test")])
        assert body == BLOB


async def test_the_connection_a_large_blob_was_read_on_then_answers_small_requests_at_once(
    source: RegistryServer, push_source: Pusher
) -> None:
    push_source.blob("app", BLOB)
    async with _one_connection_client(source) as client:
        last = len(BLOB) - 1
        async with client.open_blob("app", DIGEST, start=10, end=last) as response:
            async for _chunk in iter_body(response, "test"):
                pass
        # A HEAD's answer is a few hundred bytes: far below the body's batches.
        assert await asyncio.wait_for(client.blob_exists("app", DIGEST), timeout=5)


async def test_a_body_left_midway_leaves_the_pool_answering_at_once(
    source: RegistryServer, push_source: Pusher
) -> None:
    push_source.blob("app", BLOB)
    async with _one_connection_client(source) as client:
        async with client.open_blob("app", DIGEST) as response:
            async for _chunk in iter_body(response, "test"):
                break
        assert await asyncio.wait_for(client.blob_exists("app", DIGEST), timeout=5)
