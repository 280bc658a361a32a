"""Referrers of a synced image come along: signatures, SBOMs, attestations.

**Finding them at the source.**  Two schemas, both always looked at, because
cosign writes tags by default even to registries that have the referrers API
(ECR among them):

- the cosign tag schema: ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` in the
  image's repository, each an ordinary manifest whose layers are the payloads;
- OCI 1.1 referrers: the referrers API (``GET /v2/<name>/referrers/<digest>``)
  where the source has it; where it does not, the fallback tag
  ``sha256-<hex>``, an index of the referrers that OCI 1.1 clients keep on
  such registries.

Candidate tags are probed with HEAD rather than found in the tag list: the cost
is fixed (three or four HEADs per subject, sent together, so one round trip)
whatever the size of the repository, whereas a tag list is one sequential
request per page and grows with every tag ever pushed (CI repositories hold
thousands, plus a ``.sig`` per signed image); and in ECR a HEAD is covered by
``ecr:BatchGetImage``, which the service already needs, while the tag list
needs ``ecr:ListImages`` too.

**Subjects.**  The image's digest and, for an index, each child's digest:
``cosign sign`` signs the digest a tag resolves to (the index), ``--recursive``
signs each platform too, and ``cosign verify`` of a platform image looks for
that child's signature.  Only one level is followed: a signature on an SBOM
(a referrer of a referrer) is not looked for.

**Copying them.**  A tag is copied as that tag with the caller's ``copy``
(normally :func:`ecr_ocir_sync.engine.copy.copy_image`): blobs read once and
streamed to every destination, digests preserved.  That includes a source's
fallback tag, so a destination without the referrers API gets the same index.
Referrers the API listed are copied by digest; then, at each destination that
has no referrers API (OCIR, distribution 2.8), the fallback tag
``sha256-<hex>`` is updated as OCI 1.1 asks of clients: read it (absent means
empty), add a descriptor for each referrer it lacks, push it back.  Two syncs
of one image racing on that read-modify-write can drop an entry until the next
sync adds it again.

Every failure is recorded per destination (:class:`DestinationReferrers`);
nothing raises SyncError.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.result import CopyResult, DestinationResult, flat_counts
from ecr_ocir_sync.errors import NotFoundError, ProtocolError, SyncError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.manifest import Descriptor, ImageIndex, parse_manifest
from ecr_ocir_sync.oci.mediatypes import OCI_INDEX
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.outcome import TransferCounts
from ecr_ocir_sync.registry.client import RegistryClient

__all__ = [
    "COSIGN_SUFFIXES",
    "CopyFunction",
    "DestinationReferrers",
    "Referrer",
    "ReferrersResult",
    "copy_referrers",
    "fallback_tag",
    "is_referrer_tag",
]

#: The tag suffixes cosign writes: signatures, attestations, attached SBOMs.
COSIGN_SUFFIXES: tuple[str, ...] = ("sig", "att", "sbom")

#: Copies one image to destinations and never raises SyncError: copy_image, or a
#: functools.partial of it with the caller's options, progress and blob locations.
CopyFunction = Callable[
    [RegistryClient, ImageReference, Sequence[Destination]], Awaitable[CopyResult]
]

_PROBE_CONCURRENCY = 16
_COPY_CONCURRENCY = 4


def fallback_tag(digest: Digest) -> str:
    """The tag schema's name for ``digest``: ``sha256:<hex>`` → ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


_REFERRER_TAG = re.compile(r"sha256-[0-9a-f]{64}(?:\.(?:" + "|".join(COSIGN_SUFFIXES) + r"))?")


def is_referrer_tag(tag: str) -> bool:
    """Whether ``tag`` belongs to the tag schema (a fallback index or a cosign artifact):
    such tags come along with their subject image; they are never images of their own."""
    return _REFERRER_TAG.fullmatch(tag) is not None


@dataclass(frozen=True, slots=True)
class Referrer:
    """Something that refers to ``subject``: a tag of the tag schema, or a descriptor the
    referrers API listed."""

    subject: Digest
    tag: str | None = None
    descriptor: Descriptor | None = None

    @property
    def reference(self) -> str:
        """The tag, or the digest for an API-listed referrer."""
        if self.tag is not None:
            return self.tag
        assert self.descriptor is not None
        return self.descriptor.digest


@dataclass(slots=True)
class DestinationReferrers:
    """One destination's outcome: what is there now, what failed and why."""

    destination: str  # the destination's key
    copied: list[str] = field(default_factory=list)  # tags and digests present now
    fallback_tags: list[str] = field(default_factory=list)  # fallback indexes written
    errors: list[str] = field(default_factory=list)
    retryable: bool = True  # with errors: whether every one of them was transient
    retry_after: float | None = None
    counts: TransferCounts = field(default_factory=TransferCounts)

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, what: str, message: str, *, retryable: bool, retry_after: float | None) -> None:
        self.errors.append(f"{what}: {message}")
        self.retryable = self.retryable and retryable
        if retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, retry_after)

    def fail_with(self, what: str, error: SyncError) -> None:
        self.fail(what, str(error), retryable=error.retryable, retry_after=error.retry_after)

    def add(self, reference: str, copied: DestinationResult) -> None:
        """Take one referrer's copy result for this destination."""
        self.counts += copied.counts
        if copied.ok:
            self.copied.append(reference)
        else:
            self.fail(
                reference,
                copied.error or "failed",
                retryable=copied.retryable,
                retry_after=copied.retry_after,
            )


