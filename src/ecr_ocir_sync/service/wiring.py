"""The service's parts wired together from the settings: store, registries, rules,
OCIR repositories, runner, workers, metrics. ``reconcile`` reuses the first three."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from ecr_ocir_sync.cloud.credential_chain import CredentialSettings, OcirLogin, build_credentials
from ecr_ocir_sync.cloud.ocir_repositories import OcirRepositories, OcirRepositorySettings
from ecr_ocir_sync.cloud.ocir_tokens import OcirTokenSettings
from ecr_ocir_sync.cloud.ocir_usage import OcirUsage
from ecr_ocir_sync.engine.spool import Spool
from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.jobs.backend import store_for
from ecr_ocir_sync.jobs.model import AttemptLimits
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.reconcile.loop import ReconcileLoop
from ecr_ocir_sync.registry.pool import ConnectionLimits, Registries
from ecr_ocir_sync.registry.retry import RetryPolicy, backoff_delay
from ecr_ocir_sync.rules.loader import load_rules
from ecr_ocir_sync.rules.placer import RulesPlacer
from ecr_ocir_sync.service.intake import classify
from ecr_ocir_sync.service.readiness import Readiness
from ecr_ocir_sync.service.runner import JobRunner
from ecr_ocir_sync.service.sqs import SqsIntake, SqsSettings
from ecr_ocir_sync.service.supervisor import Supervisor
from ecr_ocir_sync.service.usage import UsageLoop
from ecr_ocir_sync.service.workers import WorkerPool, restart_delay
from ecr_ocir_sync.settings import SERVICE_HEADER, Settings

__all__ = [
    "Service",
    "attempt_limits",
    "build_placer",
    "build_registries",
    "repository_settings",
]

log = logging.getLogger("ecr_ocir_sync.service.wiring")


def _lock(data_dir: Path) -> IO[bytes]:
    """One serving process per data dir: its 'running' jobs are its own to recover."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = (data_dir / "serve.lock").open("wb")
    except OSError as error:
        raise ConfigError(
            f"{SERVICE_HEADER}\n  - SYNC_DATA_DIR={str(data_dir)!r}: cannot create or write "
            f"there ({error.strerror}); give the service a writable directory"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another ecr-ocir-sync serve is using SYNC_DATA_DIR={data_dir}; "
            "give each process its own data directory"
        ) from None
    handle.write(str(os.getpid()).encode())
    handle.flush()
    return handle


def attempt_limits(settings: Settings) -> AttemptLimits:
    """SYNC_MAX_ATTEMPTS, and the job backoff for an attempt that never ended."""

    def backoff(attempts: int) -> float:
        return backoff_delay(attempts, settings.retry_base_seconds, settings.retry_max_seconds)

    return AttemptLimits(settings.max_attempts, backoff)


def build_placer(settings: Settings, rules_file: Path | None = None) -> RulesPlacer:
    """The rules of ``rules_file`` (``--rules``), else SYNC_RULES_FILE, else the default
    rule (everything, everywhere); hosts from OCIR_ENDPOINT_<KEY>. ConfigError: start-up."""
    rules = load_rules(
        rules_file or settings.rules_file,
        region_keys=settings.region_keys,
        namespace=settings.namespace,
        delete_policy=settings.delete_policy,
    )
    return RulesPlacer(rules, settings.region_endpoint)


def repository_settings(settings: Settings) -> OcirRepositorySettings | None:
    """Where OCIR repositories are created; None without OCI_COMPARTMENT_ID (feature off)."""
    if settings.compartment_id is None:
        return None
    return OcirRepositorySettings(
        compartment_id=settings.compartment_id,
        immutable=settings.repository_immutable,
        auth=settings.api_auth,
        config_file=settings.oci_config_file,
        profile=settings.oci_config_profile,
        regions=settings.api_regions,
        endpoints=settings.artifacts_endpoints,
        limits_endpoints=settings.limits_endpoints,
    )


