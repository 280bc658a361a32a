"""RegistryClient's HTTP exchanges, scripted request by request.

Each test lists the exchanges it expects, in order.  The mock transport
answers only those: a request that is not the next one in the script (or one
after the script ends) fails the test, even where the client would swallow
the error (cancelling an upload is best effort).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from ecr_ocir_sync.errors import AuthError, NotFoundError, ProtocolError, RateLimitedError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.manifest import ImageIndex, ImageManifest
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.credentials import Credentials, StaticCredentials
from ecr_ocir_sync.registry.retry import RetryPolicy

HOST = "registry.example"
BASE = f"https://{HOST}"
REALM = "https://auth.example/token"
STORAGE = "https://bucket.s3.example/blobs/0042?X-Amz-Signature=f00d&X-Amz-Expires=600"
USER, PASSWORD = "mirror", "pa55word"
LOGIN = Credentials(USER, PASSWORD)
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TINY_RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALL_MANIFEST_TYPES = {DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX}


def sha256(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes " * 100
BLOB = b"blob bytes " * 1000


# -- the script -----------------------------------------------------------------


Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class Exchange:
    method: str
    url: str
    answer: Answer


class Script:
    """The requests a test expects, in order, and the answer to each."""

    def __init__(self) -> None:
        self.expected: deque[Exchange] = deque()
        self.seen: list[httpx.Request] = []
        self.violations: list[str] = []

    def expect(
        self,
        method: str,
        url: str,
        answer: Answer,
        *,
        params: list[tuple[str, str]] | None = None,
    ) -> Script:
        expected_url = str(httpx.URL(url, params=params)) if params else url
        self.expected.append(Exchange(method, expected_url, answer))
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        got = f"{request.method} {request.url}"
        if not self.expected:
            self._violate(f"unexpected request after the script ended: {got}")
        exchange = self.expected.popleft()
        wanted = f"{exchange.method} {exchange.url}"
        if got != wanted:
            self._violate(f"expected {wanted}, got {got}")
        answer = exchange.answer
        return answer(request) if callable(answer) else answer

    def _violate(self, text: str) -> None:
        self.violations.append(text)
        raise AssertionError(text)

    def check_finished(self) -> None:
        assert not self.violations, self.violations
        left = [f"{e.method} {e.url}" for e in self.expected]
        assert not left, f"expected requests never sent: {left}"


@pytest.fixture
def script() -> Iterator[Script]:
    scripted = Script()
    yield scripted
    scripted.check_finished()


@pytest.fixture
async def connect(script: Script) -> AsyncIterator[Callable[..., RegistryClient]]:
    """Builds RegistryClients whose every request goes to ``script``."""
    pools: list[httpx.AsyncClient] = []

    def make(
        *,
        login: Credentials | None = LOGIN,
        insecure: bool = False,
        retry: RetryPolicy = TINY_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> RegistryClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(script), follow_redirects=False)
        pools.append(http)
        logins = {HOST: login} if login is not None else {}
        return RegistryClient(
            HOST, http, StaticCredentials(logins), insecure=insecure, retry=retry, clock=clock
        )

    yield make
    for http in pools:
        await http.aclose()


# -- answers ----------------------------------------------------------------------


def basic_challenge() -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})


def bearer_challenge(scope: str, error: str | None = None) -> httpx.Response:
    header = f'Bearer realm="{REALM}",service="{HOST}",scope="{scope}"'
    if error:
        header += f',error="{error}"'
    return httpx.Response(401, headers={"WWW-Authenticate": header})


def token(value: str, expires_in: float = 300) -> httpx.Response:
    return httpx.Response(
        200, json={"token": value, "expires_in": expires_in, "issued_at": "2024-05-01T00:00:00Z"}
    )


def token_params(*scopes: str) -> list[tuple[str, str]]:
    return [("service", HOST), *(("scope", scope) for scope in scopes)]


def image_manifest(media_type: str = DOCKER_MANIFEST) -> bytes:
    oci = media_type == OCI_MANIFEST
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": (
                    "application/vnd.oci.image.config.v1+json"
                    if oci
                    else "application/vnd.docker.container.image.v1+json"
                ),
                "digest": sha256(CONFIG),
                "size": len(CONFIG),
            },
            "layers": [
                {
                    "mediaType": (
                        "application/vnd.oci.image.layer.v1.tar+gzip"
                        if oci
                        else "application/vnd.docker.image.rootfs.diff.tar.gzip"
                    ),
                    "digest": sha256(LAYER),
                    "size": len(LAYER),
                }
            ],
        },
        indent=3,
    ).encode()


def index_manifest(media_type: str = OCI_INDEX) -> bytes:
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    child = image_manifest(child_type)
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": child_type,
                    "digest": sha256(child),
                    "size": len(child),
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                }
            ],
        }
    ).encode()


def manifest_answer(raw: bytes, media_type: str, digest: str | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        content=raw,
        headers={"Content-Type": media_type, "Docker-Content-Digest": digest or sha256(raw)},
    )


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


MANIFEST_URL = f"{BASE}/v2/app/manifests/1.0"


# -- redirects -------------------------------------------------------------------


async def test_blob_redirect_to_storage_host_drops_authorization(script, connect):
    digest = sha256(BLOB)
    blob_url = f"{BASE}/v2/app/blobs/{digest}"
    script.expect("GET", blob_url, basic_challenge())
    script.expect("GET", blob_url, httpx.Response(307, headers={"Location": STORAGE}))
    script.expect("GET", STORAGE, httpx.Response(200, stream=httpx.ByteStream(BLOB)))
    client = connect()

    async with client.open_blob("app", digest) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])

    assert body == BLOB
    to_registry, to_storage = script.seen[1], script.seen[2]
    assert to_registry.headers["Authorization"] == BASIC
    assert "Authorization" not in to_storage.headers


async def test_a_ranged_read_asks_a_closed_range_at_the_registry_and_at_storage(script, connect):
    digest = sha256(BLOB)
    blob_url = f"{BASE}/v2/app/blobs/{digest}"
    last = len(BLOB) - 1
    script.expect("GET", blob_url, basic_challenge())
    script.expect("GET", blob_url, httpx.Response(307, headers={"Location": STORAGE}))
    script.expect(
        "GET",
        STORAGE,
        httpx.Response(
            206,
            headers={"Content-Range": f"bytes 100-{last}/{len(BLOB)}"},
            stream=httpx.ByteStream(BLOB[100:]),
        ),
    )
    client = connect()

    async with client.open_blob("app", digest, start=100, end=last) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])

    assert body == BLOB[100:]
    assert script.seen[1].headers["Range"] == f"bytes=100-{last}"
    assert script.seen[2].headers["Range"] == f"bytes=100-{last}"
    assert "Authorization" not in script.seen[2].headers


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=BLOB),  # Range ignored: the whole blob again
        httpx.Response(206, headers={"Content-Range": "bytes 0-99/11000"}, content=BLOB[:100]),
    ],
    ids=["200-whole-blob", "206-other-range"],
)
async def test_a_ranged_read_answered_with_other_bytes_is_refused(script, connect, answer):
    digest = sha256(BLOB)
    blob_url = f"{BASE}/v2/app/blobs/{digest}"
    script.expect("GET", blob_url, basic_challenge())
    script.expect("GET", blob_url, answer)
    client = connect()

    with pytest.raises(ProtocolError):
        async with client.open_blob("app", digest, start=100, end=len(BLOB) - 1):
            pass


async def test_blob_redirect_within_registry_keeps_authorization(script, connect):
    digest = sha256(BLOB)
    blob_url = f"{BASE}/v2/app/blobs/{digest}"
    moved = f"{BASE}/v2/app/blobs/elsewhere/{digest}"
    script.expect("GET", blob_url, basic_challenge())
    script.expect("GET", blob_url, httpx.Response(307, headers={"Location": moved}))
    script.expect("GET", moved, httpx.Response(200, stream=httpx.ByteStream(BLOB)))
    client = connect()

    async with client.open_blob("app", digest) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])

    assert body == BLOB
    assert script.seen[2].headers["Authorization"] == BASIC


# -- Basic auth ------------------------------------------------------------------


async def test_basic_challenge_is_answered_with_credentials(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, basic_challenge())
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    client = connect()

    manifest = await client.get_manifest("app", "1.0")

    assert manifest.digest == sha256(raw)
    assert "Authorization" not in script.seen[0].headers
    assert script.seen[1].headers["Authorization"] == BASIC


async def test_basic_credentials_are_sent_up_front_once_challenged(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, basic_challenge())
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    script.expect("HEAD", f"{BASE}/v2/app/blobs/{sha256(LAYER)}", httpx.Response(200))
    client = connect()
    await client.get_manifest("app", "1.0")

    assert await client.blob_exists("app", sha256(LAYER))

    assert script.seen[2].headers["Authorization"] == BASIC  # one round trip, no new 401


# -- Bearer auth -----------------------------------------------------------------


async def test_bearer_token_is_fetched_with_service_scope_and_login(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1"), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    client = connect()

    await client.get_manifest("app", "1.0")

    token_request = script.seen[1]
    assert token_request.url.params["service"] == HOST
    assert token_request.url.params.get_list("scope") == ["repository:app:pull"]
    assert token_request.headers["Authorization"] == BASIC
    assert script.seen[2].headers["Authorization"] == "Bearer T1"


async def test_bearer_token_is_reused_for_its_scope(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1"), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    script.expect("HEAD", f"{BASE}/v2/app/blobs/{sha256(LAYER)}", httpx.Response(200))
    script.expect("HEAD", f"{BASE}/v2/app/blobs/{sha256(CONFIG)}", httpx.Response(200))
    client = connect()
    await client.get_manifest("app", "1.0")

    assert await client.blob_exists("app", sha256(LAYER))
    assert await client.blob_exists("app", sha256(CONFIG))

    assert [r.headers["Authorization"] for r in script.seen[3:]] == ["Bearer T1", "Bearer T1"]


async def test_bearer_token_for_another_scope_is_fetched_up_front(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1"), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    # The challenge is known now: the push token is fetched before the first push request.
    script.expect("GET", REALM, token("T2"), params=token_params("repository:app:pull,push"))
    script.expect(
        "POST",
        f"{BASE}/v2/app/blobs/uploads/",
        httpx.Response(202, headers={"Location": "/v2/app/blobs/uploads/u1"}),
    )
    script.expect("HEAD", f"{BASE}/v2/app/blobs/{sha256(LAYER)}", httpx.Response(404))
    client = connect()
    await client.get_manifest("app", "1.0")

    await client.start_upload("app")
    assert not await client.blob_exists("app", sha256(LAYER))

    assert script.seen[4].headers["Authorization"] == "Bearer T2"
    assert script.seen[5].headers["Authorization"] == "Bearer T1"  # pull token still cached


async def test_bearer_token_is_renewed_after_it_expires(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1", 300), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    script.expect("GET", REALM, token("T2"), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    now = [1000.0]
    client = connect(clock=lambda: now[0])
    await client.get_manifest("app", "1.0")
    now[0] += 300  # the token's stated lifetime has passed

    await client.get_manifest("app", "1.0")

    assert script.seen[4].headers["Authorization"] == "Bearer T2"


async def test_bearer_401_with_cached_token_reauthenticates_once(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1"), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    # The registry no longer takes T1 (revoked, or its clock is ahead).
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull", "invalid_token"))
    script.expect("GET", REALM, token("T2"), params=token_params("repository:app:pull"))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    client = connect()
    await client.get_manifest("app", "1.0")

    manifest = await client.get_manifest("app", "1.0")

    assert manifest.digest == sha256(raw)
    assert script.seen[3].headers["Authorization"] == "Bearer T1"
    assert script.seen[5].headers["Authorization"] == "Bearer T2"


async def test_bearer_token_refused_after_reauth_is_auth_error(script, connect):
    script.expect("GET", MANIFEST_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1"), params=token_params("repository:app:pull"))
    script.expect(
        "GET", MANIFEST_URL, bearer_challenge("repository:app:pull", "insufficient_scope")
    )
    client = connect()

    with pytest.raises(AuthError) as caught:
        await client.get_manifest("app", "1.0")

    assert caught.value.status == 401
    assert HOST in caught.value.message


# -- manifest integrity -----------------------------------------------------------


async def test_manifest_bytes_not_matching_stated_digest_is_protocol_error(script, connect):
    raw = image_manifest()
    stated = sha256(b"some other manifest")
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST, digest=stated))
    client = connect()

    with pytest.raises(ProtocolError, match="states digest"):
        await client.get_manifest("app", "1.0")


async def test_manifest_asked_by_digest_with_other_bytes_is_protocol_error(script, connect):
    asked = sha256(b"the manifest that was asked for")
    raw = image_manifest()
    # The registry states the digest of what it sent; it is just not what was asked for.
    script.expect("GET", f"{BASE}/v2/app/manifests/{asked}", manifest_answer(raw, DOCKER_MANIFEST))
    client = connect()

    with pytest.raises(ProtocolError, match=f"asked for {asked}"):
        await client.get_manifest("app", asked)


# -- media types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "raw", "kind"),
    [
        pytest.param(DOCKER_MANIFEST, image_manifest(DOCKER_MANIFEST), ImageManifest, id="docker"),
        pytest.param(DOCKER_LIST, index_manifest(DOCKER_LIST), ImageIndex, id="docker-list"),
        pytest.param(OCI_MANIFEST, image_manifest(OCI_MANIFEST), ImageManifest, id="oci"),
        pytest.param(OCI_INDEX, index_manifest(OCI_INDEX), ImageIndex, id="oci-index"),
    ],
)
async def test_each_manifest_media_type_is_accepted_and_parsed(
    script, connect, media_type, raw, kind
):
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, media_type))
    client = connect()

    manifest = await client.get_manifest("app", "1.0")

    accept = {part.strip() for part in script.seen[0].headers["Accept"].split(",")}
    assert accept == ALL_MANIFEST_TYPES
    assert isinstance(manifest, kind)
    assert manifest.media_type == media_type
    assert manifest.raw == raw
    assert manifest.digest == sha256(raw)
    if isinstance(manifest, ImageManifest):
        assert manifest.config.digest == sha256(CONFIG)
        assert [layer.digest for layer in manifest.layers] == [sha256(LAYER)]
    else:
        assert [child.platform for child in manifest.manifests] == ["linux/arm64/v8"]


# -- retries and errors -------------------------------------------------------------


async def test_manifest_get_is_retried_after_503(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, httpx.Response(503))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    client = connect()

    manifest = await client.get_manifest("app", "1.0")

    assert manifest.digest == sha256(raw)


async def test_rate_limited_error_carries_retry_after(script, connect):
    script.expect("GET", MANIFEST_URL, httpx.Response(429, headers={"Retry-After": "7"}))
    client = connect(retry=RetryPolicy(attempts=1))

    with pytest.raises(RateLimitedError) as caught:
        await client.get_manifest("app", "1.0")

    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


async def test_rate_limited_request_waits_retry_after_before_retrying(script, connect):
    raw = image_manifest()
    script.expect("GET", MANIFEST_URL, httpx.Response(429, headers={"Retry-After": "0.3"}))
    script.expect("GET", MANIFEST_URL, manifest_answer(raw, DOCKER_MANIFEST))
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    # Backoff alone would wait at most a millisecond.
    client = connect(retry=RetryPolicy(attempts=2, base_delay=0.001, max_delay=5, sleep=record))

    await client.get_manifest("app", "1.0")

    assert waits == [0.3]


async def test_manifest_404_is_not_found_error(script, connect):
    script.expect(
        "GET",
        MANIFEST_URL,
        httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
        ),
    )
    client = connect()

    with pytest.raises(NotFoundError, match="MANIFEST_UNKNOWN"):
        await client.get_manifest("app", "1.0")


@pytest.mark.parametrize(("insecure", "scheme"), [(False, "https"), (True, "http")])
async def test_plain_http_only_for_insecure_hosts(script, connect, insecure, scheme):
    script.expect("HEAD", f"{scheme}://{HOST}/v2/app/blobs/{sha256(LAYER)}", httpx.Response(200))
    client = connect(insecure=insecure)

    assert await client.blob_exists("app", sha256(LAYER))


# -- tags -------------------------------------------------------------------------------


async def test_tag_list_follows_link_pagination(script, connect):
    first = f"{BASE}/v2/app/tags/list"
    second = f"{BASE}/v2/app/tags/list?last=b&n=2"
    third = f"{BASE}/v2/app/tags/list?last=d&n=2"
    script.expect(
        "GET",
        first,
        httpx.Response(
            200,
            json={"name": "app", "tags": ["a", "b"]},
            headers={"Link": '</v2/app/tags/list?last=b&n=2>; rel="next"'},
        ),
    )
    script.expect(
        "GET",
        second,
        httpx.Response(
            200,
            json={"name": "app", "tags": ["c", "d"]},
            headers={"Link": f'<{third}>; rel="next"'},
        ),
    )
    script.expect("GET", third, httpx.Response(200, json={"name": "app", "tags": ["e"]}))
    client = connect()

    assert await client.list_tags("app") == ["a", "b", "c", "d", "e"]


# -- uploads ---------------------------------------------------------------------------


async def test_blob_upload_is_post_then_streamed_patch_then_put_digest(script, connect):
    digest = sha256(BLOB)
    session = f"{BASE}/v2/app/blobs/uploads/u1"
    script.expect(
        "POST",
        f"{BASE}/v2/app/blobs/uploads/",
        httpx.Response(202, headers={"Location": "/v2/app/blobs/uploads/u1?_state=s1"}),
    )
    script.expect(
        "PATCH",
        f"{session}?_state=s1",
        httpx.Response(202, headers={"Location": "/v2/app/blobs/uploads/u1?_state=s2"}),
    )
    script.expect(
        "PUT", f"{session}?_state=s2&digest={digest.replace(':', '%3A')}", httpx.Response(201)
    )
    client = connect()

    location = await client.start_upload("app")
    await client.upload_blob("app", location, digest, len(BLOB), chunks(BLOB))

    assert location == f"{session}?_state=s1"
    patch, put = script.seen[1], script.seen[2]
    assert patch.headers["Content-Length"] == str(len(BLOB))
    assert "Transfer-Encoding" not in patch.headers  # one body of known length, not chunked
    assert patch.headers["Content-Type"] == "application/octet-stream"
    assert patch.content == BLOB
    assert put.url.params["digest"] == digest
    assert put.url.params["_state"] == "s2"
    assert put.content == b""


async def test_blob_commit_starts_a_query_when_location_has_none(script, connect):
    digest = sha256(BLOB)
    session = f"{BASE}/v2/app/blobs/uploads/u2"
    script.expect("PATCH", session, httpx.Response(202, headers={"Location": session}))
    script.expect("PUT", f"{session}?digest={digest.replace(':', '%3A')}", httpx.Response(201))
    client = connect()

    await client.upload_blob("app", session, digest, len(BLOB), chunks(BLOB))

    assert script.seen[1].url.params["digest"] == digest


# -- mounts ------------------------------------------------------------------------------


def mount_url(digest: str) -> str:
    return f"{BASE}/v2/app/blobs/uploads/?mount={digest.replace(':', '%3A')}&from=lib/base"


async def test_mount_answered_201_is_mounted(script, connect):
    digest = sha256(LAYER)
    script.expect(
        "POST",
        mount_url(digest),
        httpx.Response(201, headers={"Location": f"/v2/app/blobs/{digest}"}),
    )
    client = connect()

    assert await client.mount_blob("app", digest, "lib/base") is True


async def test_mount_answered_202_is_refused_and_the_opened_upload_deleted(script, connect):
    digest = sha256(LAYER)
    script.expect(
        "POST",
        mount_url(digest),
        httpx.Response(202, headers={"Location": "/v2/app/blobs/uploads/u3?_state=s"}),
    )
    script.expect("DELETE", f"{BASE}/v2/app/blobs/uploads/u3?_state=s", httpx.Response(204))
    client = connect()

    assert await client.mount_blob("app", digest, "lib/base") is False

    assert [request.method for request in script.seen] == ["POST", "DELETE"]


# -- deleting a tag ----------------------------------------------------------------


async def test_a_tag_is_deleted_alone_where_the_registry_supports_tag_delete(script, connect):
    from ecr_ocir_sync.engine.delete import delete_image  # noqa: PLC0415
    from ecr_ocir_sync.engine.destination import Destination  # noqa: PLC0415
    from ecr_ocir_sync.oci.reference import ImageReference  # noqa: PLC0415

    raw = image_manifest()
    digest = sha256(raw)
    latest = f"{BASE}/v2/app/manifests/latest"
    script.expect("HEAD", latest, httpx.Response(200, headers={"Docker-Content-Digest": digest}))
    script.expect("DELETE", latest, httpx.Response(202))

    async def sibling_never_asked(_tag: str, _digest: Digest) -> bool:
        raise AssertionError("a registry that deletes tags needs no sibling check")

    result = await delete_image(
        "event",
        [Destination(connect(), ImageReference(HOST, "app", "latest", digest))],
        source_holds=sibling_never_asked,
    )

    assert result.ok, result
    assert result.destinations[0].detail == f"deleted tag latest (was {digest})"


@pytest.mark.parametrize("status", [400, 405])
async def test_a_registry_without_tag_delete_says_so(script, connect, status):
    script.expect("DELETE", f"{BASE}/v2/app/manifests/latest", httpx.Response(status))

    assert await connect().delete_tag("app", "latest") is False