@dataclass(slots=True)
class ReferrersResult:
    """What copy_referrers found at the source and did at each destination."""

    subject: Digest
    source_has_api: bool | None = None  # None: discovery did not get that far
    found: list[Referrer] = field(default_factory=list)
    error: str | None = None  # discovery at the source failed (every destination has it too)
    destinations: list[DestinationReferrers] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(d.ok for d in self.destinations)

    def record(self, results: Iterable[DestinationResult]) -> None:
        """Add the counters to the image's results (matched by destination key) and fail
        each destination whose referrers failed, so the job retries it and says why."""
        by_key = {outcome.destination: outcome for outcome in self.destinations}
        for result in results:
            outcome = by_key.get(result.destination)
            if outcome is None:
                continue
            result.counts += outcome.counts
            if outcome.errors:
                error = SyncError(
                    f"referrers of {self.subject}: " + "; ".join(outcome.errors),
                    retry_after=outcome.retry_after,
                )
                result.fail(error, retryable=outcome.retryable)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["destinations"] = [flat_counts(d) for d in document["destinations"]]
        document["found"] = [referrer.reference for referrer in self.found]
        document["ok"] = self.ok
        return document


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Await every call; then raise the first failure, if any (none is left running)."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


class _Discovery:
    """Finds the referrers of one subject (and its children) in one source repository."""

    def __init__(
        self,
        source: RegistryClient,
        repository: str,
        subject: Digest,
        children: Sequence[Digest] | None,
        suffixes: Sequence[str],
    ) -> None:
        self.source = source
        self.repository = repository
        self.subject = subject
        self.children = list(dict.fromkeys(children)) if children is not None else None
        self.suffixes = suffixes
        self.api: bool | None = None
        self._found: dict[tuple[Digest, str], Referrer] = {}
        self._probes = asyncio.Semaphore(_PROBE_CONCURRENCY)

    async def run(self) -> list[Referrer]:
        # Round trip 1: the API (which tells whether the source has it), the subject's cosign
        # tags and, unless the caller named them, its children.  Round trip 2: what depends
        # on those: the children's referrers, and the fallback tags where there is no API.
        first: list[Awaitable[None]] = [
            self._ask_api(self.subject),
            *self._suffix_heads(self.subject),
        ]
        if self.children is None:
            first.append(self._read_children())
        await _all(first)
        children = self.children or []
        second: list[Awaitable[None]] = []
        for child in children:
            second.extend(self._suffix_heads(child))
        if self.api:
            second.extend(self._ask_api(child) for child in children)
        else:
            second.extend(self._head(d, fallback_tag(d)) for d in (self.subject, *children))
        await _all(second)
        order = {digest: position for position, digest in enumerate((self.subject, *children))}
        return sorted(self._found.values(), key=lambda r: (order[r.subject], r.tag is None))

    def _suffix_heads(self, subject: Digest) -> list[Awaitable[None]]:
        return [self._head(subject, f"{fallback_tag(subject)}.{s}") for s in self.suffixes]

    async def _read_children(self) -> None:
        async with self._probes:
            manifest = await self.source.get_manifest(self.repository, self.subject)
        self.children = (
            list(dict.fromkeys(child.digest for child in manifest.manifests))
            if isinstance(manifest, ImageIndex)
            else []
        )

    async def _head(self, subject: Digest, tag: str) -> None:
        async with self._probes:
            found = await self.source.manifest_digest(self.repository, tag)
        if found is not None:
            self._found[(subject, tag)] = Referrer(subject, tag=tag)

    async def _ask_api(self, subject: Digest) -> None:
        async with self._probes:
            listed = await self.source.list_referrers(self.repository, subject)
        if subject == self.subject:
            self.api = listed is not None
        for descriptor in listed or ():
            self._found.setdefault(
                (subject, descriptor.digest), Referrer(subject, descriptor=descriptor)
            )


def _fallback_entry(descriptor: Descriptor) -> dict[str, Any]:
    """A referrer's descriptor as the fallback index lists it (OCI 1.1)."""
    entry: dict[str, Any] = {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
    }
    if descriptor.artifact_type is not None:
        entry["artifactType"] = descriptor.artifact_type
    if descriptor.annotations:
        entry["annotations"] = dict(descriptor.annotations)
    return entry


