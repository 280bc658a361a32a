"""Mapping a source image to its OCIR destinations, one per configured region.

``OCI_REPO_REGION_KEY=mel,syd`` and namespace ``ns`` send ``app:1.0`` to
``mel.ocir.io/ns/app:1.0`` and ``syd.ocir.io/ns/app:1.0``.  A region's host
can be overridden (tests, private endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ecr_ocir_sync.cloud.ocir_auth import ocir_host
from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.oci.reference import ImageReference, check_repository

__all__ = ["parse_region_keys", "region_destinations"]


def parse_region_keys(text: str) -> list[str]:
    """``"mel, syd"`` → ``["mel", "syd"]``; empty entries and duplicates are errors."""
    keys = [key.strip().lower() for key in text.split(",")]
    if not text.strip() or any(not key for key in keys):
        raise ConfigError(
            f"OCI_REPO_REGION_KEY={text!r}: expected comma-separated region keys, e.g. 'mel,syd'"
        )
    if len(set(keys)) != len(keys):
        raise ConfigError(f"OCI_REPO_REGION_KEY={text!r} names a region twice")
    return keys


def region_destinations(
    source: ImageReference,
    *,
    region_keys: Sequence[str],
    namespace: str,
    endpoints: Mapping[str, str] | None = None,
) -> list[ImageReference]:
    """One destination per region: ``<host>/<namespace>/<source repository>``, same tag."""
    repository = check_repository(f"{namespace}/{source.repository}")
    hosts = endpoints or {}
    return [
        ImageReference(hosts.get(key, ocir_host(key)), repository, source.tag, None)
        for key in region_keys
    ]
