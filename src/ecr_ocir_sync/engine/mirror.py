"""An image and its referrers (signatures, SBOMs, attestations), to every destination.

What the service's jobs and ``ecr-ocir-sync copy`` both do: copy the image,
then, to the destinations where it landed, the artifacts that refer to it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination, Recheck
from ecr_ocir_sync.engine.locations import BlobLocations
from ecr_ocir_sync.engine.progress import ProgressListener, ignore_progress
from ecr_ocir_sync.engine.referrers import copy_referrers
from ecr_ocir_sync.engine.result import CopyResult
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient

__all__ = ["mirror_image"]


async def mirror_image(
    source: RegistryClient,
    reference: ImageReference,
    destinations: Sequence[Destination],
    *,
    referrers: bool = True,
    options: CopyOptions | None = None,
    progress: ProgressListener = ignore_progress,
    locations: BlobLocations | None = None,
    recheck: Recheck | None = None,
) -> CopyResult:
    """Copy the image; then, if ``referrers``, its referrers where the image landed.

    A referrer that fails marks its destination failed (with the reason), so a
    job retries that destination.  Referrer copies report no progress events
    (a display plans one image); their counters reach the result.
    ``recheck`` guards the image's tag writes (see copy_image).
    """
    options = options or CopyOptions()
    locations = locations or BlobLocations()
    result = await copy_image(
        source,
        reference,
        destinations,
        options=options,
        progress=progress,
        locations=locations,
        recheck=recheck,
    )
    landed = [d for d, r in zip(destinations, result.destinations, strict=True) if r.ok]
    if referrers and result.digest is not None and landed:
        found = await copy_referrers(
            source,
            reference,
            Digest(result.digest),
            landed,
            copy=functools.partial(copy_image, options=options, locations=locations),
        )
        found.record(result.destinations)
    return result
