"""Rules and rule sets: which ECR image goes to which OCIR regions, under which name.

Everything here is immutable and built by :mod:`ecr_ocir_sync.rules.loader`;
matching never reaches the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    "Retention",
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
class Retention:
    """``retain`` of a rule: which of its tags stay at the destination.

    A tag stays when EITHER clause keeps it: it is among the ``newest`` N of the rule's
    tags in its ECR repository (by ECR push time), or ECR says it was pushed within the
    last ``days`` days. Only a tag that no clause keeps is deleted at the destination, so
    ``newest`` is a floor that survives a quiet month and ``days`` a window that survives
    a burst of pushes. A clause left out keeps nothing.
    """

    newest: int | None = None
    days: int | None = None

    def keeps(self, rank: int, pushed: datetime, now: datetime) -> bool:
        """Whether the tag at ``rank`` (0 = newest push) pushed at ``pushed`` stays."""
        if self.newest is not None and rank < self.newest:
            return True
        return self.days is not None and _utc(now) - _utc(pushed) <= timedelta(days=self.days)

    def describe(self) -> str:
        clauses = []
        if self.newest is not None:
            clauses.append(f"the newest {self.newest}")
        if self.days is not None:
            clauses.append(f"those pushed in the last {self.days} day{'s' * (self.days != 1)}")
        return " or ".join(clauses)


def _utc(moment: datetime) -> datetime:
    """A naive time is taken as UTC (ECR's times are aware; tests may pass naive ones)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
    retain: Retention | None = None  # None: nothing is ever deleted for age or count

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

    def select_tags(
        self, tags_with_push_times: Sequence[tuple[str, datetime]], now: datetime | None = None
    ) -> list[str]:
        """Reconciliation: the tags passing the tag filters, newest push first, at most
        ``tags.latest`` of them, and only those ``retain`` keeps (at ``now``, default the
        current time). The caller has checked the repository already.

        Equal push times are ordered by version (tags that are versions first, higher
        first), then by tag text descending, so the cut at ``latest`` is deterministic.
        Push times must be all timezone-aware or all naive.
        """
        ranked = self._ranked(tags_with_push_times)
        latest = len(ranked) if self.tags.latest is None else self.tags.latest
        return [
            tag
            for rank, (tag, at) in enumerate(ranked)
            if rank < latest and self._retained(rank, at, now)
        ]

    def expired_tags(
        self, tags_with_push_times: Sequence[tuple[str, datetime]], now: datetime | None = None
    ) -> list[str]:
        """The tags passing the tag filters that ``retain`` does not keep: to be deleted at
        the destination (never selected, so reconciliation never copies them back)."""
        if self.retain is None:
            return []
        ranked = self._ranked(tags_with_push_times)
        return [tag for rank, (tag, at) in enumerate(ranked) if not self._retained(rank, at, now)]

    def _retained(self, rank: int, pushed: datetime, now: datetime | None) -> bool:
        if self.retain is None:
            return True
        return self.retain.keeps(rank, pushed, now or datetime.now(UTC))

    def _ranked(
        self, tags_with_push_times: Sequence[tuple[str, datetime]]
    ) -> list[tuple[str, datetime]]:
        passing = [(tag, at) for tag, at in tags_with_push_times if self.tags.mismatch(tag) is None]
        passing.sort(key=_newest_first, reverse=True)
        first: dict[str, datetime] = {}  # a tag listed twice counts at its newest push
        for tag, at in passing:
            first.setdefault(tag, at)
        return list(first.items())

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
        self,
        repository: str,
        tags_with_push_times: Sequence[tuple[str, datetime]],
        now: datetime | None = None,
    ) -> list[tuple[str, Placement]]:
        """Reconciliation of one repository: (tag, placement) for every tag to keep in sync.

        Each tag belongs to the first rule it matches, as for events; each rule then keeps
        its ``tags.latest`` newest that its ``retain`` keeps. A tag a rule owns but cuts
        does not fall through to a later rule. Newest first within each rule, rules in
        file order.
        """
        return [
            (tag, self.placement(rule, repository))
            for rule, owned in self._owners(repository, tags_with_push_times)
            for tag in rule.select_tags(owned, now)
        ]

    def expired(
        self,
        repository: str,
        tags_with_push_times: Sequence[tuple[str, datetime]],
        now: datetime | None = None,
    ) -> list[tuple[str, Placement]]:
        """(tag, placement) for every tag of ``repository`` that its owning rule's ``retain``
        no longer keeps: what retention deletes at the destination. Only tags ECR holds
        (those given) and that a rule owns, so nothing the mirror did not place is named."""
        return [
            (tag, self.placement(rule, repository))
            for rule, owned in self._owners(repository, tags_with_push_times)
            for tag in rule.expired_tags(owned, now)
        ]

    def _owners(
        self, repository: str, tags_with_push_times: Sequence[tuple[str, datetime]]
    ) -> list[tuple[Rule, list[tuple[str, datetime]]]]:
        """Each rule with the tags it owns (the first rule a tag matches owns it)."""
        remaining = list(tags_with_push_times)
        owners: list[tuple[Rule, list[tuple[str, datetime]]]] = []
        for rule in self.rules_for_repository(repository):
            owned: list[tuple[str, datetime]] = []
            others: list[tuple[str, datetime]] = []
            for item in remaining:
                (owned if rule.tags.mismatch(item[0]) is None else others).append(item)
            if owned:
                owners.append((rule, owned))
            remaining = others
        return owners
