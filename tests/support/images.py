"""Building test images and pushing them with a small, independent HTTP pusher.

The pusher is deliberately not the project's client: it is the simplest
monolithic upload the distribution spec allows, so the engine under test is
never checked against itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

import httpx

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_bytes(size: int, seed: int | None = None) -> bytes:
    """A gzip'd tar holding one file of ``size`` random (incompressible) bytes."""
    payload = os.urandom(size) if seed is None else _seeded(size, seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"file-{seed}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(buffer.getvalue(), compresslevel=1, mtime=0)


def _seeded(size: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass
class Image:
    """A single-platform image: config + layers, and its manifest bytes."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def size(self) -> int:
        return sum(len(blob) for blob in self.blobs.values())


def build_image(
    layers: list[bytes], *, oci: bool = False, arch: str = "amd64", label: str = ""
) -> Image:
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"test": label}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(b)) for b in layers]},
        }
    ).encode()
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [{"mediaType": layer_type, "digest": sha256(b), "size": len(b)} for b in layers],
    }
    blobs = {sha256(config): config, **{sha256(b): b for b in layers}}
    return Image(json.dumps(manifest, indent=3).encode(), manifest["mediaType"], blobs)


@dataclass
class Index:
    """A multi-platform index and its children."""

    manifest: bytes
    media_type: str
    children: list[Image]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def build_index(children: list[tuple[Image, str]], *, oci: bool = True) -> Index:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX if oci else DOCKER_LIST,
        "manifests": [
            {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": len(child.manifest),
                "platform": {"os": "linux", "architecture": arch},
            }
            for child, arch in children
        ],
    }
    return Index(json.dumps(document).encode(), document["mediaType"], [c for c, _ in children])


class Pusher:
    """Pushes blobs and manifests to a registry with monolithic uploads."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, auth=auth, timeout=60)

    def blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        if self.http.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
            return digest
        started = self.http.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = self.http.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        return digest

    def manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> None:
        answer = self.http.put(
            f"/v2/{repository}/manifests/{reference}",
            content=raw,
            headers={"Content-Type": media_type},
        )
        assert answer.status_code == 201, answer.text

    def image(self, repository: str, tag: str | None, image: Image) -> str:
        for data in image.blobs.values():
            self.blob(repository, data)
        self.manifest(repository, tag or image.digest, image.manifest, image.media_type)
        return image.digest

    def index(self, repository: str, tag: str, index: Index) -> str:
        for child in index.children:
            self.image(repository, None, child)
        self.manifest(repository, tag, index.manifest, index.media_type)
        return index.digest

    def close(self) -> None:
        self.http.close()
