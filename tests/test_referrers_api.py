"""The OCI 1.1 referrers API, scripted exchange by exchange (registry 2.8 predates it).

Client exchanges use the ordered script of tests/test_client_exchanges.py: any
request not next in the script fails the test.  Discovery sends its probes
concurrently, so those tests use an unordered script: each expected request
is answered once, and anything else fails the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from ecr_ocir_sync.engine.referrers import copy_referrers, fallback_tag
from ecr_ocir_sync.errors import ProtocolError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.manifest import ImageIndex, ImageManifest, parse_manifest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.credentials import Credentials, StaticCredentials
from ecr_ocir_sync.registry.retry import RetryPolicy
from tests.test_client_exchanges import (
    BASE,
    HOST,
    LOGIN,
    OCI_INDEX,
    OCI_MANIFEST,
    REALM,
    TINY_RETRY,
    Script,
    bearer_challenge,
    index_manifest,
    manifest_answer,
    sha256,
    token,
    token_params,
)

SUBJECT = sha256(b"the subject image manifest")
REFERRERS_URL = f"{BASE}/v2/app/referrers/{SUBJECT}"
SPDX = "application/spdx+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def referrer(name: str, artifact_type: str, **annotations: str) -> dict[str, object]:
    raw = name.encode()
    descriptor: dict[str, object] = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(raw),
        "size": len(raw),
        "artifactType": artifact_type,
    }
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


def referrers_page(*descriptors: dict[str, object], **headers: str) -> httpx.Response:
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(descriptors)}
    return httpx.Response(200, json=document, headers={"Content-Type": OCI_INDEX, **headers})


@pytest.fixture
def script() -> Iterator[Script]:
    scripted = Script()
    yield scripted
    scripted.check_finished()


@pytest.fixture
async def connect(script: Script) -> AsyncIterator[Callable[..., RegistryClient]]:
    pools: list[httpx.AsyncClient] = []

    def make(
        handler: Callable[[httpx.Request], httpx.Response] | None = None,
        *,
        retry: RetryPolicy = TINY_RETRY,
        login: Credentials | None = LOGIN,
    ) -> RegistryClient:
        transport = httpx.MockTransport(handler or script)
        http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        pools.append(http)
        logins = StaticCredentials({HOST: login} if login else {})
        return RegistryClient(HOST, http, logins, retry=retry, clock=time.monotonic)

    yield make
    for http in pools:
        await http.aclose()


# -- RegistryClient.list_referrers ----------------------------------------------------


async def test_referrers_are_read_across_link_pages_with_type_and_annotations(script, connect):
    second = f"{REFERRERS_URL}?last=b"
    sig = referrer("sig", SIGSTORE_BUNDLE, **{"dev.sigstore.bundle.predicateType": "x"})
    sbom = referrer("sbom", SPDX, **{"org.opencontainers.image.created": "2024-05-01"})
    script.expect(
        "GET",
        REFERRERS_URL,
        referrers_page(sig, Link=f'</v2/app/referrers/{SUBJECT}?last=b>; rel="next"'),
    )
    script.expect("GET", second, referrers_page(sbom))
    client = connect()

    listed = await client.list_referrers("app", SUBJECT)

    assert listed is not None
    assert [d.digest for d in listed] == [sig["digest"], sbom["digest"]]
    assert [d.artifact_type for d in listed] == [SIGSTORE_BUNDLE, SPDX]
    assert listed[1].annotations == (("org.opencontainers.image.created", "2024-05-01"),)
    assert script.seen[0].headers["Accept"] == OCI_INDEX


async def test_no_referrers_is_an_empty_list_not_none(script, connect):
    script.expect("GET", REFERRERS_URL, referrers_page())
    client = connect()

    assert await client.list_referrers("app", SUBJECT) == []


@pytest.mark.parametrize("status", [404, 400, 405, 501])
async def test_a_registry_without_the_api_answers_none_after_one_request(script, connect, status):
    body = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
    script.expect("GET", REFERRERS_URL, httpx.Response(status, json=body))
    client = connect()

    assert await client.list_referrers("app", SUBJECT) is None


async def test_a_missing_later_page_is_a_protocol_error_not_a_missing_api(script, connect):
    script.expect(
        "GET",
        REFERRERS_URL,
        referrers_page(referrer("a", SPDX), Link=f'<{REFERRERS_URL}?last=a>; rel="next"'),
    )
    script.expect("GET", f"{REFERRERS_URL}?last=a", httpx.Response(404))
    client = connect()

    with pytest.raises(ProtocolError, match="later page"):
        await client.list_referrers("app", SUBJECT)


FILTERED_URL = f"{REFERRERS_URL}?artifactType=application%2Fspdx%2Bjson"


async def test_an_artifact_type_filter_the_registry_applied_is_trusted(script, connect):
    sbom = referrer("sbom", SPDX)
    script.expect(
        "GET", FILTERED_URL, referrers_page(sbom, **{"OCI-Filters-Applied": "artifactType"})
    )
    client = connect()

    listed = await client.list_referrers("app", SUBJECT, artifact_type=SPDX)

    assert listed is not None
    assert [d.digest for d in listed] == [sbom["digest"]]
    assert script.seen[0].url.params["artifactType"] == SPDX


async def test_an_artifact_type_filter_the_registry_ignored_is_applied_here(script, connect):
    sig, sbom = referrer("sig", SIGSTORE_BUNDLE), referrer("sbom", SPDX)
    script.expect("GET", FILTERED_URL, referrers_page(sig, sbom))  # no OCI-Filters-Applied
    client = connect()

    listed = await client.list_referrers("app", SUBJECT, artifact_type=SPDX)

    assert listed is not None
    assert [d.digest for d in listed] == [sbom["digest"]]


async def test_referrers_are_read_with_a_pull_token(script, connect):
    script.expect("GET", REFERRERS_URL, bearer_challenge("repository:app:pull"))
    script.expect("GET", REALM, token("T1"), params=token_params("repository:app:pull"))
    script.expect("GET", REFERRERS_URL, referrers_page())
    client = connect()

    assert await client.list_referrers("app", SUBJECT) == []
    assert script.seen[2].headers["Authorization"] == "Bearer T1"


async def test_a_503_is_retried_and_an_answer_that_is_no_index_is_a_protocol_error(script, connect):
    script.expect("GET", REFERRERS_URL, httpx.Response(503))
    script.expect(
        "GET",
        REFERRERS_URL,
        httpx.Response(200, json={"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}),
    )
    client = connect()

    with pytest.raises(ProtocolError):
        await client.list_referrers("app", SUBJECT)


# -- manifests know their subject and artifact type -----------------------------------


def test_a_referrer_manifest_knows_its_subject_and_artifact_type():
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SPDX,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256(b"{}"),
                "size": 2,
            },
            "layers": [{"mediaType": SPDX, "digest": sha256(b"sbom"), "size": 4}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": SUBJECT, "size": 26},
        }
    ).encode()

    manifest = parse_manifest(raw, None, "test")

    assert isinstance(manifest, ImageManifest)
    assert manifest.artifact_type == SPDX
    assert manifest.subject is not None
    assert manifest.subject.digest == SUBJECT
    assert manifest.raw == raw


def test_a_subject_this_code_cannot_read_does_not_stop_the_copy():
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": "sha512:" + "a" * 128, "size": 1},
        }
    ).encode()

    index = parse_manifest(raw, None, "test")

    assert isinstance(index, ImageIndex)
    assert index.subject is None


# -- discovery at a source that has the API --------------------------------------------


class Unordered:
    """Expected requests in any order, each answered once; anything else fails the test."""

    def __init__(self) -> None:
        self.expected: dict[tuple[str, str], httpx.Response] = {}
        self.unexpected: list[str] = []

    def expect(self, method: str, url: str, answer: httpx.Response) -> None:
        self.expected[(method, url)] = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.expected.pop((request.method, str(request.url)), None)
        if answer is None:
            self.unexpected.append(f"{request.method} {request.url}")
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        return answer

    def check_finished(self) -> None:
        assert not self.unexpected, self.unexpected
        assert not self.expected, f"expected requests never sent: {list(self.expected)}"


async def test_with_the_api_the_index_and_each_child_are_asked_and_no_fallback_tag_is_probed(
    connect,
):
    raw = index_manifest(OCI_INDEX)
    index = parse_manifest(raw, OCI_INDEX, "test")
    assert isinstance(index, ImageIndex)
    root = Digest(index.digest)
    (child,) = (d.digest for d in index.manifests)
    sbom = referrer("sbom", SPDX)
    source = Unordered()
    source.expect("GET", f"{BASE}/v2/app/manifests/{root}", manifest_answer(raw, OCI_INDEX))
    source.expect("GET", f"{BASE}/v2/app/referrers/{root}", referrers_page())
    source.expect("GET", f"{BASE}/v2/app/referrers/{child}", referrers_page(sbom))
    for subject in (root, child):
        for suffix in ("sig", "att", "sbom"):
            url = f"{BASE}/v2/app/manifests/{fallback_tag(subject)}.{suffix}"
            source.expect("HEAD", url, httpx.Response(404))
    client = connect(source, login=None)

    result = await copy_referrers(
        client, ImageReference(HOST, "app", tag="1.0"), root, [], copy=_never_copy
    )

    source.check_finished()
    assert result.ok, result
    assert result.source_has_api is True
    assert [(r.subject, r.reference) for r in result.found] == [(child, sbom["digest"])]


async def _never_copy(*_args: object) -> object:
    raise AssertionError("nothing is copied without destinations")


def test_the_fallback_tag_of_a_digest():
    assert fallback_tag(SUBJECT) == "sha256-" + SUBJECT.removeprefix("sha256:")
