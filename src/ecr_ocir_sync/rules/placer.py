"""The rules as a :class:`Placer`, for the runner and reconciliation (built by
``service.wiring.build_placer`` from the settings).

A drop-in for ``EnvironmentPlacer``: without a rules file it behaves the same
(everything, everywhere, same names, ``SYNC_DELETE_POLICY``, referrers on).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ecr_ocir_sync.rules.model import HostLookup, Placement, RuleSet, host_function
from ecr_ocir_sync.rules.policy import DeletePolicy

__all__ = ["Placer", "RulesPlacer", "TaggedImage"]


class TaggedImage(Protocol):
    """What placement needs of a source image (an ECR listing's entry, say)."""

    @property
    def tags(self) -> tuple[str, ...]: ...

    @property
    def pushed_at(self) -> datetime: ...


class Placer(Protocol):
    """Where an ECR image goes (rules, or the environment's defaults)."""

    def destinations(self, repository: str, tag: str | None) -> dict[str, tuple[str, str]] | None:
        """Region key → (registry host, destination repository); None when not synced."""

    def wants_repository(self, repository: str) -> bool:
        """False when no image of ``repository`` can be synced: its tags are not listed."""

    def select_tags(
        self, repository: str, images: Sequence[TaggedImage], now: datetime | None = None
    ) -> set[str]:
        """The tags of ``repository`` that are synced (filters, latest N, retain at ``now``)."""

    def expired_tags(
        self, repository: str, images: Sequence[TaggedImage], now: datetime | None = None
    ) -> set[str]:
        """The tags of ``repository`` that ECR holds but their rule's ``retain`` no longer
        keeps: deleted at the destination, never selected."""

    def retains(self, repository: str, tag: str | None) -> bool:
        """Whether the rule placing the image limits what stays at the destination."""

    def mirrors_deletes(self, repository: str, tag: str | None) -> bool: ...

    def referrers(self, repository: str, tag: str | None) -> bool:
        """Whether signatures, SBOMs and attestations come along."""


class RulesPlacer:
    """Answers the Placer questions from a RuleSet; an image no rule matches is not synced."""

    def __init__(self, rules: RuleSet, hosts: HostLookup = None) -> None:
        self.rules = rules
        self._host_of = host_function(hosts)

    def placement(self, repository: str, tag: str | None) -> Placement | None:
        return self.rules.place(repository, tag)

    def destinations(self, repository: str, tag: str | None) -> dict[str, tuple[str, str]] | None:
        """Region key → (registry host, destination repository); None when not synced.
        Raises ConfigError (not retryable) when the rule maps to a name OCIR cannot hold."""
        placement = self.rules.place(repository, tag)
        if placement is None:
            return None
        return {key: (self._host_of(key), path) for key, path in placement.destinations.items()}

    def wants_repository(self, repository: str) -> bool:
        """False when no rule can match any image of ``repository``: skip listing it."""
        return self.rules.matches_repository(repository)

    def select_tags(
        self, repository: str, images: Sequence[TaggedImage], now: datetime | None = None
    ) -> set[str]:
        """The tags to keep in sync: each owned by its first matching rule, ``latest`` and
        ``retain`` applied per rule by the image's push time."""
        if not self.rules.matches_repository(repository):
            return set()
        return {tag for tag, _ in self.rules.select(repository, _pushed(images), now)}

    def expired_tags(
        self, repository: str, images: Sequence[TaggedImage], now: datetime | None = None
    ) -> set[str]:
        """The tags ECR holds that their owning rule's ``retain`` no longer keeps."""
        if not self.rules.matches_repository(repository):
            return set()
        return {tag for tag, _ in self.rules.expired(repository, _pushed(images), now)}

    def retains(self, repository: str, tag: str | None) -> bool:
        placement = self.rules.place(repository, tag)
        return placement is not None and placement.rule.retain is not None

    def mirrors_deletes(self, repository: str, tag: str | None) -> bool:
        placement = self.rules.place(repository, tag)
        return placement is not None and placement.delete_policy is DeletePolicy.MIRROR

    def referrers(self, repository: str, tag: str | None) -> bool:
        placement = self.rules.place(repository, tag)
        return placement is not None and placement.referrers


def _pushed(images: Sequence[TaggedImage]) -> list[tuple[str, datetime]]:
    return [(tag, image.pushed_at) for image in images for tag in image.tags]