def build_registries(settings: Settings) -> Registries:
    """Registry clients with the service's credentials, plain-HTTP hosts and retries."""
    # An overridden endpoint's host does not say whose registry it is: each stands for
    # its own account and region (ECR_ENDPOINT_<ACCOUNT>_<REGION>, or ECR_ENDPOINT for
    # the one allowed), whose GetAuthorizationToken logs in to it.
    ecr_hosts = {endpoint.host: source for source, endpoint in settings.ecr_endpoints.items()}
    credentials = build_credentials(
        CredentialSettings(
            authfile=settings.registry_auth_file,
            ecr_hosts=ecr_hosts,
            ocir=OcirLogin.from_settings(settings),
            ocir_tokens=OcirTokenSettings.from_settings(settings),
            ocir_hosts={k: e.host for k, e in settings.ocir_endpoints.items()},
        )
    )
    retry = RetryPolicy(
        attempts=settings.request_attempts,
        base_delay=settings.request_retry_seconds,
        max_delay=max(30.0, settings.request_retry_seconds),
    )
    limits = ConnectionLimits(settings.host_connections, settings.pool_timeout_seconds)
    return Registries(
        credentials, insecure=settings.insecure_registries, retry=retry, limits=limits
    )


class Service:
    """Owns every long-lived part; ``start`` and ``stop`` bracket its life."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.draining = False
        self._lock = _lock(settings.data_dir)
        self.store = store_for(
            settings.data_dir, settings.database_url, limits=attempt_limits(settings)
        )
        self.readiness = Readiness(self.store.ping)
        self.supervisor = Supervisor(self.metrics, restart_delay)
        self.registries = build_registries(settings)
        # The spool lives on the pod's volume; what a previous process left is removed.
        self.spool = Spool.open(settings.data_dir / "spool", settings.spool_max_bytes)
        self.placer = build_placer(settings)  # SYNC_RULES_FILE, else everything
        repositories = repository_settings(settings)
        self.repositories = (
            OcirRepositories(repositories, namespace=settings.namespace)
            if repositories is not None
            else None
        )
        self.runner = JobRunner(
            settings,
            self.registries,
            self.metrics,
            self.placer,
            repositories=self.repositories,
            spool=self.spool,
        )
        self.workers = WorkerPool(
            self.store, self.runner, settings, self.metrics, supervisor=self.supervisor
        )
        self.sqs = (
            SqsIntake(
                SqsSettings(
                    settings.sqs_queue_url,
                    wait_seconds=settings.sqs_wait_seconds,
                    visibility_seconds=settings.sqs_visibility_seconds,
                    max_pending=settings.max_pending_jobs,
                ),
                self.store,
                lambda payload: classify(payload, settings, self.placer),
                metrics=self.metrics,
                accepted=lambda _: self.workers.wake(),
            )
            if settings.sqs_queue_url
            else None
        )
        self.reconciler = ReconcileLoop(
            settings,
            self.registries,
            self.placer,
            self.store,
            metrics=self.metrics,
            wake_workers=self.workers.wake,
            start_task=self.supervisor.start,
        )
        self.usage: UsageLoop | None = None
        if self.repositories is not None and settings.reconcile_leader:
            self.usage = UsageLoop(
                OcirUsage(self.repositories),
                settings.region_keys,
                self.metrics,
                interval_seconds=settings.usage_interval_seconds,
                supervisor=self.supervisor,
            )

    async def start(self) -> None:
        if self.repositories is not None:
            # Unusable OCI API settings (config file, profile, region) stop start-up here,
            # not at the first push; no API call is made.
            await self.repositories.prepare(self.settings.region_keys)
        await self.store.start()
        recovered = await self.store.recover()
        if recovered:
            log.info("resuming %d job(s) interrupted by the previous process", recovered)
        self.workers.start()
        self.reconciler.start()
        if self.sqs is not None:
            self.sqs.start()
        if self.usage is not None:
            self.usage.start()
        elif self.repositories is None:
            log.info("OCIR usage figures are unavailable: OCI_COMPARTMENT_ID is not set")

    async def drain(self) -> None:
        """Readiness fails, no new job starts, running ones get the grace period."""
        self.draining = True
        if self.sqs is not None:  # messages not yet received stay for other pods
            await self.sqs.stop()
        await self.reconciler.stop()
        if self.usage is not None:
            await self.usage.stop()
        await self.workers.drain(self.settings.drain_seconds)

    async def stop(self) -> None:
        if not self.draining:
            await self.drain()
        await self.registries.aclose()
        if self.repositories is not None:
            self.repositories.close()
        await self.store.stop()
        self._lock.close()
