"""Propagating a deletion: remove a tag (or an untagged image) at every destination.

ECR untags: deleting ``latest`` leaves ``1.0`` in place when both point at the
same image.  So a tag is deleted alone where the registry can (the tag DELETE
of OCI distribution 1.1).  Where it cannot, deleting the tag means deleting its
manifest, which removes every other tag pointing at it; then the manifest is
kept while another tag that the source still holds shares it, and the result
says so (``kept: shared with 1.0``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from ecr_ocir_sync.engine.destination import Destination, Recheck
from ecr_ocir_sync.engine.referrers import is_referrer_tag
from ecr_ocir_sync.engine.result import CopyResult, DestinationResult
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.digest import Digest

__all__ = ["SourceHolds", "delete_image"]

#: Whether the source still holds ``tag`` at ``digest``; may raise SyncError.
SourceHolds = Callable[[str, Digest], Awaitable[bool]]

_PROBES = 8  # sibling tags resolved at once at one destination


async def _held_anyway(_tag: str, _digest: Digest) -> bool:
    """Without a source to ask (the CLI), every sibling at the destination counts."""
    return True


async def _shared_with(
    destination: Destination, tag: str, digest: Digest, source_holds: SourceHolds
) -> str | None:
    """Another tag at ``destination`` on ``digest`` that the source still holds, if any."""
    client, repository = destination.client, destination.reference.repository
    others = [t for t in await client.list_tags(repository) if t != tag and not is_referrer_tag(t)]
    slots = asyncio.Semaphore(_PROBES)

    async def resolve(other: str) -> Digest | None:
        async with slots:
            return await client.manifest_digest(repository, other)

    resolved = await asyncio.gather(*(resolve(other) for other in others))
    for other, at in sorted(zip(others, resolved, strict=True)):
        if at == digest and await source_holds(other, digest):
            return other
    return None


async def _delete_tag(
    destination: Destination, tag: str, current: Digest, source_holds: SourceHolds
) -> str:
    """Delete ``tag`` and nothing else that the source still holds; returns the detail."""
    client, repository = destination.client, destination.reference.repository
    if await client.delete_tag(repository, tag):
        return f"deleted tag {tag} (was {current})"
    sibling = await _shared_with(destination, tag, current, source_holds)
    if sibling is not None:
        return f"kept: shared with {sibling}"
    await client.delete_manifest(repository, current)
    return f"deleted {current}"


async def _delete_one(
    destination: Destination, source_holds: SourceHolds, recheck: Recheck | None
) -> DestinationResult:
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
        elif (moot := await recheck() if recheck is not None else None) is not None:
            result.supersede(moot)
        elif reference.tag:
            result.detail = await _delete_tag(destination, reference.tag, current, source_holds)
        else:
            await destination.client.delete_manifest(reference.repository, current)
            result.detail = f"deleted {current}"
    except SyncError as error:
        result.fail(error, retryable=error.retryable)
    result.seconds = time.monotonic() - started
    return result


async def delete_image(
    source: str,
    destinations: Sequence[Destination],
    *,
    source_holds: SourceHolds = _held_anyway,
    recheck: Recheck | None = None,
) -> CopyResult:
    """Delete at each destination the tag (or untagged digest) its reference names.

    With both a tag and a digest, the tag is deleted only while it still points
    at that digest, so a stale deletion never removes a newer push.  ``recheck``
    is asked right before each destination's delete, ``source_holds`` whether a
    sibling tag sharing the manifest is still wanted.
    """
    started = time.monotonic()
    results = await asyncio.gather(*(_delete_one(d, source_holds, recheck) for d in destinations))
    return CopyResult(source=source, seconds=time.monotonic() - started, destinations=list(results))
