"""Reading the source image: the root manifest and, for an index, every child."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.manifest import Descriptor, ImageIndex, ImageManifest, Manifest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient

__all__ = ["SourceImage", "read_children"]

_MAX_DEPTH = 4  # an index of indexes is legal; deeper nesting is a broken image


@dataclass(frozen=True, slots=True)
class SourceImage:
    """Everything to copy: blobs (unique, in order) and manifests in push order."""

    root: Manifest
    children: tuple[Manifest, ...]  # children before their parents; root excluded
    blobs: tuple[Descriptor, ...]

    @property
    def digest(self) -> Digest:
        return self.root.digest


async def _children_of(
    client: RegistryClient, repository: str, index: ImageIndex, depth: int
) -> list[Manifest]:
    """Children of ``index`` in push order: grandchildren before children."""
    if depth > _MAX_DEPTH:
        return []
    fetched = await asyncio.gather(
        *(client.get_manifest(repository, child.digest) for child in index.manifests)
    )
    ordered: list[Manifest] = []
    for child in fetched:
        if isinstance(child, ImageIndex):
            ordered.extend(await _children_of(client, repository, child, depth + 1))
        ordered.append(child)
    return ordered


async def read_children(
    client: RegistryClient, reference: ImageReference, root: Manifest
) -> SourceImage:
    """Complete ``root`` into a SourceImage by fetching what an index points to."""
    children: list[Manifest] = []
    if isinstance(root, ImageIndex):
        children = await _children_of(client, reference.repository, root, 1)
    seen: set[Digest] = set()
    blobs: list[Descriptor] = []
    for manifest in (*children, root):
        if isinstance(manifest, ImageManifest):
            for blob in manifest.blobs:
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    blobs.append(blob)
    return SourceImage(root, tuple(dict.fromkeys(children)), tuple(blobs))
