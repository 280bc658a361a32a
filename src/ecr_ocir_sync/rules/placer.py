"""The rules as a :class:`ecr_ocir_sync.reconcile.Placer`, for the runner and reconciliation.

A drop-in for ``EnvironmentPlacer``: without a rules file it behaves the same
(everything, everywhere, same names, ``SYNC_DELETE_POLICY``, referrers on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ecr_ocir_sync.rules.loader import load_rules, rules_path
from ecr_ocir_sync.rules.model import HostLookup, Placement, RuleSet, host_function
from ecr_ocir_sync.rules.policy import DeletePolicy
from ecr_ocir_sync.settings import ServiceSettings

if TYPE_CHECKING:
    from ecr_ocir_sync.cloud.ecr_api import EcrImage

__all__ = ["Placer", "RulesPlacer"]


class Placer(Protocol):
    """Where an ECR image goes (rules, or the environment's defaults)."""

    def destinations(self, repository: str, tag: str | None) -> dict[str, tuple[str, str]] | None:
        """Region key → (registry host, destination repository); None when not synced."""

    def wants_repository(self, repository: str) -> bool:
        """False when no image of ``repository`` can be synced: its tags are not listed."""

    def select_tags(self, repository: str, images: Sequence[EcrImage]) -> set[str]:
        """The tags of ``repository`` that are synced (filters, latest N)."""

    def mirrors_deletes(self, repository: str, tag: str | None) -> bool: ...

    def referrers(self, repository: str, tag: str | None) -> bool:
        """Whether signatures, SBOMs and attestations come along."""


class RulesPlacer:
    """Answers the Placer questions from a RuleSet; an image no rule matches is not synced."""

    def __init__(self, rules: RuleSet, hosts: HostLookup = None) -> None:
        self.rules = rules
        self._host_of = host_function(hosts)

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        flag: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> RulesPlacer:
        """Rules from ``--rules`` (``flag``), else ``SYNC_RULES_FILE``, else the environment
        default; hosts from ``settings.region_endpoint``. Raises ConfigError (start-up)."""
        path = rules_path(flag) if environ is None else rules_path(flag, environ)
        rules = load_rules(
            path,
            region_keys=settings.region_keys,
            namespace=settings.namespace,
            delete_policy=settings.delete_policy,
        )
        return cls(rules, settings.region_endpoint)

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

    def select_tags(self, repository: str, images: Sequence[EcrImage]) -> set[str]:
        """The tags to keep in sync: each owned by its first matching rule, ``latest`` applied
        per rule by the image's push time."""
        if not self.rules.matches_repository(repository):
            return set()
        pushed = [(tag, image.pushed_at) for image in images for tag in image.tags]
        return {tag for tag, _ in self.rules.select(repository, pushed)}

    def mirrors_deletes(self, repository: str, tag: str | None) -> bool:
        placement = self.rules.place(repository, tag)
        return placement is not None and placement.delete_policy is DeletePolicy.MIRROR

    def referrers(self, repository: str, tag: str | None) -> bool:
        placement = self.rules.place(repository, tag)
        return placement is not None and placement.referrers
