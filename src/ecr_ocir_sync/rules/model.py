"""Rules and rule sets: which ECR image goes to which OCIR regions, under which name.

Everything here is immutable and built by :mod:`ecr_ocir_sync.rules.loader`;
matching never reaches the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from semver import Version

from ecr_ocir_sync.errors import ConfigError, InvalidReferenceError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.oci.reference import ImageReference, check_repository
from ecr_ocir_sync.rules.patterns import EVERY_REPOSITORY, Glob
from ecr_ocir_sync.rules.policy import DeletePolicy
from ecr_ocir_sync.rules.regions import ocir_host
from ecr_ocir_sync.rules.versions import SemverRange, tag_version

__all__ = [
    "HostLookup",
    "Placement",
    "RepositoryFilter",
    "RepositoryMapping",
    "Rule",
    "RuleSet",
    "TagFilter",
    "host_function",
]

HostLookup = Callable[[str], str] | Mapping[str, str] | None
"""Region key → registry host: a function (``Settings.region_endpoint``), a mapping
(keys it lacks get ``<key>.ocir.io``) or None (always ``<key>.ocir.io``)."""


_NOT_A_VERSION = Version(0)


def _quoted(texts: Sequence[str]) -> str:
    return ", ".join(f"'{text}'" for text in texts)


def host_function(hosts: HostLookup) -> Callable[[str], str]:
    """``hosts`` as a function: region key → registry host."""
    if hosts is None:
        return ocir_host
    if isinstance(hosts, Mapping):
        table = hosts
        return lambda key: table.get(key) or ocir_host(key)
    return hosts


@dataclass(frozen=True, slots=True)
class RepositoryFilter:
    """``repositories.include`` (any glob) minus ``repositories.exclude`` (any glob)."""

    include: tuple[Glob, ...] = (EVERY_REPOSITORY,)
    exclude: tuple[Glob, ...] = ()

    def mismatch(self, repository: str) -> str | None:
        """Why ``repository`` is filtered out, or None when it passes."""
        if not any(glob.matches(repository) for glob in self.include):
            texts = [glob.text for glob in self.include]
            return (
                f"repository '{repository}' matches none of repositories.include {_quoted(texts)}"
            )
        for glob in self.exclude:
            if glob.matches(repository):
                return f"repository '{repository}' matches repositories.exclude '{glob.text}'"
        return None


@dataclass(frozen=True, slots=True)
class TagFilter:
    """Tag filters; every one that is set must pass. ``latest`` only limits reconciliation."""

    include: tuple[re.Pattern[str], ...] = ()  # any must match the whole tag; empty = every tag
    exclude: tuple[re.Pattern[str], ...] = ()  # any found anywhere in the tag excludes it
    semver: SemverRange | None = None
    latest: int | None = None

    def mismatch(self, tag: str) -> str | None:
        """Why ``tag`` is filtered out, or None when it passes (``latest`` is not applied)."""
        if self.include and not any(regex.fullmatch(tag) for regex in self.include):
            texts = [regex.pattern for regex in self.include]
            return f"tag '{tag}' fully matches none of tags.include {_quoted(texts)}"
        for regex in self.exclude:
            if regex.search(tag):
                return f"tag '{tag}' matches tags.exclude '{regex.pattern}'"
        if self.semver is not None:
            version = tag_version(tag)
            if version is None:
                return f"tag '{tag}' is not a version, so tags.semver '{self.semver.text}' fails"
            if version not in self.semver:
                return (
                    f"tag '{tag}' (version {version}) is outside tags.semver '{self.semver.text}'"
                )
        return None


@dataclass(frozen=True, slots=True)
class RepositoryMapping:
    """ECR repository → path under the namespace: ``rename``, then ``strip_prefix``, then
    ``add_prefix`` (each prefix is plain text: ``mirror/`` or ``mirror-``)."""

    strip_prefix: str = ""
    add_prefix: str = ""
    rename: Mapping[str, str] = field(default_factory=dict)  # exact ECR name → new name

    @property
    def identity(self) -> bool:
        return not (self.strip_prefix or self.add_prefix or self.rename)

    def apply(self, repository: str) -> str:
        """The mapped path, not yet checked (``RuleSet.place`` checks it)."""
        name = self.rename.get(repository, repository)
        if self.strip_prefix and name.startswith(self.strip_prefix):
            name = name[len(self.strip_prefix) :]
        return self.add_prefix + name


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One rule with the file's defaults already merged in; equal only to itself (two
    identical rules at different places in the file are different rules)."""

    label: str  # "rules[0] 'releases'", "rules[1]" when unnamed, or the environment default's
    name: str | None
    repositories: RepositoryFilter
    tags: TagFilter
    regions: tuple[str, ...]
    mapping: RepositoryMapping
    delete_policy: DeletePolicy
    referrers: bool

    def matches_repository(self, repository: str) -> bool:
        return self.repositories.mismatch(repository) is None

    def mismatch(self, repository: str, tag: str | None) -> str | None:
        """Why the image does not match, or None when it does; no tag = repository only."""
        reason = self.repositories.mismatch(repository)
        if reason is None and tag is not None:
            reason = self.tags.mismatch(tag)
        return reason

    def matches(self, repository: str, tag: str | None) -> bool:
        return self.mismatch(repository, tag) is None

    def select_tags(self, tags_with_push_times: Sequence[tuple[str, datetime]]) -> list[str]:
        """Reconciliation: the tags passing the tag filters, newest push first, at most
        ``tags.latest`` of them. The caller has checked the repository already.

        Equal push times are ordered by version (tags that are versions first, higher
        first), then by tag text descending, so the cut at ``latest`` is deterministic.
        Push times must be all timezone-aware or all naive.
        """
        passing = [(tag, at) for tag, at in tags_with_push_times if self.tags.mismatch(tag) is None]
        passing.sort(key=_newest_first, reverse=True)
        ordered = list(dict.fromkeys(tag for tag, _ in passing))
        return ordered if self.tags.latest is None else ordered[: self.tags.latest]

    def destination_repository(self, repository: str, namespace: str) -> str:
        """``<namespace>/<mapped>``; ConfigError (not retryable) when that is not a valid name."""
        mapped = f"{namespace}/{self.mapping.apply(repository)}"
        try:
            return check_repository(mapped)
        except InvalidReferenceError as error:
            raise ConfigError(
                f"{self.label} maps ECR repository '{repository}' to '{mapped}', which OCIR "
                f"cannot hold ({error.message}); fix the rule's mapping"
            ) from None


