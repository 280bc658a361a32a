"""Copy one source image to N destinations.

Order of work: read the root manifest; ask each destination whether it holds
the tag at that digest already (then it is done); read the children of an
index; ask each destination which blobs and child manifests it lacks; move
each missing blob once from the source to every destination lacking it; push
child manifests, then the root under its tag.  A destination that fails is
dropped from the rest of the work; the others go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ecr_ocir_sync.engine.blobs import BlobCopier
from ecr_ocir_sync.engine.destination import Destination, DestinationState, Recheck
from ecr_ocir_sync.engine.fanout import TransferSettings
from ecr_ocir_sync.engine.locations import BlobLocations
from ecr_ocir_sync.engine.progress import (
    BlobDone,
    BlobOutcome,
    BytesRead,
    BytesWritten,
    DestinationPlanned,
    ProgressEvent,
    ProgressListener,
    SourcePlanned,
    ignore_progress,
)
from ecr_ocir_sync.engine.result import CopyResult, DestinationResult
from ecr_ocir_sync.engine.source import SourceImage, read_children
from ecr_ocir_sync.engine.spool import Spool
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.manifest import Descriptor, Manifest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.retry import RetryPolicy

__all__ = ["CopyOptions", "copy_image"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """Knobs of one copy; the defaults suit a pod with a few hundred MiB.

    Without a ``spool`` every blob goes in lockstep (see engine.fanout).
    """

    blob_concurrency: int = 4
    probe_concurrency: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    spool: Spool | None = None
    stall_seconds: float = 300.0
    upload_chunk_bytes: int = 0
    window_bytes: int = 4 * 1024 * 1024  # per blob in flight, shared by its destinations
    checkpoint_bytes: int = 8 * 1024 * 1024  # see TransferSettings

    @property
    def transfer(self) -> TransferSettings:
        return TransferSettings(
            self.retry,
            self.stall_seconds,
            self.upload_chunk_bytes,
            self.window_bytes,
            self.checkpoint_bytes,
        )


def _target_reference(destination: Destination, source: ImageReference) -> str:
    """The tag (or, for an untagged source, the digest) the destination ends up holding."""
    return destination.reference.tag or source.tag or source.digest or "latest"


class _Copy:
    """The state of one copy_image call."""

    def __init__(
        self,
        source: RegistryClient,
        reference: ImageReference,
        destinations: Sequence[Destination],
        *,
        options: CopyOptions,
        progress: ProgressListener,
        locations: BlobLocations,
        recheck: Recheck | None = None,
    ) -> None:
        self.source = source
        self.recheck = recheck
        self.reference = reference
        self.options = options
        self.listener = progress
        self.states = [DestinationState(d, DestinationResult(d.key)) for d in destinations]
        self._by_key = {state.destination.key: state.result for state in self.states}
        self.result = CopyResult(
            source=str(reference), destinations=[s.result for s in self.states]
        )
        self.copier = BlobCopier(
            source,
            reference.repository,
            options.transfer,
            self.progress,
            locations,
            options.spool,
        )
        self._probes = asyncio.Semaphore(options.probe_concurrency)

    def progress(self, event: ProgressEvent) -> None:
        """Keep the per-destination counters, then pass the event on."""
        if isinstance(event, BytesRead):
            self.result.bytes_read += event.count
        elif isinstance(event, BytesWritten):
            result = self._by_key[event.destination]
            result.counts = result.counts.sent(event.count)
        elif isinstance(event, BlobDone):
            result = self._by_key[event.destination]
            result.counts = result.counts.blob(event.outcome)
        self.listener(event)

    def active(self) -> list[DestinationState]:
        return [state for state in self.states if state.active]

    async def _guarded(self, state: DestinationState, work: Awaitable[None]) -> None:
        """Run one destination's step; its failure is recorded, not raised."""
        try:
            await work
        except SyncError as error:
            state.fail(error)

    async def _probe(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._probes:
            return await call()

    async def _read_root(self) -> Manifest | SyncError:
        try:
            return await self.source.get_manifest(
                self.reference.repository, self.reference.manifest_reference
            )
        except SyncError as error:
            return error

    async def _current(self, state: DestinationState) -> Digest | None:
        """What the destination's target reference resolves to now (None: absent or failed)."""
        dest = state.destination
        try:
            return await dest.client.manifest_digest(
                dest.reference.repository, _target_reference(dest, self.reference)
            )
        except SyncError as error:
            state.fail(error)
            return None

    async def run(self) -> CopyResult:
        # The source manifest and every destination's current digest are asked at once:
        # a re-sync of an image already everywhere costs one round trip.
        reading = asyncio.ensure_future(self._read_root())
        currents = await asyncio.gather(*(self._current(state) for state in self.states))
        root = await reading
        if isinstance(root, SyncError):
            for state in self.states:
                state.fail(root)
            return self.result
        self.result.digest = root.digest
        for state, current in zip(self.states, currents, strict=True):
            if current == root.digest:
                state.up_to_date = True
                state.result.detail = f"already at {root.digest}"
                self.progress(DestinationPlanned(state.destination.key, 0, 0, up_to_date=True))
        if not self.active():
            return self.result
        try:
            image = await read_children(self.source, self.reference, root)
        except SyncError as error:
            for state in self.active():
                state.fail(error)
            return self.result
        await asyncio.gather(*(self._guarded(s, self._plan(s, image)) for s in self.active()))
        needed = [b for b in image.blobs if any(b.digest in s.missing_blobs for s in self.active())]
        self.progress(SourcePlanned(len(needed), sum(blob.size for blob in needed)))
        await self._copy_blobs_then_push(image)
        return self.result

    async def _copy_blobs_then_push(self, image: SourceImage) -> None:
        """Each destination's manifests go as soon as it holds its own blobs, so a
        fast region's image is complete while a slow one still receives bytes."""
        slots = asyncio.Semaphore(self.options.blob_concurrency)
        waiting = {state.destination.key: set(state.missing_blobs) for state in self.active()}
        by_key = {state.destination.key: state for state in self.active()}
        pushes: list[asyncio.Task[None]] = []

        def settled(key: str, digest: Digest, error: SyncError | None) -> None:
            state, remaining = by_key[key], waiting[key]
            if error is not None:
                state.fail(error)
            if digest not in remaining:
                return
            remaining.discard(digest)
            if not remaining and state.active:
                pushes.append(asyncio.create_task(self._guarded(state, self._push(state, image))))

        self.copier.on_copied = lambda sink, blob: settled(sink.key, blob.digest, None)
        for key, remaining in waiting.items():
            if not remaining:
                pushes.append(
                    asyncio.create_task(self._guarded(by_key[key], self._push(by_key[key], image)))
                )

        async def one(blob: Descriptor) -> None:
            # A blob slot bounds the source reads of this copy: it is given back as soon
            # as the blob is read and spooled, so regions still receiving it from the
            # spool never keep a faster region from its next blobs.
            await slots.acquire()
            held = [True]

            def give_back() -> None:
                if held[0]:
                    held[0] = False
                    slots.release()

            try:
                needing = [s for s in self.active() if blob.digest in s.missing_blobs]
                if not needing:
                    return
                outcome = await self.copier.copy(blob, [s.sink for s in needing], give_back)
                for state in needing:
                    settled(state.destination.key, blob.digest, outcome.get(state.sink))
            finally:
                give_back()

        try:
            await asyncio.gather(*(one(blob) for blob in image.blobs))
        finally:
            await asyncio.gather(*pushes)

    async def _plan(self, state: DestinationState, image: SourceImage) -> None:
        dest = state.destination
        repository = dest.reference.repository

        async def has_blob(blob: Descriptor) -> bool:
            return await self._probe(lambda: dest.client.blob_exists(repository, blob.digest))

        async def has_manifest(manifest: Manifest) -> bool:
            found = await self._probe(
                lambda: dest.client.manifest_digest(repository, manifest.digest)
            )
            return found is not None

        present = await asyncio.gather(*(has_blob(blob) for blob in image.blobs))
        for blob, there in zip(image.blobs, present, strict=True):
            if there:
                self.progress(BlobDone(dest.key, blob.digest, blob.size, BlobOutcome.SKIPPED))
            else:
                state.missing_blobs.add(blob.digest)
        children_present = await asyncio.gather(*(has_manifest(m) for m in image.children))
        state.missing_manifests = {
            m.digest for m, there in zip(image.children, children_present, strict=True) if not there
        }
        needed = [blob for blob in image.blobs if blob.digest in state.missing_blobs]
        self.progress(DestinationPlanned(dest.key, len(needed), sum(b.size for b in needed), False))

    async def _push(self, state: DestinationState, image: SourceImage) -> None:
        dest = state.destination
        repository = dest.reference.repository
        for child in image.children:
            if child.digest in state.missing_manifests:
                await dest.client.put_manifest(repository, child.digest, child)
                state.result.counts = state.result.counts.pushed()
        target = _target_reference(dest, self.reference)
        # Minutes may have passed since the job checked the source: ask again, so a slow
        # copy never puts an older image over a newer push that another worker mirrored.
        moot = await self.recheck() if self.recheck is not None else None
        if moot is not None:
            state.result.supersede(moot)
            return
        await dest.client.put_manifest(repository, target, image.root)
        state.result.counts = state.result.counts.pushed()


async def copy_image(
    source: RegistryClient,
    reference: ImageReference,
    destinations: Sequence[Destination],
    *,
    options: CopyOptions | None = None,
    progress: ProgressListener = ignore_progress,
    locations: BlobLocations | None = None,
    recheck: Recheck | None = None,
) -> CopyResult:
    """Copy ``reference`` from ``source`` to every destination; never raises SyncError.

    ``recheck`` is asked right before each destination's tag is written; a reason
    from it leaves that destination ``superseded``, its tag unwritten."""
    started = time.monotonic()
    copy = _Copy(
        source,
        reference,
        destinations,
        options=options or CopyOptions(),
        progress=progress,
        locations=locations or BlobLocations(),
        recheck=recheck,
    )
    result = await copy.run()
    elapsed = time.monotonic() - started
    result.seconds = elapsed
    for destination in result.destinations:
        destination.seconds = elapsed
    return result
