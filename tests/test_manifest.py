"""Manifest parsing keeps the raw bytes and understands all four media types."""

from __future__ import annotations

import json

import pytest

from ecr_ocir_sync.errors import IntegrityError, ProtocolError
from ecr_ocir_sync.oci.digest import DigestVerifier, digest_of
from ecr_ocir_sync.oci.manifest import ImageIndex, ImageManifest, parse_manifest
from ecr_ocir_sync.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def descriptor(media_type: str, digest: str, size: int, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_an_image_manifest_lists_config_and_layers_as_blobs(media_type):
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": descriptor("c", D1, 10),
            "layers": [descriptor("l", D2, 20), descriptor("l", D3, 30)],
        },
        indent=7,  # odd formatting: the digest is of these bytes, not of a re-encoding
    ).encode()

    manifest = parse_manifest(raw, None, "test")

    assert isinstance(manifest, ImageManifest)
    assert manifest.raw == raw
    assert manifest.digest == digest_of(raw)
    assert [b.digest for b in manifest.blobs] == [D1, D2, D3]


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST_LIST, OCI_INDEX])
def test_an_index_lists_its_children_with_platforms(media_type):
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                descriptor(
                    OCI_MANIFEST,
                    D1,
                    5,
                    platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
                ),
            ],
        }
    ).encode()

    index = parse_manifest(raw, None, "test")

    assert isinstance(index, ImageIndex)
    assert index.manifests[0].platform == "linux/arm64/v8"


def test_an_oci_document_without_media_type_is_known_by_its_shape_or_header():
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()

    assert isinstance(parse_manifest(raw, None, "test"), ImageIndex)
    assert parse_manifest(raw, OCI_INDEX, "test").media_type == OCI_INDEX


def test_foreign_layers_with_urls_are_not_blobs_to_copy():
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor("c", D1, 1),
            "layers": [descriptor("foreign", D2, 2, urls=["https://example.invalid/l"])],
        }
    ).encode()

    manifest = parse_manifest(raw, None, "test")

    assert isinstance(manifest, ImageManifest)
    assert [b.digest for b in manifest.blobs] == [D1]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "schema 1"),
        (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), "unsupported"),
        (
            json.dumps(
                {"mediaType": OCI_MANIFEST, "config": {"digest": D1, "size": 1}, "layers": []}
            ).encode(),
            "lacks 'mediaType'",
        ),
    ],
)
def test_malformed_manifests_are_protocol_errors_saying_why(raw, says):
    with pytest.raises(ProtocolError, match=says):
        parse_manifest(raw, None, "reading manifest 1 from r.io/app")


def test_the_verifier_accepts_exact_bytes():
    data = b"hello world"
    verifier = DigestVerifier(digest_of(data), len(data), "r.io/app")
    verifier.update(data[:5])
    verifier.update(data[5:])
    verifier.verify()


def test_the_verifier_stops_a_source_sending_more_than_declared():
    verifier = DigestVerifier(digest_of(b"abc"), 3, "r.io/app")
    with pytest.raises(IntegrityError, match="more than the 3 bytes"):
        verifier.update(b"abcd")


@pytest.mark.parametrize(("data", "says"), [(b"ab", "got 2 bytes"), (b"abd", "corrupt")])
def test_the_verifier_rejects_short_or_different_bytes_at_eof(data, says):
    verifier = DigestVerifier(digest_of(b"abc"), 3, "r.io/app")
    verifier.update(data)
    with pytest.raises(IntegrityError, match=says):
        verifier.verify()
