"""Running one job attempt: from a stored job to the engine and back to records.

Only the destinations that have not succeeded in an earlier attempt are
worked on, so a retry redoes only what is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from ecr_ocir_sync.cloud.ecr_auth import ecr_host
from ecr_ocir_sync.cloud.ocir_repositories import OcirRepositories
from ecr_ocir_sync.engine.copy import CopyOptions
from ecr_ocir_sync.engine.delete import SourceHolds, delete_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.locations import BlobLocations
from ecr_ocir_sync.engine.mirror import mirror_image
from ecr_ocir_sync.engine.progress import (
    BlobDone,
    BytesWritten,
    DestinationPlanned,
    ProgressEvent,
)
from ecr_ocir_sync.engine.result import CopyResult, DestinationResult
from ecr_ocir_sync.engine.spool import Spool
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.jobs.model import DestinationRecord, Job
from ecr_ocir_sync.jobs.request import Action
from ecr_ocir_sync.observability.metrics import Metrics, ProgressMetrics
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.outcome import DestinationStatus
from ecr_ocir_sync.registry.pool import Registries
from ecr_ocir_sync.rules.placer import Placer
from ecr_ocir_sync.service.retention import Retention
from ecr_ocir_sync.settings import Settings

__all__ = ["Attempt", "JobRunner"]


@dataclass(slots=True)
class Attempt:
    """The records after an attempt, and the longest Retry-After a failure asked for."""

    destinations: dict[str, DestinationRecord]
    retry_after: float | None = None
    superseded: str | None = None  # why the job has no effect, when it has none

    @property
    def succeeded(self) -> bool:
        return all(r.status is DestinationStatus.SUCCEEDED for r in self.destinations.values())

    @property
    def retryable(self) -> bool:
        failed = [r for r in self.destinations.values() if r.status is DestinationStatus.FAILED]
        return bool(failed) and all(record.retryable for record in failed)

    @property
    def error(self) -> str | None:
        errors = [f"{key}: {r.error}" for key, r in self.destinations.items() if r.error]
        return "; ".join(errors) or None


class JobRunner:
    """Turns jobs into engine calls against the regions the placer names."""

    def __init__(
        self,
        settings: Settings,
        registries: Registries,
        metrics: Metrics,
        placer: Placer,
        *,
        repositories: OcirRepositories | None = None,
        spool: Spool | None = None,
        retention: Retention | None = None,
    ) -> None:
        self._settings = settings
        self._registries = registries
        self._metrics = metrics
        self._placer = placer
        self._repositories = repositories
        self._retention = retention or Retention(placer, registries)
        self._locations = BlobLocations()  # shared across jobs: mounts between repositories
        self._options = CopyOptions(
            retry=registries.retry,
            spool=spool,
            stall_seconds=settings.stall_seconds,
            upload_chunk_bytes=settings.upload_chunk_bytes,
        )

    def source_reference(self, job: Job) -> ImageReference:
        endpoint = self._settings.ecr_endpoints.get((job.account, job.region))
        host = endpoint.host if endpoint else ecr_host(job.account, job.region)
        digest = Digest(job.digest) if job.digest else None
        return ImageReference(host, job.repository, job.tag, digest)

    def _destinations(
        self, job: Job, placed: dict[str, tuple[str, str]], *, pin_digest: bool
    ) -> dict[str, Destination]:
        digest = Digest(job.digest) if (pin_digest and job.digest) else None
        found: dict[str, Destination] = {}
        for key, (host, repository) in placed.items():
            reference = ImageReference(host, repository, job.tag, digest)
            found[key] = Destination(self._registries.client(host), reference, key)
        return found

    async def _ecr_state(self, job: Job) -> str | None:
        """Why ECR's current state makes this job moot, if it does; raises SyncError.

        Checked at the source itself, so events handled by different pods (each
        with its own store) still cannot undo a newer state: a PUSH runs only
        while ECR's tag still points at its digest, a DELETE only while the
        tag (or, without a tag, the digest) is gone from ECR.
        """
        reference = job.tag or job.digest
        if reference is None:
            return None
        client = self._registries.client(self.source_reference(job).registry)
        return _moot(job, await client.manifest_digest(job.repository, reference))

    async def _overtaken(self, job: Job) -> str | None:
        try:
            return await self._ecr_state(job)
        except SyncError:
            return None  # ECR unreachable: the attempt itself will say so

    def _ecr_holds(self, job: Job) -> SourceHolds:
        """Whether ECR still holds a tag at a digest: siblings of a deleted tag."""
        client = self._registries.client(self.source_reference(job).registry)

        async def holds(tag: str, digest: Digest) -> bool:
            return await client.manifest_digest(job.repository, tag) == digest

        return holds

    async def run(
        self, job: Job, on_progress: Callable[[dict[str, DestinationRecord]], None]
    ) -> Attempt:
        placed = self._placer.destinations(job.repository, job.tag)
        if not placed:
            return Attempt({}, superseded="no sync rule places this image any more")
        records = {key: job.destinations.get(key, DestinationRecord()) for key in placed}
        todo = {
            key: placed[key]
            for key, record in records.items()
            if record.status is not DestinationStatus.SUCCEEDED
        }
        if job.action is Action.EXPIRE:
            return await self._expire(job, records, todo)
        deleting = job.action is Action.DELETE
        if deleting and not self._placer.mirrors_deletes(job.repository, job.tag):
            for key in todo:
                records[key] = DestinationRecord(
                    status=DestinationStatus.SUCCEEDED, detail="delete policy is ignore"
                )
            return Attempt(records)
        overtaken = await self._overtaken(job)
        if overtaken is not None:
            return Attempt(records, superseded=overtaken)
        for key in todo:
            # A new attempt: progress counts what this attempt sends of what it needs.
            records[key] = records[key].with_progress(
                status=DestinationStatus.RUNNING, error=None, bytes_sent=0, bytes_needed=0
            )
        targets = self._destinations(job, todo, pin_digest=deleting)
        if deleting:
            result = await delete_image(
                str(self.source_reference(job)),
                list(targets.values()),
                source_holds=self._ecr_holds(job),
                recheck=functools.partial(self._ecr_state, job),
            )
        else:
            result = await self._push(job, records, targets, on_progress)
        attempt = self._merge(records, result)
        if not deleting:
            await self._retain(job, attempt, list(todo))
        return attempt

    async def _expire(
        self, job: Job, records: dict[str, DestinationRecord], todo: dict[str, tuple[str, str]]
    ) -> Attempt:
        """An EXPIRE job (reconciliation's retention): the tag goes while its rule still
        expires it, by ECR's listing now; ECR unreachable is a retryable failure."""
        targets = self._destinations(job, todo, pin_digest=True)
        try:
            outcome = await self._retention.expire(
                job, str(self.source_reference(job)), list(targets.values())
            )
        except SyncError as error:
            for key in todo:
                records[key] = DestinationRecord(
                    status=DestinationStatus.FAILED, error=str(error), retryable=error.retryable
                )
            return Attempt(records)
        if isinstance(outcome, str):
            return Attempt(records, superseded=outcome)
        return self._merge(records, outcome)

    async def _retain(self, job: Job, attempt: Attempt, regions: list[str]) -> None:
        """After a push: the rule's retention at the regions that took it, noted in their
        records (a retention failure never fails the push)."""
        done = [
            key
            for key in regions
            if attempt.destinations[key].status is DestinationStatus.SUCCEEDED
        ]
        details = await self._retention.after_push(job, str(self.source_reference(job)), done)
        for key, detail in details.items():
            record = attempt.destinations[key]
            joined = f"{record.detail}; {detail}" if record.detail else detail
            attempt.destinations[key] = record.with_progress(detail=joined)

    async def _prepare(self, targets: dict[str, Destination]) -> dict[str, SyncError]:
        """Create missing OCIR repositories where a compartment is configured."""
        if self._repositories is None:
            return {}
        namespace = f"{self._settings.namespace}/"
        failures: dict[str, SyncError] = {}
        for key, target in targets.items():
            try:
                await self._repositories.ensure(
                    key, target.reference.repository.removeprefix(namespace)
                )
            except SyncError as error:
                failures[key] = error
        return failures

    async def _push(
        self,
        job: Job,
        records: dict[str, DestinationRecord],
        targets: dict[str, Destination],
        on_progress: Callable[[dict[str, DestinationRecord]], None],
    ) -> CopyResult:
        """The image to every region that is ready for it, then its referrers."""
        source = self.source_reference(job)
        not_ready = await self._prepare(targets)
        ready = [target for key, target in targets.items() if key not in not_ready]
        live = _LiveRecords(records, on_progress, ProgressMetrics(self._metrics))
        result = await mirror_image(
            self._registries.client(source.registry),
            source,
            ready,
            referrers=self._placer.referrers(job.repository, job.tag),
            options=self._options,
            progress=live,
            locations=self._locations,
            recheck=functools.partial(self._ecr_state, job),
        )
        for key, error in not_ready.items():
            failed = DestinationResult(key)
            failed.fail(error, retryable=error.retryable)
            result.destinations.append(failed)
        return result

    def _merge(self, records: dict[str, DestinationRecord], result: CopyResult) -> Attempt:
        attempt = Attempt(dict(records))
        for outcome in result.destinations:
            key = outcome.destination  # the region key the destination was built with
            attempt.destinations[key] = _record(outcome)
            if outcome.status is DestinationStatus.SUPERSEDED:
                attempt.superseded = outcome.detail
            if outcome.retry_after is not None:
                attempt.retry_after = max(attempt.retry_after or 0.0, outcome.retry_after)
            self._metrics.destination_duration.labels(key, outcome.status.value).observe(
                outcome.seconds
            )
        return attempt


def _moot(job: Job, current: Digest | None) -> str | None:
    """Why ``job`` has no effect now that ECR's tag (or digest) resolves to ``current``."""
    if job.tag is None:
        if job.action is Action.DELETE and current is not None:
            return f"image {job.digest} still exists in ECR; not deleted"
        return None
    if job.action is Action.PUSH and job.digest is not None:
        if current is None:
            return f"tag {job.tag} no longer exists in ECR"
        if current != job.digest:
            return f"ECR's tag {job.tag} now points at {current}, a newer push"
    if job.action is Action.DELETE and current is not None:
        return f"tag {job.tag} exists again in ECR (at {current}); not deleted"
    return None


def _record(outcome: DestinationResult) -> DestinationRecord:
    return DestinationRecord(
        status=outcome.status,
        error=outcome.error,
        retryable=outcome.retryable,
        bytes_needed=outcome.counts.bytes_sent,  # done: what had to be sent is what was
        seconds=round(outcome.seconds, 3),
        detail=outcome.detail,
    ).with_counts(outcome.counts)


class _LiveRecords:
    """A progress listener keeping per-region records current while a copy runs."""

    def __init__(
        self,
        records: dict[str, DestinationRecord],
        on_progress: Callable[[dict[str, DestinationRecord]], None],
        metrics: ProgressMetrics,
    ) -> None:
        self._records = records
        self._on_progress = on_progress
        self._metrics = metrics

    def __call__(self, event: ProgressEvent) -> None:
        self._metrics(event)
        # Events carry the destination's key: the region key the runner gave it.
        records = self._records
        if isinstance(event, DestinationPlanned):
            record = records[event.destination]
            needed = record.bytes_needed + event.bytes_needed  # one per image (and referrer)
            records[event.destination] = record.with_progress(bytes_needed=needed)
        elif isinstance(event, BytesWritten):
            records[event.destination] = records[event.destination].sent(event.count)
        elif isinstance(event, BlobDone):
            records[event.destination] = records[event.destination].blob(event.outcome)
        else:
            return
        self._on_progress(self._records)
