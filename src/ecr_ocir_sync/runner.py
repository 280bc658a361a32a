"""Running one job attempt: from a stored job to the engine and back to records.

Only the destinations that have not succeeded in an earlier attempt are
worked on, so a retry redoes only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ecr_ocir_sync.config import DeletePolicy, ServiceSettings
from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.delete import delete_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.locations import BlobLocations
from ecr_ocir_sync.engine.progress import (
    BlobDone,
    BlobOutcome,
    BytesWritten,
    ProgressEvent,
)
from ecr_ocir_sync.engine.result import CopyResult, DestinationResult
from ecr_ocir_sync.jobs.model import DestinationRecord, Job
from ecr_ocir_sync.metrics import Metrics, ProgressMetrics
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.ecr import ecr_host
from ecr_ocir_sync.registry.pool import Registries

__all__ = ["Attempt", "JobRunner"]


@dataclass(slots=True)
class Attempt:
    """The records after an attempt, and the longest Retry-After a failure asked for."""

    destinations: dict[str, DestinationRecord]
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return all(record.status == "succeeded" for record in self.destinations.values())

    @property
    def retryable(self) -> bool:
        failed = [r for r in self.destinations.values() if r.status == "failed"]
        return bool(failed) and all(record.retryable for record in failed)

    @property
    def error(self) -> str | None:
        errors = [f"{key}: {r.error}" for key, r in self.destinations.items() if r.error]
        return "; ".join(errors) or None


class JobRunner:
    """Turns jobs into engine calls against the configured regions."""

    def __init__(self, settings: ServiceSettings, registries: Registries, metrics: Metrics) -> None:
        self._settings = settings
        self._registries = registries
        self._metrics = metrics
        self._locations = BlobLocations()  # shared across jobs: mounts between repositories
        self._options = CopyOptions(retry=registries.retry)

    def source_reference(self, job: Job) -> ImageReference:
        endpoint = self._settings.ecr_endpoint
        host = endpoint.host if endpoint else ecr_host(job.account, job.region)
        digest = Digest(job.digest) if job.digest else None
        return ImageReference(host, job.repository, job.tag, digest)

    def _destinations(
        self, job: Job, keys: list[str], *, pin_digest: bool
    ) -> dict[str, Destination]:
        repository = f"{self._settings.namespace}/{job.repository}"
        digest = Digest(job.digest) if (pin_digest and job.digest) else None
        found: dict[str, Destination] = {}
        for key in keys:
            host = self._settings.region_endpoint(key)
            reference = ImageReference(host, repository, job.tag, digest)
            found[key] = Destination(self._registries.client(host), reference)
        return found

    async def run(
        self, job: Job, on_progress: Callable[[dict[str, DestinationRecord]], None]
    ) -> Attempt:
        records = {
            key: job.destinations.get(key, DestinationRecord())
            for key in self._settings.region_keys
        }
        todo = [key for key, record in records.items() if record.status != "succeeded"]
        for key in todo:
            records[key] = records[key].with_progress(status="running", error=None)
        if job.action == "DELETE" and self._settings.delete_policy is DeletePolicy.IGNORE:
            for key in todo:
                records[key] = DestinationRecord(
                    status="succeeded", detail="delete policy is ignore"
                )
            return Attempt(records)
        targets = self._destinations(job, todo, pin_digest=job.action == "DELETE")
        region_of = {target.name: key for key, target in targets.items()}
        if job.action == "DELETE":
            result = await delete_image(str(self.source_reference(job)), list(targets.values()))
        else:
            live = _LiveRecords(
                records, region_of, on_progress, ProgressMetrics(self._metrics, region_of)
            )
            source = self.source_reference(job)
            result = await copy_image(
                self._registries.client(source.registry),
                source,
                list(targets.values()),
                options=self._options,
                progress=live,
                locations=self._locations,
            )
        return self._merge(records, result, region_of)

    def _merge(
        self, records: dict[str, DestinationRecord], result: CopyResult, region_of: dict[str, str]
    ) -> Attempt:
        attempt = Attempt(dict(records))
        for outcome in result.destinations:
            key = region_of[outcome.destination]
            attempt.destinations[key] = _record(outcome)
            if outcome.retry_after is not None:
                attempt.retry_after = max(attempt.retry_after or 0.0, outcome.retry_after)
            self._metrics.destination_duration.labels(key, outcome.status.value).observe(
                outcome.seconds
            )
        return attempt


def _record(outcome: DestinationResult) -> DestinationRecord:
    return DestinationRecord(
        status=outcome.status.value,
        error=outcome.error,
        retryable=outcome.retryable,
        bytes_sent=outcome.bytes_sent,
        blobs_copied=outcome.blobs_copied,
        blobs_skipped=outcome.blobs_skipped,
        blobs_mounted=outcome.blobs_mounted,
        seconds=round(outcome.seconds, 3),
        detail=outcome.detail,
    )


class _LiveRecords:
    """A progress listener keeping per-region records current while a copy runs."""

    def __init__(
        self,
        records: dict[str, DestinationRecord],
        region_of: dict[str, str],
        on_progress: Callable[[dict[str, DestinationRecord]], None],
        metrics: ProgressMetrics,
    ) -> None:
        self._records = records
        self._region_of = region_of
        self._on_progress = on_progress
        self._metrics = metrics

    def __call__(self, event: ProgressEvent) -> None:
        self._metrics(event)
        if isinstance(event, BytesWritten):
            key = self._region_of[event.destination]
            record = self._records[key]
            self._records[key] = record.with_progress(bytes_sent=record.bytes_sent + event.count)
        elif isinstance(event, BlobDone):
            key = self._region_of[event.destination]
            record = self._records[key]
            field = {
                BlobOutcome.COPIED: "blobs_copied",
                BlobOutcome.SKIPPED: "blobs_skipped",
                BlobOutcome.MOUNTED: "blobs_mounted",
            }[event.outcome]
            self._records[key] = record.with_progress(**{field: getattr(record, field) + 1})
        else:
            return
        self._on_progress(self._records)
