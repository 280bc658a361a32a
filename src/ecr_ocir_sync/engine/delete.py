"""Propagating a deletion: remove a tag's manifest at every destination."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.result import CopyResult, DestinationResult
from ecr_ocir_sync.errors import SyncError

__all__ = ["delete_image"]


async def _delete_one(destination: Destination) -> DestinationResult:
    started = time.monotonic()
    result = DestinationResult(destination.key)
    reference = destination.reference
    try:
        current = await destination.client.manifest_digest(
            reference.repository, reference.tag or reference.manifest_reference
        )
        if current is None:
            result.detail = "already absent"
        elif reference.tag and reference.digest and current != reference.digest:
            # The tag moved on since the deletion was asked for: keep the newer image.
            result.detail = f"tag now points at {current}; left in place"
        else:
            await destination.client.delete_manifest(reference.repository, current)
            result.detail = f"deleted {current}"
    except SyncError as error:
        result.fail(error, retryable=error.retryable)
    result.seconds = time.monotonic() - started
    return result


async def delete_image(source: str, destinations: Sequence[Destination]) -> CopyResult:
    """Delete at each destination the manifest its tag (or digest) resolves to there.

    With both a tag and a digest, the manifest is deleted only while the tag
    still points at that digest, so a stale deletion never removes a newer push.
    """
    started = time.monotonic()
    results = await asyncio.gather(*(_delete_one(d) for d in destinations))
    return CopyResult(source=source, seconds=time.monotonic() - started, destinations=list(results))
