"""A write OCIR refuses because a limit is reached fails that region for good, not forever
retried, and says which limit and what to do; the other regions carry on.

A :class:`RefusingFront` stands in front of a real registry and answers one kind of
request with the refusal; everything else reaches the registry.
"""

from __future__ import annotations

import httpx
import pytest

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.errors import (
    AuthError,
    QuotaExceededError,
    QuotaLimit,
    RateLimitedError,
)
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.registry.transport import raise_for_status
from tests.conftest import FAST_RETRY, make_registries
from tests.support import skopeo
from tests.support.faults import Refusal, RefusingFront
from tests.support.images import build_image, layer_bytes
from tests.support.registry import RegistryServer

STORAGE_FULL = Refusal(
    403, {"errors": [{"code": "DENIED", "message": "Storage limit exceeded for the tenancy"}]}
)
IMAGES_FULL = Refusal(
    429,
    {"errors": [{"code": "TOOMANYREQUESTS", "message": "Image count limit reached in repository"}]},
)


def refusing(method: str, path_part: str, refusal: Refusal):
    def refuse(seen_method: str, path: str) -> Refusal | None:
        return refusal if seen_method == method and path_part in path else None

    return refuse


@pytest.fixture
def start_front(start_registry):
    behind = start_registry("behind-front")
    fronts: list[RefusingFront] = []

    def start(method: str, path_part: str, refusal: Refusal) -> RefusingFront:
        front = RefusingFront(behind.port, refusing(method, path_part, refusal)).start()
        fronts.append(front)
        return front

    yield start
    for front in fronts:
        front.stop()


async def copy_to(source: RegistryServer, front: RefusingFront, other: RegistryServer):
    registries = make_registries(source.host, front.host, other.host, logins={})
    try:
        src = parse_reference(f"{source.host}/team/app:1.0")
        destinations = [
            Destination(registries.client(host), parse_reference(f"{host}/ns/team/app"), key)
            for key, host in (("full", front.host), ("fine", other.host))
        ]
        return await copy_image(
            registries.client(src.registry),
            src,
            destinations,
            options=CopyOptions(retry=FAST_RETRY),
            progress=lambda _event: None,
        )
    finally:
        await registries.aclose()


@pytest.mark.parametrize(
    ("method", "path_part", "refusal", "words"),
    [
        ("POST", "/blobs/uploads/", STORAGE_FULL, "storage limit is reached"),
        ("PUT", "/manifests/", IMAGES_FULL, "image-count limit is reached"),
    ],
    ids=["blob-upload-refused-for-storage", "manifest-put-refused-for-images"],
)
async def test_a_quota_refusal_fails_its_region_for_good_while_the_other_region_succeeds(
    source, dest_open, push_source, start_front, method, path_part, refusal, words
):
    image = build_image([layer_bytes(120_000, 41), layer_bytes(30_000, 42)])
    push_source.image("team/app", "1.0", image)
    front = start_front(method, path_part, refusal)

    result = await copy_to(source, front, dest_open)

    outcomes = {d.destination: d for d in result.destinations}
    full, fine = outcomes["full"], outcomes["fine"]
    assert not full.ok
    assert not full.retryable
    assert words in (full.error or "")
    assert "Raise the limit" in (full.error or "")
    assert "free room" in (full.error or "")
    # Never retried: at most one refused request per blob (config and two layers), each
    # of which would otherwise be tried FAST_RETRY.attempts times.
    assert 1 <= len(front.refused) <= 3
    assert fine.ok, fine
    assert skopeo.manifest_digest(f"{dest_open.host}/ns/team/app:1.0") == image.digest


def answer(status: int, code: str, message: str) -> httpx.Response:
    request = httpx.Request("PUT", "http://127.0.0.1/v2/ns/app/manifests/1.0")
    return httpx.Response(
        status, json={"errors": [{"code": code, "message": message}]}, request=request
    )


@pytest.mark.parametrize(
    ("status", "code", "message", "limit"),
    [
        (403, "DENIED", "storage quota exceeded", QuotaLimit.STORAGE),
        (403, "DENIED", "repository count limit reached", QuotaLimit.REPOSITORIES),
        (429, "TOOMANYREQUESTS", "image limit exceeded for repository", QuotaLimit.IMAGES),
        (400, "LimitExceeded", "Fulfilling this request exceeds the limit", QuotaLimit.UNKNOWN),
        (507, "", "", QuotaLimit.STORAGE),
    ],
)
def test_refusals_naming_a_reached_limit_are_quota_errors(status, code, message, limit):
    with pytest.raises(QuotaExceededError) as raised:
        raise_for_status(answer(status, code, message), "writing manifest")

    assert raised.value.limit is limit
    assert not raised.value.retryable


def test_a_denial_without_a_limit_stays_an_authorisation_error():
    with pytest.raises(AuthError):
        raise_for_status(
            answer(403, "DENIED", "requested access to the resource is denied"), "writing"
        )


def test_a_rate_limit_stays_retryable_even_when_it_says_limit_exceeded():
    with pytest.raises(RateLimitedError) as raised:
        raise_for_status(answer(429, "TOOMANYREQUESTS", "rate limit exceeded"), "writing")

    assert raised.value.retryable
