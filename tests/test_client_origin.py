"""Registry credentials go only to the origin they were issued for.

A registry's answers name further URLs (an upload's ``Location``, a tag list's
``Link``, a blob redirect).  Those on another origin are followed without the
registry's Authorization header, and an HTTPS registry can never send the
client to plain HTTP.  Exchanges are scripted (see test_client_exchanges).
"""

from __future__ import annotations

import httpx
import pytest

from ecr_ocir_sync.errors import AuthError, ProtocolError
from tests.test_client_exchanges import (  # the scripted-exchange fixtures and helpers
    BASE,
    BASIC,
    BLOB,
    basic_challenge,
    chunks,
    connect,
    script,
    sha256,
)

__all__ = ["connect", "script"]  # fixtures used by name below

OTHER = "https://other.example"
UPLOADS = f"{BASE}/v2/app/blobs/uploads/"


def authenticated_post(script, location: str) -> None:
    script.expect("POST", UPLOADS, basic_challenge())
    script.expect("POST", UPLOADS, httpx.Response(202, headers={"Location": location}))


async def test_upload_location_on_another_origin_gets_no_credentials(script, connect):
    digest = sha256(BLOB)
    session = f"{OTHER}/upload/u1?_state=s1"
    authenticated_post(script, session)
    script.expect(
        "PATCH", session, httpx.Response(202, headers={"Location": f"{OTHER}/upload/u1?s=2"})
    )
    script.expect(
        "PUT", f"{OTHER}/upload/u1?s=2&digest={digest.replace(':', '%3A')}", httpx.Response(201)
    )
    client = connect()

    location = await client.start_upload("app")
    await client.upload_blob("app", location, digest, len(BLOB), chunks(BLOB))

    post, patch, put = script.seen[1], script.seen[2], script.seen[3]
    assert post.headers["Authorization"] == BASIC
    assert "Authorization" not in patch.headers
    assert "Authorization" not in put.headers


async def test_upload_location_on_the_registry_keeps_credentials(script, connect):
    digest = sha256(BLOB)
    session = f"{BASE}/v2/app/blobs/uploads/u1"
    authenticated_post(script, session)
    script.expect("PATCH", session, httpx.Response(202, headers={"Location": session}))
    script.expect("PUT", f"{session}?digest={digest.replace(':', '%3A')}", httpx.Response(201))
    client = connect()

    location = await client.start_upload("app")
    await client.upload_blob("app", location, digest, len(BLOB), chunks(BLOB))

    assert script.seen[2].headers["Authorization"] == BASIC
    assert script.seen[3].headers["Authorization"] == BASIC


async def test_upload_location_downgrading_to_plain_http_is_refused(script, connect):
    authenticated_post(script, "http://registry.example/v2/app/blobs/uploads/u1")
    client = connect()

    with pytest.raises(ProtocolError, match="from HTTPS to plain HTTP"):
        await client.start_upload("app")


async def test_unauthorized_answer_from_another_origin_is_not_given_credentials(script, connect):
    digest = sha256(BLOB)
    session = f"{OTHER}/upload/u1"
    script.expect("PATCH", session, basic_challenge())
    client = connect()

    with pytest.raises(AuthError, match="not sent to another origin"):
        await client.upload_blob("app", session, digest, len(BLOB), chunks(BLOB))

    assert "Authorization" not in script.seen[0].headers


def tag_page(tags: list[str], next_url: str | None = None) -> httpx.Response:
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
    return httpx.Response(200, json={"name": "app", "tags": tags}, headers=headers)


async def test_tag_list_link_to_another_origin_gets_no_credentials(script, connect):
    first = f"{BASE}/v2/app/tags/list"
    elsewhere = f"{OTHER}/v2/app/tags/list?last=a"
    script.expect("GET", first, basic_challenge())
    script.expect("GET", first, tag_page(["a"], elsewhere))
    script.expect("GET", elsewhere, tag_page(["b"]))
    client = connect()

    assert await client.list_tags("app") == ["a", "b"]

    assert script.seen[1].headers["Authorization"] == BASIC
    assert "Authorization" not in script.seen[2].headers


async def test_tag_list_link_downgrading_to_plain_http_is_refused(script, connect):
    script.expect(
        "GET", f"{BASE}/v2/app/tags/list", tag_page(["a"], "http://registry.example/v2/x")
    )
    client = connect()

    with pytest.raises(ProtocolError, match="from HTTPS to plain HTTP"):
        await client.list_tags("app")


async def test_blob_redirect_downgrading_to_plain_http_is_refused(script, connect):
    digest = sha256(BLOB)
    blob_url = f"{BASE}/v2/app/blobs/{digest}"
    script.expect(
        "GET", blob_url, httpx.Response(307, headers={"Location": "http://bucket.example/b"})
    )
    client = connect()

    with pytest.raises(ProtocolError, match="from HTTPS to plain HTTP"):
        async with client.open_blob("app", digest):
            pass


async def test_plain_http_registry_may_link_to_plain_http(script, connect):
    first = "http://registry.example/v2/app/tags/list"
    script.expect("GET", first, tag_page(["a"], "http://registry.example/v2/app/tags/list?n=1"))
    script.expect("GET", f"{first}?n=1", tag_page(["b"]))
    client = connect(insecure=True)

    assert await client.list_tags("app") == ["a", "b"]
