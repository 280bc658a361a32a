"""Mapping a source image to its OCIR destinations, one per configured region.

``OCI_REPO_REGION_KEY=mel,syd`` and namespace ``ns`` send ``app:1.0`` to
``mel.ocir.io/ns/app:1.0`` and ``syd.ocir.io/ns/app:1.0``.  A region's host
can be overridden (tests, private endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ecr_ocir_sync.oci.reference import ImageReference, check_repository

__all__ = ["ocir_host", "region_destinations"]


def ocir_host(region_key: str) -> str:
    """``mel`` → ``mel.ocir.io``; a full region identifier works the same way."""
    return f"{region_key.strip().lower()}.ocir.io"


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
