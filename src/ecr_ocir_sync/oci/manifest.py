"""Parsing image manifests and indexes from their raw bytes.

The raw bytes are kept: they are what gets pushed, so every digest survives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ecr_ocir_sync.errors import InvalidReferenceError, ProtocolError
from ecr_ocir_sync.oci.digest import Digest, digest_of, parse_digest
from ecr_ocir_sync.oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST

__all__ = ["Descriptor", "ImageIndex", "ImageManifest", "Manifest", "parse_manifest"]


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content-addressed pointer: media type, digest and size."""

    media_type: str
    digest: Digest
    size: int
    platform: str | None = None
    # Non-distributable ("foreign") layers live at these URLs, not in the registry.
    urls: tuple[str, ...] = ()
    # OCI 1.1: what kind of artifact a referrer is, and its annotations (sorted pairs).
    artifact_type: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """A single-platform image: one config blob and its layers."""

    media_type: str
    digest: Digest
    raw: bytes
    config: Descriptor
    layers: tuple[Descriptor, ...]
    # OCI 1.1: the manifest this one refers to (a signature's image), and its artifact type.
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Every blob a registry must hold before accepting this manifest."""
        return (self.config, *(layer for layer in self.layers if not layer.urls))


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """A multi-platform index / manifest list: pointers to child manifests."""

    media_type: str
    digest: Digest
    raw: bytes
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None


Manifest = ImageManifest | ImageIndex


def _descriptor(data: Any, where: str) -> Descriptor:
    if not isinstance(data, dict):
        raise ProtocolError(f"{where}: descriptor is not a JSON object")
    try:
        media_type = data["mediaType"]
        digest = parse_digest(data["digest"])
        size = data["size"]
    except KeyError as exc:
        raise ProtocolError(f"{where}: descriptor lacks {exc.args[0]!r}") from None
    except InvalidReferenceError as exc:
        raise ProtocolError(f"{where}: {exc.message}") from None
    if not isinstance(media_type, str) or not isinstance(size, int) or size < 0:
        raise ProtocolError(f"{where}: descriptor has a malformed mediaType or size")
    platform = data.get("platform")
    platform_text = None
    if isinstance(platform, dict):
        parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
        platform_text = "/".join(str(part) for part in parts if part)
    urls = data.get("urls") or ()
    artifact_type = data.get("artifactType")
    annotations = data.get("annotations")
    return Descriptor(
        media_type,
        digest,
        size,
        platform_text,
        tuple(str(u) for u in urls),
        artifact_type if isinstance(artifact_type, str) else None,
        tuple(sorted((str(k), str(v)) for k, v in annotations.items()))
        if isinstance(annotations, dict)
        else (),
    )


def _subject(document: dict[str, Any], where: str) -> Descriptor | None:
    """The ``subject`` descriptor; one this code cannot read (say sha512) is not an error:
    the manifest is still copied byte for byte, it is only not known as a referrer."""
    subject = document.get("subject")
    if subject is None:
        return None
    try:
        return _descriptor(subject, where)
    except ProtocolError:
        return None


def _artifact_type(document: dict[str, Any]) -> str | None:
    artifact_type = document.get("artifactType")
    return artifact_type if isinstance(artifact_type, str) else None


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = (content_type or "").split(";")[0].strip()
    if header in MANIFEST_TYPES or header in INDEX_TYPES:
        return header
    # OCI documents may omit mediaType; their shape tells which one they are.
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def parse_manifest(raw: bytes, content_type: str | None, where: str) -> Manifest:
    """Parse ``raw`` as one of the four supported manifest media types."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"{where}: manifest is not a JSON object")
    if document.get("schemaVersion") == 1:
        raise ProtocolError(
            f"{where}: Docker schema 1 manifests are not supported; re-push the image "
            "with a current client"
        )
    media_type = _media_type(document, content_type)
    digest = digest_of(raw)
    if media_type in INDEX_TYPES:
        children = document.get("manifests")
        if not isinstance(children, list):
            raise ProtocolError(f"{where}: index has no 'manifests' list")
        return ImageIndex(
            media_type,
            digest,
            raw,
            tuple(_descriptor(child, where) for child in children),
            _subject(document, where),
            _artifact_type(document),
        )
    if media_type in MANIFEST_TYPES:
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise ProtocolError(f"{where}: manifest has no 'layers' list")
        return ImageManifest(
            media_type,
            digest,
            raw,
            _descriptor(document.get("config"), where),
            tuple(_descriptor(layer, where) for layer in layers),
            _subject(document, where),
            _artifact_type(document),
        )
    raise ProtocolError(
        f"{where}: unsupported manifest media type {media_type!r}; supported are Docker v2 "
        "schema 2 manifest and manifest list, OCI manifest and index"
    )