async def _update_fallback(
    destination: Destination, subject: Digest, descriptors: Sequence[Descriptor]
) -> bool:
    """Add ``descriptors`` to the destination's fallback index of ``subject``; True if
    it was written (False: it listed them all already)."""
    client, repository = destination.client, destination.reference.repository
    tag = fallback_tag(subject)
    where = f"updating the referrers tag {tag} at {destination.name}"
    try:
        current = await client.get_manifest(repository, tag)
    except NotFoundError:
        current = None
    if current is None:
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        present: set[Digest] = set()
    elif isinstance(current, ImageIndex) and current.media_type == OCI_INDEX:
        document = json.loads(current.raw)
        present = {entry.digest for entry in current.manifests}
    else:
        raise ProtocolError(
            f"{where}: the tag holds a {current.media_type}, not an OCI image index; left as it is"
        )
    added = [_fallback_entry(d) for d in descriptors if d.digest not in present]
    if not added:
        return False
    document["manifests"] = [*document["manifests"], *added]
    raw = json.dumps(document, separators=(",", ":")).encode()
    await client.put_manifest(repository, tag, parse_manifest(raw, OCI_INDEX, where))
    return True


class _Copier:
    """Copies what discovery found to every destination and keeps their outcomes."""

    def __init__(
        self,
        source: RegistryClient,
        reference: ImageReference,
        destinations: Sequence[Destination],
        outcomes: Sequence[DestinationReferrers],
        copy: CopyFunction,
    ) -> None:
        self.source = source
        self.reference = reference
        self.destinations = destinations
        self.outcomes = outcomes
        self.copy = copy
        self._slots = asyncio.Semaphore(_COPY_CONCURRENCY)

    async def one(self, referrer: Referrer) -> list[bool]:
        """Copy one referrer everywhere; whether each destination has it now."""
        if referrer.tag is not None:
            source_ref = self.reference.with_tag(referrer.tag).with_digest(None)
        else:
            assert referrer.descriptor is not None
            source_ref = self.reference.with_tag(None).with_digest(referrer.descriptor.digest)
        # The destination's reference carries the tag to write (none: by digest).
        targets = [
            d.to(d.reference.with_tag(referrer.tag).with_digest(None)) for d in self.destinations
        ]
        async with self._slots:
            try:
                copied = await self.copy(self.source, source_ref, targets)
            except SyncError as error:
                for outcome in self.outcomes:
                    outcome.fail_with(referrer.reference, error)
                return [False] * len(self.outcomes)
        for outcome, result in zip(self.outcomes, copied.destinations, strict=True):
            outcome.add(referrer.reference, result)
        return [result.ok for result in copied.destinations]

    async def fallbacks(
        self,
        destination: Destination,
        outcome: DestinationReferrers,
        subject: Digest,
        landed: Sequence[Referrer],
    ) -> None:
        """Keep the fallback tags at ``destination`` if it has no referrers API."""
        try:
            listed = await destination.client.list_referrers(
                destination.reference.repository, subject
            )
        except SyncError as error:
            outcome.fail_with("asking for the referrers API", error)
            return
        if listed is not None:
            return  # the registry lists referrers by their subject itself
        by_subject: dict[Digest, list[Descriptor]] = {}
        for referrer in landed:
            assert referrer.descriptor is not None
            by_subject.setdefault(referrer.subject, []).append(referrer.descriptor)
        for referred, descriptors in by_subject.items():
            try:
                if await _update_fallback(destination, referred, descriptors):
                    outcome.fallback_tags.append(fallback_tag(referred))
                    outcome.counts = outcome.counts.pushed()
            except SyncError as error:
                outcome.fail_with(fallback_tag(referred), error)


async def copy_referrers(
    source: RegistryClient,
    reference: ImageReference,
    subject: Digest,
    destinations: Sequence[Destination],
    *,
    copy: CopyFunction,
    children: Sequence[Digest] | None = None,
    suffixes: Sequence[str] = COSIGN_SUFFIXES,
) -> ReferrersResult:
    """Copy the referrers of ``subject`` (in ``reference``'s repository) to every destination.

    Call it once the image itself is at those destinations.  ``children``: the digests of
    the index's children when the caller knows them (``()`` for a single-platform image);
    None reads the subject's manifest to find them.  ``copy`` must not itself follow
    referrers (one level).  Never raises SyncError: see the result, per destination.
    """
    result = ReferrersResult(
        subject, destinations=[DestinationReferrers(d.key) for d in destinations]
    )
    discovery = _Discovery(source, reference.repository, subject, children, suffixes)
    try:
        result.found = await discovery.run()
    except SyncError as error:
        result.error = str(error)
        for outcome in result.destinations:
            outcome.fail_with("finding referrers at the source", error)
    result.source_has_api = discovery.api
    if result.error is not None or not result.found or not destinations:
        return result
    copier = _Copier(source, reference, destinations, result.destinations, copy)
    tagged = [r for r in result.found if r.tag is not None]
    listed = [r for r in result.found if r.descriptor is not None]
    await asyncio.gather(*(copier.one(r) for r in tagged))
    # Whether each listed referrer landed, per destination (row: referrer, column: destination).
    landed = await asyncio.gather(*(copier.one(r) for r in listed))
    work = []
    for column, (destination, outcome) in enumerate(
        zip(destinations, result.destinations, strict=True)
    ):
        here = [r for r, row in zip(listed, landed, strict=True) if row[column]]
        if here:
            work.append(copier.fallbacks(destination, outcome, subject, here))
    await asyncio.gather(*work)
    return result
