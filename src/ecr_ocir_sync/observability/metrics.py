"""Every Prometheus series of the service, in one place.

Labels stay bounded: action, outcome, state and destination (a configured
region key) — never a repository, tag or digest.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from ecr_ocir_sync.engine.progress import (
    BlobDone,
    BytesRead,
    BytesWritten,
    ProgressEvent,
    Retrying,
    SourceResumed,
    SpoolFallback,
    SpoolReused,
    UploadResumed,
)

__all__ = ["Metrics", "ProgressMetrics"]

_PREFIX = "ecr_ocir_sync"
_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The series; one instance per process (tests make their own)."""

    def __init__(self) -> None:
        # The *_created series double the output and help no alert.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            f"{_PREFIX}_events_total",
            "Events received on /sync, by what became of them",
            ["result"],  # accepted | coalesced | ignored | rejected | unavailable | backlog_full
            registry=r,
        )
        self.client_disconnects = Counter(
            f"{_PREFIX}_client_disconnects_total",
            "Requests whose client went away before sending its whole body",
            registry=r,
        )
        self.connections_cut = Counter(
            f"{_PREFIX}_connections_cut_total",
            "Connections closed for being too slow, by which deadline they missed",
            ["deadline"],  # header | body
            registry=r,
        )
        self.jobs = Counter(
            f"{_PREFIX}_jobs_total",
            "Job attempts by action and outcome",
            ["action", "outcome"],  # succeeded | failed | retried | superseded
            registry=r,
        )
        self.spool_fallbacks = Counter(
            f"{_PREFIX}_spool_fallback_blobs_total",
            "Blobs that did not fit in SYNC_SPOOL_MAX_BYTES and were copied in lockstep",
            registry=r,
        )
        self.source_resumes = Counter(
            f"{_PREFIX}_source_resumes_total",
            "Source reads that dropped and continued with a Range request",
            registry=r,
        )
        self.spool_reused_bytes = Counter(
            f"{_PREFIX}_spool_reused_bytes_total",
            "Bytes an earlier attempt or process left on the spool, re-hashed and used "
            "instead of read from the source again",
            registry=r,
        )
        self.upload_resumes = Counter(
            f"{_PREFIX}_upload_resumes_total",
            "Upload sessions of an earlier attempt or process continued where they stood",
            ["destination"],
            registry=r,
        )
        self.job_duration = Histogram(
            f"{_PREFIX}_job_duration_seconds",
            "Duration of one job attempt",
            ["action"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.destination_duration = Histogram(
            f"{_PREFIX}_destination_duration_seconds",
            "Duration of one destination's part of a job attempt",
            ["destination", "outcome"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.source_bytes = Counter(
            f"{_PREFIX}_source_bytes_total", "Bytes read from the source (ECR)", registry=r
        )
        self.destination_bytes = Counter(
            f"{_PREFIX}_destination_bytes_total",
            "Bytes written to each destination",
            ["destination"],
            registry=r,
        )
        self.blobs = Counter(
            f"{_PREFIX}_blobs_total",
            "Blobs per destination by outcome",
            ["destination", "outcome"],  # copied | skipped | mounted
            registry=r,
        )
        self.blob_retries = Counter(
            f"{_PREFIX}_blob_retries_total",
            "Blob transfers retried after a transient failure, by the error's class",
            ["destination", "reason"],  # e.g. UnavailableError, RateLimitedError
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{_PREFIX}_queue_jobs", "Jobs in the store by state", ["state"], registry=r
        )
        self.oldest_pending_age = Gauge(
            f"{_PREFIX}_queue_oldest_pending_age_seconds",
            "Age of the oldest pending job (since its event was accepted); 0 when none waits",
            registry=r,
        )
        self.store_writable = Gauge(
            f"{_PREFIX}_job_store_writable",
            "1 when the last write probe of the job store committed, else 0",
            registry=r,
        )
        self.workers_configured = Gauge(
            f"{_PREFIX}_workers_configured", "Worker loops configured (SYNC_WORKERS)", registry=r
        )
        self.workers_alive = Gauge(
            f"{_PREFIX}_workers_alive",
            "Worker loops of this process running now (not waiting out a restart backoff)",
            registry=r,
        )
        self.in_flight = Gauge(
            f"{_PREFIX}_jobs_in_flight", "Jobs being worked on by this process", registry=r
        )
        self.task_restarts = Counter(
            f"{_PREFIX}_task_restarts_total",
            "Long-lived tasks that failed (logged with a traceback) and were started again",
            ["task"],  # worker | reconcile | usage
            registry=r,
        )
        self.last_success = Gauge(
            f"{_PREFIX}_destination_last_success_timestamp_seconds",
            "When a job last succeeded at each destination",
            ["destination"],
            registry=r,
        )

        self.reconcile_drift = Gauge(
            f"{_PREFIX}_reconcile_drift",
            "Drift found by the last reconciliation pass, by kind",
            ["kind"],  # copy | update | delete | in_sync | errors
            registry=r,
        )
        self.reconcile_passes = Counter(
            f"{_PREFIX}_reconcile_passes_total",
            "Reconciliation passes by outcome",
            ["outcome"],  # complete | failed
            registry=r,
        )
        self.reconcile_last_complete = Gauge(
            f"{_PREFIX}_reconcile_last_complete_timestamp_seconds",
            "When the last complete reconciliation pass ended (at start-up: the latest in the "
            "store, else the start-up time, so its age counts from when a pass became due)",
            registry=r,
        )
        self.reconcile_interval = Gauge(
            f"{_PREFIX}_reconcile_interval_seconds",
            "Interval of the periodic reconciliation pass; 0 when this process runs none",
            registry=r,
        )

        self._add_storage_series(r)

    def _add_storage_series(self, r: CollectorRegistry) -> None:
        """OCIR usage per region from the OCI API (absent when it is not configured)."""
        self.ocir_used_bytes = Gauge(
            f"{_PREFIX}_ocir_storage_used_bytes",
            "Bytes of layers in the compartment's OCIR repositories, per region",
            ["region"],
            registry=r,
        )
        self.ocir_billable_bytes = Gauge(
            f"{_PREFIX}_ocir_storage_billable_bytes",
            "OCI's billable size of the same repositories (whole GB), per region",
            ["region"],
            registry=r,
        )
        self.ocir_limit_bytes = Gauge(
            f"{_PREFIX}_ocir_storage_limit_bytes",
            "The tenancy's OCIR storage limit per region, where the Limits API gives it",
            ["region"],
            registry=r,
        )
        self.ocir_repositories = Gauge(
            f"{_PREFIX}_ocir_repositories",
            "OCIR repositories in the compartment, per region",
            ["region"],
            registry=r,
        )
        self.ocir_repository_limit = Gauge(
            f"{_PREFIX}_ocir_repository_limit",
            "The tenancy's OCIR repository limit per region, where the Limits API gives it",
            ["region"],
            registry=r,
        )
        self.ocir_images = Gauge(
            f"{_PREFIX}_ocir_images",
            "Images in the compartment's OCIR repositories, per region",
            ["region"],
            registry=r,
        )
        self.ocir_usage_read = Gauge(
            f"{_PREFIX}_ocir_usage_read_timestamp_seconds",
            "When the region's usage was last read",
            ["region"],
            registry=r,
        )
        self.ocir_usage_reads = Counter(
            f"{_PREFIX}_ocir_usage_reads_total",
            "Reads of a region's usage by outcome",
            ["region", "outcome"],  # ok | failed
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ProgressMetrics:
    """An engine progress listener feeding the counters; destinations keyed by region key."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, event: ProgressEvent) -> None:
        m = self._metrics
        if isinstance(event, BytesRead):
            m.source_bytes.inc(event.count)
        elif isinstance(event, BytesWritten):
            m.destination_bytes.labels(event.destination).inc(event.count)
        elif isinstance(event, BlobDone):
            m.blobs.labels(event.destination, event.outcome.value).inc()
        elif isinstance(event, Retrying):
            m.blob_retries.labels(event.destination, event.reason).inc()
        elif isinstance(event, SpoolFallback):
            m.spool_fallbacks.inc()
        elif isinstance(event, SourceResumed):
            m.source_resumes.inc()
        elif isinstance(event, SpoolReused):
            m.spool_reused_bytes.inc(event.count)
        elif isinstance(event, UploadResumed):
            m.upload_resumes.labels(event.destination).inc()
