"""Retention at the destinations: deleting the tags a rule's ``retain`` no longer keeps.

Which tags those are is decided by the rules from ECR's own listing (tags and push
times, through the ECR API), the same selection reconciliation uses: a tag expired
here is never selected there, so reconciliation never copies it back.  Only tags ECR
holds under a rule with ``retain`` are ever named, never the mirror's referrer tags.
Deleting follows the tag semantics of ``engine.delete``: the tag alone where the
registry can; where it cannot, a manifest shared with a tag that stays is kept
(``kept: shared with 1.0``).

Two entry points: after each successful push (the pushed rule's expired tags at the
regions that took the push), and the EXPIRE jobs reconciliation plans.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ecr_ocir_sync.cloud.ecr_api import EcrCatalog
from ecr_ocir_sync.engine.delete import SourceHolds, delete_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.engine.referrers import is_referrer_tag
from ecr_ocir_sync.engine.result import CopyResult
from ecr_ocir_sync.errors import NotFoundError, SyncError
from ecr_ocir_sync.jobs.model import Job
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference
from ecr_ocir_sync.registry.pool import Registries
from ecr_ocir_sync.rules.placer import Placer

__all__ = ["CatalogFactory", "Retention"]

log = logging.getLogger("ecr_ocir_sync.service.retention")

CatalogFactory = Callable[[str, str], EcrCatalog]
"""(account, region) → the ECR API listing of that account and region."""


class Retention:
    """Expired tags of one ECR repository, and their deletion at the destinations."""

    def __init__(
        self, placer: Placer, registries: Registries, catalogs: CatalogFactory = EcrCatalog
    ) -> None:
        self._placer = placer
        self._registries = registries
        self._new_catalog = catalogs
        self._catalogs: dict[tuple[str, str], EcrCatalog] = {}

    async def expired(self, job: Job) -> set[str]:
        """The tags of ``job``'s repository that ECR holds and their rule no longer keeps;
        raises SyncError when ECR cannot be listed."""
        key = (job.account, job.region)
        if key not in self._catalogs:
            self._catalogs[key] = self._new_catalog(*key)
        images = await self._catalogs[key].images(job.repository)
        now = datetime.now(UTC)
        expired = self._placer.expired_tags(job.repository, images, now)
        return {tag for tag in expired if not is_referrer_tag(tag)}

    async def expire(self, job: Job, source: str, targets: list[Destination]) -> CopyResult | str:
        """An EXPIRE job: delete its tag at ``targets`` while the rules still expire it;
        otherwise the reason it is moot. Raises SyncError when ECR cannot be listed."""
        expired = await self.expired(job)
        if job.tag not in expired:
            return f"tag {job.tag} is kept by its rule's retain now (or left ECR); not deleted"
        return await delete_image(source, targets, source_holds=_kept_unless(expired))

    async def after_push(self, job: Job, source: str, regions: list[str]) -> dict[str, str]:
        """After ``job`` pushed to ``regions``: delete there the tags its rule no longer
        keeps. Region → what was done; a failure is reported there, never raised (the
        push stands; the next reconciliation expires what is left)."""
        if not regions or not self._placer.retains(job.repository, job.tag):
            return {}
        try:
            expired = await self.expired(job)
        except SyncError as error:
            log.warning("retention after pushing %s skipped: %s", source, error)
            return dict.fromkeys(regions, f"retain not applied: {error}")
        details: dict[str, str] = {}
        for region in regions:
            try:
                details[region] = await self._expire_at(job, region, expired, source)
            except SyncError as error:
                log.warning("retention at %s after pushing %s failed: %s", region, source, error)
                details[region] = f"retain not applied: {error}"
        return {region: detail for region, detail in details.items() if detail}

    async def _expire_at(self, job: Job, region: str, expired: set[str], source: str) -> str:
        """Delete at ``region`` the expired tags placed there; the details, joined."""
        wanted: dict[tuple[str, str], list[str]] = {}  # (host, repository) → expired tags
        for tag in sorted(expired):
            placed = (self._placer.destinations(job.repository, tag) or {}).get(region)
            if placed is not None:
                wanted.setdefault(placed, []).append(tag)
        done: list[str] = []
        for (host, repository), tags in wanted.items():
            client = self._registries.client(host)
            try:
                present = set(await client.list_tags(repository))
            except NotFoundError:
                continue
            targets = [
                Destination(client, ImageReference(host, repository, tag, None), region)
                for tag in tags
                if tag in present
            ]
            for target in targets:
                result = await delete_image(source, [target], source_holds=_kept_unless(expired))
                (outcome,) = result.destinations
                if outcome.error is not None:
                    log.warning(
                        "retention: deleting %s failed: %s", target.reference, outcome.error
                    )
                said = outcome.detail if outcome.error is None else f"not deleted: {outcome.error}"
                done.append(f"{target.reference.tag}: {said}")
        return f"retain: {'; '.join(done)}" if done else ""


def _kept_unless(expired: set[str]) -> SourceHolds:
    """A tag sharing the manifest stays unless it is expired too (a tag not from ECR, or
    kept by its rule, is never taken down with an expired sibling)."""

    async def holds(tag: str, _digest: Digest) -> bool:
        return tag not in expired

    return holds
