"""Signatures, attestations and SBOMs follow the image; real registries, skopeo checks.

Debian's registry 2.8 has no referrers API, so these registries exercise the
tag schemas (cosign's tags and the OCI 1.1 fallback tag).  Where a test needs a
source that has the API, the source client's transport answers
``/v2/<name>/referrers/<digest>`` from a table and sends everything else to the
real registry.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.referrers import ReferrersResult, copy_referrers
from ecr_ocir_sync.engine.result import DestinationResult
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.credentials import Credentials, StaticCredentials
from tests.conftest import FAST_RETRY, PASSWORD, USER
from tests.support import skopeo
from tests.support.artifacts import (
    SPDX,
    SigningKey,
    attestation,
    fallback_index,
    oci_referrer,
    sbom,
    signature,
    tag_for,
    verify_signatures,
)
from tests.support.images import OCI_INDEX, Image, build_image, build_index, layer_bytes
from tests.support.registry import RegistryServer

CREDS = f"{USER}:{PASSWORD}"
COPY = functools.partial(copy_image, options=CopyOptions(retry=FAST_RETRY))
SOURCE_REPO, DEST_REPO = "team/app", "ns/team/app"
CYCLONEDX = "application/vnd.cyclonedx+json"


class Loopback(httpx.AsyncBaseTransport):
    """Plain HTTP to a loopback registry that records every request, refuses the ones
    named in ``refuse`` (method, path → status), and, given ``referrers`` (digest →
    descriptors), answers the referrers API the registry itself lacks."""

    def __init__(
        self,
        *,
        refuse: dict[tuple[str, str], int] | None = None,
        referrers: dict[str, list[dict[str, object]]] | None = None,
    ) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str]] = []
        self.refuse = refuse or {}
        self.referrers = referrers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        status = self.refuse.get((request.method, path))
        if status is not None:
            body = {"errors": [{"code": "DENIED", "message": "refused by the test"}]}
            return httpx.Response(status, json=body)
        if self.referrers is not None and "/referrers/" in path:
            listed = self.referrers.get(path.rsplit("/", 1)[1], [])
            document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}
            return httpx.Response(200, json=document, headers={"Content-Type": OCI_INDEX})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


Connect = Callable[..., RegistryClient]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """RegistryClients over a Loopback transport each (the login is used where challenged)."""
    pools: list[httpx.AsyncClient] = []

    def make(server: RegistryServer, transport: Loopback | None = None) -> RegistryClient:
        http = httpx.AsyncClient(transport=transport or Loopback(), follow_redirects=False)
        pools.append(http)
        login = StaticCredentials({server.host: Credentials(USER, PASSWORD)})
        return RegistryClient(server.host, http, login, insecure=True, retry=FAST_RETRY)

    yield make
    for http in pools:
        await http.aclose()


def source_ref(source: RegistryServer, tag: str = "1.0") -> ImageReference:
    return ImageReference(source.host, SOURCE_REPO, tag=tag)


def destinations(*pairs: tuple[RegistryClient, RegistryServer]) -> list[Destination]:
    return [Destination(c, ImageReference(s.host, DEST_REPO, tag="1.0")) for c, s in pairs]


def creds(server: RegistryServer, dest_basic: RegistryServer) -> str | None:
    return CREDS if server is dest_basic else None


async def push_and_copy_image(
    push_source, source_client: RegistryClient, source: RegistryServer, dests, image
) -> Digest:
    """The image is at the source and, as the copy path leaves it, at every destination."""
    if isinstance(image, Image):
        push_source.image(SOURCE_REPO, "1.0", image)
    else:
        push_source.index(SOURCE_REPO, "1.0", image)
    copied = await COPY(source_client, source_ref(source), dests)
    assert copied.ok, copied
    return Digest(image.digest)


def blob_reader(server: RegistryServer, auth: tuple[str, str] | None) -> Callable[[str], bytes]:
    def read(digest: str) -> bytes:
        answer = httpx.get(f"{server.url}/v2/{DEST_REPO}/blobs/{digest}", auth=auth)
        assert answer.status_code == 200, answer.text
        return answer.content

    return read


# -- the cosign tag schema ------------------------------------------------------------


@pytest.mark.parametrize("oci", [True, False], ids=["oci-sig", "docker-sig"])
async def test_cosign_signature_attestation_and_sbom_land_with_their_digests_in_both_regions(
    oci, source, dest_open, dest_basic, push_source, connect
):
    key = SigningKey.generate()
    src = connect(source)
    dests = destinations((connect(dest_open), dest_open), (connect(dest_basic), dest_basic))
    image = build_image([layer_bytes(50_000, 1)], oci=True)
    digest = await push_and_copy_image(push_source, src, source, dests, image)
    name = f"{source.host}/{SOURCE_REPO}"
    artifacts = {
        tag_for(digest, "sig"): signature(name, digest, key, oci=oci),
        tag_for(digest, "att"): attestation(name, digest, key),
        tag_for(digest, "sbom"): sbom("app"),
    }
    for tag, artifact in artifacts.items():
        push_source.image(SOURCE_REPO, tag, artifact)

    result = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert result.ok, result
    assert result.source_has_api is False
    assert sorted(r.reference for r in result.found) == sorted(artifacts)
    for outcome in result.destinations:
        assert sorted(outcome.copied) == sorted(artifacts)
        assert outcome.counts.manifests_pushed == 3
    for server in (dest_open, dest_basic):
        login = creds(server, dest_basic)
        for tag, artifact in artifacts.items():
            landed = skopeo.raw_manifest(f"{server.host}/{DEST_REPO}:{tag}", login)
            assert landed == artifact.manifest
        # What `cosign verify --key` checks (short of the transparency log), at the region.
        auth = (USER, PASSWORD) if login else None
        assert (
            verify_signatures(
                artifacts[tag_for(digest, "sig")].manifest, blob_reader(server, auth), key, digest
            )
            == 1
        )


async def test_signatures_of_an_index_and_of_each_signed_platform_come_along(
    source, dest_open, push_source, connect
):
    key = SigningKey.generate()
    src = connect(source)
    dests = destinations((connect(dest_open), dest_open))
    amd64 = build_image([layer_bytes(20_000, 2)], oci=True, arch="amd64")
    arm64 = build_image([layer_bytes(20_000, 3)], oci=True, arch="arm64")
    index = build_index([(amd64, "amd64"), (arm64, "arm64")])
    digest = await push_and_copy_image(push_source, src, source, dests, index)
    name = f"{source.host}/{SOURCE_REPO}"
    # `cosign sign --recursive`: the index and each platform; here only arm64 was.
    signed = {
        digest: signature(name, digest, key),
        arm64.digest: signature(name, arm64.digest, key),
    }
    for subject, artifact in signed.items():
        push_source.image(SOURCE_REPO, tag_for(subject, "sig"), artifact)

    result = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert result.ok, result
    assert [r.subject for r in result.found] == [digest, arm64.digest]
    for subject, artifact in signed.items():
        tag = tag_for(subject, "sig")
        assert skopeo.manifest_digest(f"{dest_open.host}/{DEST_REPO}:{tag}") == artifact.digest


async def test_an_image_without_referrers_costs_only_the_discovery_requests(
    source, dest_open, dest_basic, push_source, connect
):
    seen_source, seen_open, seen_basic = Loopback(), Loopback(), Loopback()
    src = connect(source, seen_source)
    dests = destinations(
        (connect(dest_open, seen_open), dest_open), (connect(dest_basic, seen_basic), dest_basic)
    )
    image = build_image([layer_bytes(10_000, 4)])
    digest = await push_and_copy_image(push_source, src, source, dests, image)
    for transport in (seen_source, seen_open, seen_basic):
        transport.requests.clear()

    result = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert result.ok, result
    assert result.found == []
    manifests = f"/v2/{SOURCE_REPO}/manifests"
    hexdigest = digest.split(":")[1]
    assert sorted(seen_source.requests) == sorted(
        [
            ("GET", f"{manifests}/{digest}"),  # is it an index? (children unknown)
            ("GET", f"/v2/{SOURCE_REPO}/referrers/{digest}"),  # 404: no referrers API
            ("HEAD", f"{manifests}/sha256-{hexdigest}.sig"),
            ("HEAD", f"{manifests}/sha256-{hexdigest}.att"),
            ("HEAD", f"{manifests}/sha256-{hexdigest}.sbom"),
            ("HEAD", f"{manifests}/sha256-{hexdigest}"),  # the OCI 1.1 fallback tag
        ]
    )
    assert seen_open.requests == []
    assert seen_basic.requests == []

    seen_source.requests.clear()
    told = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY, children=())

    assert told.ok, told
    assert len(seen_source.requests) == 5  # the caller knew there are no children


async def test_a_referrer_failing_at_one_region_is_reported_for_that_region_only(
    source, dest_open, dest_basic, push_source, connect
):
    key = SigningKey.generate()
    src = connect(source)
    image = build_image([layer_bytes(10_000, 5)])
    digest = Digest(image.digest)
    att = tag_for(digest, "att")
    refusing = Loopback(refuse={("PUT", f"/v2/{DEST_REPO}/manifests/{att}"): 403})
    dests = destinations(
        (connect(dest_open), dest_open), (connect(dest_basic, refusing), dest_basic)
    )
    await push_and_copy_image(push_source, src, source, dests, image)
    name = f"{source.host}/{SOURCE_REPO}"
    push_source.image(SOURCE_REPO, tag_for(digest, "sig"), signature(name, digest, key))
    push_source.image(SOURCE_REPO, att, attestation(name, digest, key))
    push_source.image(SOURCE_REPO, tag_for(digest, "sbom"), sbom("app"))

    result = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert not result.ok
    assert result.error is None  # the source was fine
    fine, refused = result.destinations
    assert fine.ok, fine
    assert len(fine.copied) == 3
    assert sorted(refused.copied) == sorted([tag_for(digest, "sig"), tag_for(digest, "sbom")])
    (error,) = refused.errors
    assert error.startswith(f"{att}: ")
    assert "403" in error
    assert not refused.retryable
    assert skopeo.exists(f"{dest_open.host}/{DEST_REPO}:{att}")
    assert not skopeo.exists(f"{dest_basic.host}/{DEST_REPO}:{att}", CREDS)
    # Recorded into the image's results, only the refusing region fails, saying why.
    results = [DestinationResult(d.name) for d in dests]
    result.record(results)
    assert results[0].ok
    assert not results[1].ok
    assert att in (results[1].error or "")
    assert not results[1].retryable


async def test_when_discovery_fails_at_the_source_every_region_says_so(
    source, dest_open, push_source, connect
):
    image = build_image([layer_bytes(10_000, 6)])
    digest = Digest(image.digest)
    sig = tag_for(digest, "sig")
    src = connect(source, Loopback(refuse={("HEAD", f"/v2/{SOURCE_REPO}/manifests/{sig}"): 503}))
    dests = destinations((connect(dest_open), dest_open))
    await push_and_copy_image(push_source, src, source, dests, image)

    result = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert not result.ok
    assert "503" in (result.error or "")
    (outcome,) = result.destinations
    assert outcome.retryable
    assert outcome.errors[0].startswith("finding referrers at the source: ")


# -- OCI 1.1 referrers ------------------------------------------------------------------


def oci_artifacts(image: Image) -> list:
    return [
        oci_referrer(image, SPDX, b'{"spdxVersion":"SPDX-2.3"}', "2024-05-01T00:00:00Z"),
        oci_referrer(image, CYCLONEDX, b'{"bomFormat":"CycloneDX"}', "2024-05-02T00:00:00Z"),
    ]


async def test_a_fallback_tag_at_a_source_without_the_api_is_copied_as_it_is(
    source, dest_open, dest_basic, push_source, connect
):
    src = connect(source)
    dests = destinations((connect(dest_open), dest_open), (connect(dest_basic), dest_basic))
    image = build_image([layer_bytes(10_000, 7)], oci=True)
    digest = await push_and_copy_image(push_source, src, source, dests, image)
    referrers = oci_artifacts(image)
    index = fallback_index(referrers)
    push_source.index(SOURCE_REPO, tag_for(digest), index)  # pushes each referrer by digest

    result = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert result.ok, result
    assert [r.reference for r in result.found] == [tag_for(digest)]
    for server in (dest_open, dest_basic):
        login = creds(server, dest_basic)
        tag = f"{server.host}/{DEST_REPO}:{tag_for(digest)}"
        assert skopeo.manifest_digest(tag, login) == index.digest
        for referrer in referrers:
            at = f"{server.host}/{DEST_REPO}@{referrer.digest}"
            assert skopeo.manifest_digest(at, login) == referrer.digest


async def test_referrers_the_api_lists_are_copied_by_digest_and_indexed_in_the_fallback_tag(
    source, dest_open, dest_basic, push_source, connect
):
    image = build_image([layer_bytes(10_000, 8)], oci=True)
    digest = Digest(image.digest)
    referrers = oci_artifacts(image)
    table: dict[str, list[dict[str, object]]] = {digest: [r.descriptor() for r in referrers[:1]]}
    src = connect(source, Loopback(referrers=table))
    dests = destinations((connect(dest_open), dest_open), (connect(dest_basic), dest_basic))
    await push_and_copy_image(push_source, src, source, dests, image)
    for referrer in referrers:
        push_source.image(SOURCE_REPO, None, referrer.image)

    first = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)

    assert first.ok, first
    assert first.source_has_api is True
    assert [r.reference for r in first.found] == [referrers[0].digest]
    for outcome in first.destinations:
        assert outcome.copied == [referrers[0].digest]
        assert outcome.fallback_tags == [tag_for(digest)]

    # A second referrer appears; the fallback index grows and keeps the first.
    table[digest].append(referrers[1].descriptor())
    second = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)
    assert second.ok, second
    # Nothing new: the fallback index is not written again.
    third = await copy_referrers(src, source_ref(source), digest, dests, copy=COPY)
    assert third.ok, third
    assert [o.fallback_tags for o in third.destinations] == [[], []]
    assert [o.counts.manifests_pushed for o in third.destinations] == [0, 0]

    for server in (dest_open, dest_basic):
        login = creds(server, dest_basic)
        listed = json.loads(
            skopeo.raw_manifest(f"{server.host}/{DEST_REPO}:{tag_for(digest)}", login)
        )
        assert listed["mediaType"] == OCI_INDEX
        assert listed["manifests"] == [r.descriptor() for r in referrers]
        for referrer in referrers:
            at = f"{server.host}/{DEST_REPO}@{referrer.digest}"
            assert skopeo.raw_manifest(at, login) == referrer.image.manifest


async def test_results_serialise_for_the_job_record(source, dest_open, push_source, connect):
    src = connect(source)
    dests = destinations((connect(dest_open), dest_open))
    image = build_image([layer_bytes(10_000, 9)])
    digest = await push_and_copy_image(push_source, src, source, dests, image)
    push_source.image(SOURCE_REPO, tag_for(digest, "sbom"), sbom("app"))

    result: ReferrersResult = await copy_referrers(
        src, source_ref(source), digest, dests, copy=COPY
    )

    document = json.loads(json.dumps(result.to_json()))
    assert document["ok"] is True
    assert document["found"] == [tag_for(digest, "sbom")]
    assert document["destinations"][0]["copied"] == [tag_for(digest, "sbom")]
