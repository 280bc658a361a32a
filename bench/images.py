"""Generated images, streamed into the source registry without touching local disk.

Each layer is a real tar.gz (one file of random, incompressible bytes; gzip at
level 0, so stored blocks and no CPU spent compressing), produced chunk by
chunk and uploaded in one chunked PATCH while its digest and diff_id are
hashed; the PUT ``?digest=`` then commits it.  Memory stays at one chunk
whatever the layer's size.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

__all__ = ["GIB", "MIB", "ImageSpec", "PushedImage", "push_image"]

MIB = 1024 * 1024
GIB = 1024 * MIB
_CHUNK = 4 * MIB
_BLOCK = 512
_USTAR_MAX = 8**11  # the first size ustar's 11 octal digits cannot hold

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """``layers`` layers of ``layer_payload`` random bytes each."""

    label: str
    layers: int
    layer_payload: int

    @property
    def payload(self) -> int:
        return self.layers * self.layer_payload

    @property
    def repository(self) -> str:
        return f"bench/img-{self.label.lower()}"


@dataclass(frozen=True, slots=True)
class PushedImage:
    spec: ImageSpec
    repository: str
    tag: str
    digest: str  # of the manifest
    size: int  # every blob (config and layers), as stored: what a full copy must move

    @property
    def gib(self) -> float:
        return self.size / GIB


class _Layer:
    """Streams one tar.gz layer, hashing as it goes."""

    def __init__(self, name: str, payload: int) -> None:
        self.name = name
        self.payload = payload
        self.diff_id = hashlib.sha256()  # of the uncompressed tar
        self.digest = hashlib.sha256()  # of the blob as stored
        self.size = 0

    def _tar(self) -> Iterator[bytes]:
        info = tarfile.TarInfo(self.name)
        info.size = self.payload
        info.mode = 0o644
        # ustar's size field ends at 8 GiB - 1; GNU's base-256 size goes beyond.
        big = self.payload >= _USTAR_MAX
        yield info.tobuf(format=tarfile.GNU_FORMAT if big else tarfile.USTAR_FORMAT)
        left = self.payload
        while left > 0:
            chunk = os.urandom(min(_CHUNK, left))
            left -= len(chunk)
            yield chunk
        yield b"\0" * ((-self.payload) % _BLOCK + 2 * _BLOCK)  # padding, end of archive

    def chunks(self) -> Iterator[bytes]:
        gzip = zlib.compressobj(0, zlib.DEFLATED, 31)  # level 0, gzip wrapper
        for piece in self._tar():
            self.diff_id.update(piece)
            out = gzip.compress(piece)
            if out:
                yield self._count(out)
        yield self._count(gzip.flush())

    def _count(self, data: bytes) -> bytes:
        self.digest.update(data)
        self.size += len(data)
        return data


def _location(response: httpx.Response, expected: int) -> str:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return str(response.url.join(response.headers["Location"]))


def _commit(http: httpx.Client, location: str, digest: str, body: bytes = b"") -> None:
    separator = "&" if "?" in location else "?"
    response = http.put(
        f"{location}{separator}digest={digest}",
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"committing {digest}: {response.status_code} {response.text[:500]}")


def _push_layer(http: httpx.Client, repository: str, layer: _Layer) -> None:
    location = _location(http.post(f"/v2/{repository}/blobs/uploads/"), 202)
    response = http.patch(
        location, content=layer.chunks(), headers={"Content-Type": "application/octet-stream"}
    )
    location = _location(response, 202)
    _commit(http, location, "sha256:" + layer.digest.hexdigest())


def _push_blob(http: httpx.Client, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = _location(http.post(f"/v2/{repository}/blobs/uploads/"), 202)
    _commit(http, location, digest, data)
    return digest


def push_image(base_url: str, spec: ImageSpec, tag: str = "v1") -> PushedImage:
    """Generate ``spec``'s layers and push them, a config and a manifest under ``tag``."""
    repository = spec.repository
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(600.0), trust_env=False) as http:
        layers = []
        for index in range(spec.layers):
            layer = _Layer(f"layer-{index}.bin", spec.layer_payload)
            _push_layer(http, repository, layer)
            layers.append(layer)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"bench": spec.label}},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + layer.diff_id.hexdigest() for layer in layers],
                },
            }
        ).encode()
        config_digest = _push_blob(http, repository, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG,
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": DOCKER_LAYER,
                        "digest": "sha256:" + layer.digest.hexdigest(),
                        "size": layer.size,
                    }
                    for layer in layers
                ],
            },
            indent=3,
        ).encode()
        response = http.put(
            f"/v2/{repository}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": DOCKER_MANIFEST},
        )
        if response.status_code != 201:
            raise RuntimeError(f"pushing manifest: {response.status_code} {response.text[:500]}")
    return PushedImage(
        spec=spec,
        repository=repository,
        tag=tag,
        digest="sha256:" + hashlib.sha256(manifest).hexdigest(),
        size=len(config) + sum(layer.size for layer in layers),
    )
