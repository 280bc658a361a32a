"""Reading OCIR usage on a schedule: metrics per region, and a log line when a region passes
80 % or 95 % of its storage limit (the same thresholds as the alert rules).

Only the leader pod reads (as only it reconciles), every ``SYNC_USAGE_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING

from ecr_ocir_sync.cloud.ocir_usage import OcirUsage, RegionUsage
from ecr_ocir_sync.errors import SyncError
from ecr_ocir_sync.observability.metrics import Metrics

if TYPE_CHECKING:
    from ecr_ocir_sync.service.supervisor import Supervisor

__all__ = ["Fullness", "UsageLoop", "fullness", "publish"]

log = logging.getLogger("ecr_ocir_sync.service.usage")

WARNING_FRACTION = 0.80
CRITICAL_FRACTION = 0.95


class Fullness(IntEnum):
    """How full a region's storage is against its limit."""

    UNKNOWN = -1  # no limit known
    OK = 0
    WARNING = 1  # at least 80 %
    CRITICAL = 2  # at least 95 %


def fullness(usage: RegionUsage) -> Fullness:
    fraction = usage.storage_fraction
    if fraction is None:
        return Fullness.UNKNOWN
    if fraction >= CRITICAL_FRACTION:
        return Fullness.CRITICAL
    if fraction >= WARNING_FRACTION:
        return Fullness.WARNING
    return Fullness.OK


def publish(metrics: Metrics, usage: RegionUsage) -> None:
    """Set the region's gauges; a limit not known is removed rather than shown as 0."""
    region = usage.region
    metrics.ocir_used_bytes.labels(region).set(usage.used_bytes)
    metrics.ocir_billable_bytes.labels(region).set(usage.billable_bytes)
    metrics.ocir_repositories.labels(region).set(usage.repositories)
    metrics.ocir_images.labels(region).set(usage.images)
    for gauge, limit in (
        (metrics.ocir_limit_bytes, usage.storage_limit_bytes),
        (metrics.ocir_repository_limit, usage.repository_limit),
    ):
        if limit is not None:
            gauge.labels(region).set(limit)
        else:
            with contextlib.suppress(KeyError):
                gauge.remove(region)
    metrics.ocir_usage_read.labels(region).set(time.time())


def _percent(usage: RegionUsage) -> str:
    fraction = usage.storage_fraction or 0.0
    return (
        f"OCIR {usage.region} storage at {fraction:.0%} of its limit "
        f"({usage.used_bytes} of {usage.storage_limit_bytes} bytes used, "
        f"{usage.images} images in {usage.repositories} repositories)"
    )


class UsageLoop:
    """Reads every region's usage on a schedule and keeps the gauges and log current."""

    def __init__(
        self,
        usage: OcirUsage,
        region_keys: Sequence[str],
        metrics: Metrics,
        *,
        interval_seconds: float,
        supervisor: Supervisor | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._usage = usage
        self._regions = tuple(region_keys)
        self._metrics = metrics
        self._interval = interval_seconds
        self._levels: dict[str, Fullness] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval <= 0:
            log.info("OCIR usage reads are off (SYNC_USAGE_INTERVAL_SECONDS=0)")
            return
        if self._supervisor is not None:  # an unexpected error: logged, counted, restarted
            self._task = self._supervisor.start("ocir-usage", "usage", self._run)
        else:
            self._task = asyncio.create_task(self._run(), name="ocir-usage")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self.read_all()
            await asyncio.sleep(self._interval)

    async def read_all(self) -> list[RegionUsage]:
        """One read of every region; a region that fails is logged and counted, not raised."""
        read: list[RegionUsage] = []
        for region in self._regions:
            try:
                usage = await self._usage.read(region)
            except SyncError as error:
                log.warning("cannot read OCIR usage of region %s: %s", region, error)
                self._metrics.ocir_usage_reads.labels(region, "failed").inc()
                continue
            self._metrics.ocir_usage_reads.labels(region, "ok").inc()
            publish(self._metrics, usage)
            self._log(usage)
            read.append(usage)
        return read

    def _log(self, usage: RegionUsage) -> None:
        """A line when a region's level changes (and at the first read when above 80 %)."""
        level = fullness(usage)
        previous = self._levels.get(usage.region, Fullness.OK)
        self._levels[usage.region] = level
        if level == previous or level is Fullness.UNKNOWN:
            return
        if level is Fullness.CRITICAL:
            log.error(
                "%s: past 95 %%, pushes will soon be refused; raise the limit or delete "
                "images no longer needed there",
                _percent(usage),
            )
        elif level is Fullness.WARNING:
            log.warning(
                "%s: past 80 %%; raise the limit or delete images no longer needed there",
                _percent(usage),
            )
        elif previous > Fullness.OK:
            log.info("%s: back under 80 %%", _percent(usage))
