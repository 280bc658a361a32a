"""Image references, tags, repository names and digests follow the distribution grammar."""

from __future__ import annotations

import pytest

from ecr_ocir_sync.errors import InvalidReferenceError
from ecr_ocir_sync.oci.reference import ImageReference, check_tag, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mel.ocir.io/ns/app:1.0", ImageReference("mel.ocir.io", "ns/app", "1.0")),
        ("localhost:5000/app", ImageReference("localhost:5000", "app")),
        ("localhost/app:v1", ImageReference("localhost", "app", "v1")),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app@" + DIGEST,
            ImageReference(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com", "team/app", None, DIGEST
            ),
        ),
        (
            "127.0.0.1:5000/a/b/c:tag@" + DIGEST,
            ImageReference("127.0.0.1:5000", "a/b/c", "tag", DIGEST),
        ),
        ("r.io/a__b/c-d/e.f:_x", ImageReference("r.io", "a__b/c-d/e.f", "_x")),
    ],
)
def test_valid_references_parse_into_their_parts(text, expected):
    assert parse_reference(text) == expected
    assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("app:latest", "must start with the registry host"),
        ("ns/app:latest", "must start with the registry host"),
        ("https://mel.ocir.io/ns/app", "drop the scheme"),
        ("mel.ocir.io/ns/App", "must be lowercase"),
        ("mel.ocir.io/ns//app", "must be lowercase"),
        ("mel.ocir.io/ns/app:-bad", "invalid tag"),
        ("mel.ocir.io/ns/app:" + "x" * 129, "invalid tag"),
        ("mel.ocir.io/ns/app@sha256:abc", "only sha256"),
        ("mel.ocir.io/ns/app@md5:" + "a" * 32, "only sha256"),
        ("mel.ocir.io/ns/app@nonsense", "invalid digest"),
        ("mel.ocir.io/" + "a" * 256, "the limit is 255"),
        ("bad_host.io/app", "invalid registry host"),
    ],
)
def test_invalid_references_are_rejected_saying_why(text, says):
    with pytest.raises(InvalidReferenceError, match=says):
        parse_reference(text)


def test_the_manifest_reference_prefers_the_digest_over_the_tag():
    assert parse_reference(f"r.io/app:1@{DIGEST}").manifest_reference == DIGEST
    assert parse_reference("r.io/app:1").manifest_reference == "1"
    assert parse_reference("r.io/app").manifest_reference == "latest"


@pytest.mark.parametrize("tag", ["é", "日本", "v\u0661", "\uff56\uff11", "\u0661"])
def test_tags_are_ascii_only(tag):
    with pytest.raises(InvalidReferenceError, match="ASCII"):
        check_tag(tag)