def _newest_first(item: tuple[str, datetime]) -> tuple[datetime, bool, Version, str]:
    tag, pushed = item
    version = tag_version(tag)
    return pushed, version is not None, version or _NOT_A_VERSION, tag


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one image goes: the rule that matched and, per region key, the repository
    path in that region (namespace included, e.g. ``{"mel": "ns/mirror/web"}``)."""

    rule: Rule
    repository: str  # the ECR repository placed
    destinations: Mapping[str, str]  # region key → "<namespace>/<mapped path>", rule order

    @property
    def delete_policy(self) -> DeletePolicy:
        return self.rule.delete_policy

    @property
    def referrers(self) -> bool:
        return self.rule.referrers

    @property
    def region_keys(self) -> tuple[str, ...]:
        return tuple(self.destinations)

    def references(
        self, tag: str | None, digest: Digest | None = None, *, hosts: HostLookup = None
    ) -> dict[str, ImageReference]:
        """Region key → full destination reference ``<host>/<ns>/<path>[:tag][@digest]``."""
        host_of = host_function(hosts)
        return {
            key: ImageReference(host_of(key), repository, tag, digest)
            for key, repository in self.destinations.items()
        }


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules in file order; the first rule an image matches decides where it goes."""

    rules: tuple[Rule, ...]
    namespace: str
    region_keys: tuple[str, ...]  # OCI_REPO_REGION_KEY
    source: Path | None = None  # the rules file; None for the environment-only default

    def match(self, repository: str, tag: str | None) -> Rule | None:
        """The first rule matching ``repository`` (and ``tag``, when there is one)."""
        return next((rule for rule in self.rules if rule.matches(repository, tag)), None)

    def place(self, repository: str, tag: str | None) -> Placement | None:
        """Where an event's image goes, or None when no rule matches (do not sync it).

        ``tag`` None is a digest-only image: it matches on the repository alone.
        ``tags.latest`` is not applied: an event for a new push always counts as newest.
        Raises ConfigError when the matching rule maps the repository to an invalid name.
        """
        rule = self.match(repository, tag)
        return None if rule is None else self.placement(rule, repository)

    def placement(self, rule: Rule, repository: str) -> Placement:
        """``rule``'s destinations for ``repository`` (whether or not it matches)."""
        path = rule.destination_repository(repository, self.namespace)
        return Placement(rule, repository, dict.fromkeys(rule.regions, path))

    def rules_for_repository(self, repository: str) -> tuple[Rule, ...]:
        """The rules whose repository filters pass; empty = skip listing the repository."""
        return tuple(rule for rule in self.rules if rule.matches_repository(repository))

    def matches_repository(self, repository: str) -> bool:
        """Whether any image of ``repository`` can be synced (reconciliation skips it if not)."""
        return any(rule.matches_repository(repository) for rule in self.rules)

    def select(
        self, repository: str, tags_with_push_times: Sequence[tuple[str, datetime]]
    ) -> list[tuple[str, Placement]]:
        """Reconciliation of one repository: (tag, placement) for every tag to keep in sync.

        Each tag belongs to the first rule it matches, as for events; each rule then keeps
        its ``tags.latest`` newest. A tag a rule owns but cuts does not fall through to a
        later rule. Newest first within each rule, rules in file order.
        """
        remaining = list(tags_with_push_times)
        selected: list[tuple[str, Placement]] = []
        for rule in self.rules_for_repository(repository):
            owned: list[tuple[str, datetime]] = []
            others: list[tuple[str, datetime]] = []
            for item in remaining:
                (owned if rule.tags.mismatch(item[0]) is None else others).append(item)
            if not owned:
                continue
            remaining = others
            placement = self.placement(rule, repository)
            selected.extend((tag, placement) for tag in rule.select_tags(owned))
        return selected
