"""Reconciliation: make every region converge on what ECR holds, whatever events were missed.

A pass lists ECR's repositories and images through the ECR API, lists each
destination repository's tags and resolves the ones both sides have, and
plans per repository: tags to copy (missing at a region), to update (the tag
points elsewhere), to delete (gone from ECR, when the delete policy mirrors),
to expire (still in ECR, but their rule's ``retain`` no longer keeps them) and
tags already in sync.  An expired tag is never selected, so a pass never copies
back what retention removed, and the next pass plans nothing for it.  Applying
the plan enqueues ordinary jobs, so the workers, retries and per-tag ordering
apply to them as to events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ecr_ocir_sync.cloud.ecr_api import EcrCatalog, EcrImage
from ecr_ocir_sync.engine.referrers import is_referrer_tag
from ecr_ocir_sync.errors import NotFoundError, SyncError
from ecr_ocir_sync.jobs.request import Action, Origin, SyncRequest
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.registry.pool import Registries
from ecr_ocir_sync.rules.patterns import EVERY_REPOSITORY, Glob
from ecr_ocir_sync.rules.placer import Placer

__all__ = ["ReconcilePlan", "Reconciler", "RepositoryPlan", "TagDrift"]


@dataclass(frozen=True, slots=True)
class TagDrift:
    tag: str
    region: str
    source_digest: Digest | None
    destination_digest: Digest | None


@dataclass(slots=True)
class RepositoryPlan:
    repository: str
    to_copy: list[TagDrift] = field(default_factory=list)
    to_update: list[TagDrift] = field(default_factory=list)
    to_delete: list[TagDrift] = field(default_factory=list)
    to_expire: list[TagDrift] = field(default_factory=list)  # retention: ECR still has them
    in_sync: int = 0
    error: str | None = None

    @property
    def drift(self) -> int:
        return len(self.to_copy) + len(self.to_update) + len(self.to_delete) + len(self.to_expire)


@dataclass(slots=True)
class ReconcilePlan:
    account: str
    region: str
    listed_at: float
    repositories: list[RepositoryPlan] = field(default_factory=list)
    ecr_requests: int = 0
    registry_requests: int = 0
    seconds: float = 0.0

    def totals(self) -> dict[str, int]:
        return {
            "copy": sum(len(r.to_copy) for r in self.repositories),
            "update": sum(len(r.to_update) for r in self.repositories),
            "delete": sum(len(r.to_delete) for r in self.repositories),
            "expire": sum(len(r.to_expire) for r in self.repositories),
            "in_sync": sum(r.in_sync for r in self.repositories),
            "errors": sum(1 for r in self.repositories if r.error),
        }

    def requests(self) -> list[SyncRequest]:
        """One job per image and action: a PUSH covers every region that lacks the tag."""
        wanted: dict[tuple[str, str, Action], Digest | None] = {}
        for repository in self.repositories:
            for drift in (*repository.to_copy, *repository.to_update):
                wanted[(repository.repository, drift.tag, Action.PUSH)] = drift.source_digest
            for kind, drifts in (
                (Action.DELETE, repository.to_delete),
                (Action.EXPIRE, repository.to_expire),
            ):
                for drift in drifts:
                    wanted.setdefault(
                        (repository.repository, drift.tag, kind), drift.destination_digest
                    )
        return [
            SyncRequest(
                action,
                self.account,
                self.region,
                name,
                tag,
                digest,
                self.listed_at,
                None,
                Origin.RECONCILE,  # built from ECR's listing: no event supersedes it
            )
            for (name, tag, action), digest in wanted.items()
        ]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "totals": self.totals()}


@dataclass(frozen=True, slots=True)
class _Target:
    region: str
    host: str
    repository: str


class Reconciler:
    """Plans one pass for one ECR account and region."""

    def __init__(
        self,
        catalog: EcrCatalog,
        registries: Registries,
        placer: Placer,
        *,
        concurrency: int = 32,
    ) -> None:
        self._catalog = catalog
        self._registries = registries
        self._placer = placer
        self._slots = asyncio.Semaphore(concurrency)
        self._requests = 0

    async def plan(self, repositories: Glob = EVERY_REPOSITORY) -> ReconcilePlan:
        """The plan for the ECR repositories ``repositories`` matches (the rules' glob)."""
        started = time.monotonic()
        plan = ReconcilePlan(self._catalog.account, self._catalog.region, time.time())
        names = [
            name
            for name in await self._catalog.repositories()
            if repositories.matches(name) and self._placer.wants_repository(name)
        ]
        plan.repositories = list(await asyncio.gather(*(self._repository(n) for n in names)))
        plan.ecr_requests = self._catalog.requests
        plan.registry_requests = self._requests
        plan.seconds = time.monotonic() - started
        return plan

    async def _repository(self, name: str) -> RepositoryPlan:
        plan = RepositoryPlan(name)
        try:
            images = await self._catalog.images(name)
            await self._compare(plan, images)
        except SyncError as error:
            plan.error = str(error)
        return plan

    async def _compare(self, plan: RepositoryPlan, images: Sequence[EcrImage]) -> None:
        source = {tag: image.digest for image in images for tag in image.tags}
        now = datetime.now(UTC)  # one moment for both, so no tag is kept and expired at once
        selected = self._placer.select_tags(plan.repository, images, now)
        expired = {
            tag
            for tag in self._placer.expired_tags(plan.repository, images, now)
            if not is_referrer_tag(tag)
        }
        targets: dict[_Target, _Tags] = {}  # each destination repository's placed tags
        for tag in sorted(selected | expired):
            for key, (host, repository) in (
                self._placer.destinations(plan.repository, tag) or {}
            ).items():
                placed = targets.setdefault(_Target(key, host, repository), _Tags())
                (placed.expired if tag in expired else placed.selected).append(tag)
        await asyncio.gather(
            *(self._destination(plan, target, tags, source) for target, tags in targets.items())
        )

    async def _destination(
        self, plan: RepositoryPlan, target: _Target, tags: _Tags, source: dict[str, Digest]
    ) -> None:
        key, repository = target.region, target.repository
        client = self._registries.client(target.host)
        async with self._slots:
            self._requests += 1
            try:
                present = set(await client.list_tags(repository))
            except NotFoundError:
                present = set()

        async def resolve(tag: str) -> Digest | None:
            async with self._slots:
                self._requests += 1
                return await client.manifest_digest(repository, tag)

        common = [tag for tag in tags.selected if tag in present]
        expired = [tag for tag in tags.expired if tag in present]
        # Tags of the referrers schema come and go with their image (the mirror writes
        # the fallback index itself): never drift of their own.
        gone = sorted(
            tag
            for tag in present - set(source)
            if not is_referrer_tag(tag) and self._placer.mirrors_deletes(plan.repository, tag)
        )
        resolving = (*common, *expired, *gone)
        digests = await asyncio.gather(*(resolve(tag) for tag in resolving))
        current = dict(zip(resolving, digests, strict=True))
        for tag in tags.selected:
            if tag not in present:
                plan.to_copy.append(TagDrift(tag, key, source[tag], None))
            elif current[tag] != source[tag]:
                plan.to_update.append(TagDrift(tag, key, source[tag], current[tag]))
            else:
                plan.in_sync += 1
        plan.to_expire.extend(
            TagDrift(tag, key, source[tag], current[tag])
            for tag in expired
            if current[tag] is not None
        )
        plan.to_delete.extend(
            TagDrift(tag, key, None, current[tag]) for tag in gone if current[tag] is not None
        )


@dataclass(slots=True)
class _Tags:
    """The tags placed at one destination repository: to keep in sync, and expired."""

    selected: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
