"""Turning the decoded YAML into rules, adding a problem for everything wrong."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ecr_ocir_sync.errors import InvalidReferenceError
from ecr_ocir_sync.oci.reference import check_repository
from ecr_ocir_sync.rules.document import KeyPath, Problems
from ecr_ocir_sync.rules.model import (
    RepositoryFilter,
    RepositoryMapping,
    Retention,
    Rule,
    TagFilter,
)
from ecr_ocir_sync.rules.patterns import Glob, compile_glob, glob_problem
from ecr_ocir_sync.rules.policy import DeletePolicy
from ecr_ocir_sync.rules.versions import SemverRange, parse_range

__all__ = ["SUPPORTED_VERSIONS", "RuleBuilder", "valid_repository"]

SUPPORTED_VERSIONS = (1,)

_TOP_KEYS = ("version", "defaults", "rules")
_RULE_KEYS = (
    "name",
    "repositories",
    "tags",
    "regions",
    "mapping",
    "delete",
    "referrers",
    "retain",
)
_REPOSITORY_KEYS = ("include", "exclude")
_TAG_KEYS = ("include", "exclude", "semver", "latest")
_MAPPING_KEYS = ("strip_prefix", "add_prefix", "rename")
_RETAIN_KEYS = ("newest", "days")


def valid_repository(name: str) -> bool:
    return _why_invalid(name) is None


@dataclass(slots=True)
class _Settings:
    """What one mapping (``defaults`` or a rule) sets; None = not set there."""

    include: tuple[Glob, ...] | None = None
    exclude: tuple[Glob, ...] | None = None
    tag_include: tuple[re.Pattern[str], ...] | None = None
    tag_exclude: tuple[re.Pattern[str], ...] | None = None
    semver: SemverRange | None = None
    latest: int | None = None
    regions: tuple[str, ...] | None = None
    strip_prefix: str | None = None
    add_prefix: str | None = None
    rename: dict[str, str] | None = None
    delete: DeletePolicy | None = None
    referrers: bool | None = None
    retain: Retention | None = None  # rules only: never in defaults

    def over(self, defaults: _Settings) -> _Settings:
        """These settings, with ``defaults`` filling whatever is not set here."""
        own = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(
            defaults, **{name: value for name, value in own.items() if value is not None}
        )


def _kind(value: Any) -> str:
    kinds = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}
    return "nothing" if value is None else kinds.get(type(value), type(value).__name__)


class RuleBuilder:
    """Turns the decoded YAML into rules, adding a problem for everything wrong."""

    def __init__(
        self, problems: Problems, keys: tuple[str, ...], namespace: str, policy: DeletePolicy
    ) -> None:
        self.problems = problems
        self.keys = keys
        self.namespace = namespace
        self.policy = policy

    def rules(self, data: Any) -> tuple[Rule, ...]:
        add = self.problems.add
        if data is None:
            add((), "the file is empty; start it with 'version: 1' and a 'rules:' list")
            return ()
        if not isinstance(data, dict):
            add((), f"the file must be a mapping of version, defaults and rules, not {_kind(data)}")
            return ()
        if not self.version(data):
            return ()  # another version's keys would only add noise
        self.unknown(data, (), _TOP_KEYS)
        defaults = _Settings()
        if (
            "defaults" in data
            and (raw := self.mapping(data["defaults"], ("defaults",))) is not None
        ):
            defaults = self.settings(
                raw, ("defaults",), tuple(k for k in _RULE_KEYS if k not in ("name", "retain"))
            )
        rules_value = data.get("rules")
        if not isinstance(rules_value, list) or not rules_value:
            got = "missing" if rules_value is None else f"{_kind(rules_value)}"
            add(
                ("rules",),
                f"must be a non-empty list of rules (got {got}); without rules nothing is synced",
            )
            return ()
        built: list[Rule] = []
        names: dict[str, int] = {}
        for index, raw_rule in enumerate(rules_value):
            path: KeyPath = ("rules", index)
            raw = self.mapping(raw_rule, path)
            if raw is None:
                continue
            name = self.name(raw, index, names)
            own = self.settings(raw, path, _RULE_KEYS)
            label = f"rules[{index}]" + (f" '{name}'" if name else "")
            built.append(self.rule(own.over(defaults), label, name, path))
        if not self.problems.items:  # a rule with broken filters is no catch-all
            self.reachable(built)
        return tuple(built)

    def version(self, data: dict[Any, Any]) -> bool:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        if "version" not in data:
            self.problems.add(
                (), f"'version' is required; add 'version: 1' (supported: {supported})"
            )
            return False
        value = data["version"]
        if isinstance(value, bool) or value not in SUPPORTED_VERSIONS or not isinstance(value, int):
            self.problems.add(
                ("version",), f"{value!r} is not supported; supported versions: {supported}"
            )
            return False
        return True

    def unknown(self, raw: dict[Any, Any], path: KeyPath, allowed: Sequence[str]) -> None:
        for key in raw:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if key == "name" and not hint:
                hint = " (names belong on each rule, not in defaults)"
            if key == "retain":  # not 'regions': it is a rule's key, misplaced
                hint = " (retain belongs on each rule: what is deleted is decided rule by rule)"
            self.problems.add(
                path,
                f"unknown key '{key}'{hint}; expected one of {', '.join(allowed)}",
                key=str(key),
            )

    def mapping(self, value: Any, path: KeyPath, keys: Sequence[str] = ()) -> dict[Any, Any] | None:
        if not isinstance(value, dict):
            what = f"a mapping of {', '.join(keys)}" if keys else "a mapping"
            self.problems.add(path, f"must be {what}, not {_kind(value)}")
            return None
        if keys:
            self.unknown(value, path, keys)
        return value

    def name(self, raw: dict[Any, Any], index: int, names: dict[str, int]) -> str | None:
        path: KeyPath = ("rules", index)
        if "name" not in raw:
            return None
        name = raw["name"]
        if not isinstance(name, str) or not name.strip():
            self.problems.add((*path, "name"), f"must be a non-empty string, not {_kind(name)}")
            return None
        if name in names:
            self.problems.add(
                (*path, "name"),
                f"'{name}' is also the name of rules[{names[name]}]; names are unique",
            )
        names.setdefault(name, index)
        return name

    def settings(self, raw: dict[Any, Any], path: KeyPath, allowed: Sequence[str]) -> _Settings:
        """What ``raw`` (a rule, or ``defaults``) sets, each value checked."""
        self.unknown(raw, path, allowed)
        found = _Settings()
        if "repositories" in raw:
            self.repositories(raw["repositories"], (*path, "repositories"), found)
        if "tags" in raw:
            self.tags(raw["tags"], (*path, "tags"), found)
        if "regions" in raw:
            found.regions = self.regions(raw["regions"], (*path, "regions"))
        if "mapping" in raw:
            self.repository_mapping(raw["mapping"], (*path, "mapping"), found)
        if "delete" in raw:
            found.delete = self.delete(raw["delete"], (*path, "delete"))
        if "referrers" in raw:
            value = raw["referrers"]
            if isinstance(value, bool):
                found.referrers = value
            else:
                self.problems.add((*path, "referrers"), f"must be true or false, not {value!r}")
        if "retain" in raw:
            found.retain = self.retain(raw["retain"], (*path, "retain"))
        return found

    def retain(self, value: Any, path: KeyPath) -> Retention | None:
        """``retain: {newest: N, days: D}``: at least one, each a whole number ≥ 1."""
        section = self.mapping(value, path, _RETAIN_KEYS)
        if section is None:
            return None
        if not any(key in section for key in _RETAIN_KEYS):
            self.problems.add(
                path,
                "names no limit; give newest (tags to keep) and/or days (keep tags pushed "
                "within that many days), or remove retain to keep every tag",
            )
            return None
        counts = {
            key: self.count(section[key], (*path, key), unit)
            for key, unit in (("newest", "tags"), ("days", "days"))
            if key in section
        }
        if any(count is None for count in counts.values()):
            return None
        return Retention(newest=counts.get("newest"), days=counts.get("days"))

    def count(self, value: Any, path: KeyPath, unit: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problems.add(path, f"must be a whole number of {unit}, at least 1, not {value!r}")
            return None
        return value

    def repositories(self, value: Any, path: KeyPath, found: _Settings) -> None:
        section = self.mapping(value, path, _REPOSITORY_KEYS)
        if not section:
            return
        if "include" in section:
            found.include = self.globs(section["include"], (*path, "include"), empty_ok=False)
        if "exclude" in section:
            found.exclude = self.globs(section["exclude"], (*path, "exclude"), empty_ok=True)

    def tags(self, value: Any, path: KeyPath, found: _Settings) -> None:
        section = self.mapping(value, path, _TAG_KEYS)
        if not section:
            return
        if "include" in section:
            found.tag_include = self.regexes(section["include"], (*path, "include"), empty_ok=False)
        if "exclude" in section:
            found.tag_exclude = self.regexes(section["exclude"], (*path, "exclude"), empty_ok=True)
        if "semver" in section:
            found.semver = self.semver(section["semver"], (*path, "semver"))
        if "latest" in section:
            found.latest = self.latest(section["latest"], (*path, "latest"))

    def repository_mapping(self, value: Any, path: KeyPath, found: _Settings) -> None:
        section = self.mapping(value, path, _MAPPING_KEYS)
        if not section:
            return
        if "strip_prefix" in section:
            found.strip_prefix = self.prefix(section["strip_prefix"], (*path, "strip_prefix"))
        if "add_prefix" in section:
            found.add_prefix = self.prefix(section["add_prefix"], (*path, "add_prefix"))
        if "rename" in section:
            found.rename = self.rename(section["rename"], (*path, "rename"))

    # -- values --

    def strings(self, value: Any, path: KeyPath, example: str, if_empty: str | None) -> list[str]:
        """The strings of a list; ``if_empty`` is the problem an empty list is (None: fine)."""
        if not isinstance(value, list):
            self.problems.add(
                path, f"must be a list of strings, e.g. {example}; got {_kind(value)}"
            )
            return []
        if not value and if_empty is not None:
            self.problems.add(path, if_empty)
        good: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.problems.add((*path, index), f"must be a string (quote it), not {item!r}")
        return good

    def globs(self, value: Any, path: KeyPath, *, empty_ok: bool) -> tuple[Glob, ...]:
        found: list[Glob] = []
        if_empty = None if empty_ok else "is empty, so no repository matches; remove it for all"
        for index, text in enumerate(self.strings(value, path, "['team/*']", if_empty)):
            problem = glob_problem(text)
            if problem is not None:
                self.problems.add((*path, index), f"pattern '{text}' {problem}")
                continue
            try:
                found.append(compile_glob(text))
            except re.error as error:
                self.problems.add((*path, index), f"pattern '{text}' is malformed: {error}")
        return tuple(found)

    def regexes(self, value: Any, path: KeyPath, *, empty_ok: bool) -> tuple[re.Pattern[str], ...]:
        found: list[re.Pattern[str]] = []
        if_empty = None if empty_ok else "is empty, so no tag matches; remove it for every tag"
        for index, text in enumerate(self.strings(value, path, "['^v\\d+']", if_empty)):
            try:
                found.append(re.compile(text))
            except re.error as error:
                self.problems.add(
                    (*path, index), f"'{text}' is not a valid regular expression: {error}"
                )
        return tuple(found)

    def semver(self, value: Any, path: KeyPath) -> SemverRange | None:
        example = "write a semver range such as '>=1.0, <3' or '^1.4' (see docs/rules.example.yaml)"
        if not isinstance(value, str) or not value.strip():
            self.problems.add(path, f"must be a non-empty string; {example}, not {value!r}")
            return None
        try:
            return parse_range(value)
        except ValueError as error:
            self.problems.add(path, f"'{value}' is not a version range ({error}); {example}")
            return None

    def latest(self, value: Any, path: KeyPath) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problems.add(path, f"must be a whole number of tags, at least 1, not {value!r}")
            return None
        return value

    def regions(self, value: Any, path: KeyPath) -> tuple[str, ...] | None:
        if_empty = (
            "is empty; name at least one region, or remove it for every region "
            "(to leave images out, exclude them with repositories or tags)"
        )
        texts = self.strings(value, path, "[mel, syd]", if_empty)
        keys: list[str] = []
        for index, text in enumerate(texts):
            key = text.strip().lower()
            if key not in self.keys:
                self.problems.add(
                    (*path, index),
                    f"region '{text}' is not in OCI_REPO_REGION_KEY ({', '.join(self.keys)}); "
                    "add it there or remove it here",
                )
            elif key in keys:
                self.problems.add((*path, index), f"region '{text}' is listed twice")
            else:
                keys.append(key)
        return tuple(keys) if keys else None

    def prefix(self, value: Any, path: KeyPath) -> str | None:
        if not isinstance(value, str):
            self.problems.add(path, f"must be a string such as 'team/', not {value!r}")
            return None
        return value

    def rename(self, value: Any, path: KeyPath) -> dict[str, str] | None:
        raw = self.mapping(value, path)
        if raw is None:
            return None
        found: dict[str, str] = {}
        for source, target in raw.items():
            key_path = (*path, str(source))
            if not isinstance(source, str) or not valid_repository(source):
                why = _why_invalid(source) if isinstance(source, str) else "not a string"
                self.problems.add(key_path, f"'{source}' is not an ECR repository name: {why}")
            elif not isinstance(target, str) or not target:
                self.problems.add(key_path, f"must be the new repository name, not {target!r}")
            else:
                found[source] = target
        return found

    def delete(self, value: Any, path: KeyPath) -> DeletePolicy | None:
        if isinstance(value, str) and value.strip().lower() in {p.value for p in DeletePolicy}:
            return DeletePolicy(value.strip().lower())
        hint = " (YAML reads unquoted no/off/false as false)" if isinstance(value, bool) else ""
        self.problems.add(path, f"must be mirror or ignore, not {value!r}{hint}")
        return None

    # -- whole rules --

    def rule(self, merged: _Settings, label: str, name: str | None, path: KeyPath) -> Rule:
        tags = TagFilter(
            merged.tag_include or (),
            merged.tag_exclude or (),
            merged.semver,
            merged.latest,
        )
        mapping = RepositoryMapping(
            merged.strip_prefix or "", merged.add_prefix or "", merged.rename or {}
        )
        repositories = RepositoryFilter(
            merged.include or RepositoryFilter().include, merged.exclude or ()
        )
        self.check_mapping(mapping, repositories, path)
        return Rule(
            label=label,
            name=name,
            repositories=repositories,
            tags=tags,
            regions=merged.regions or self.keys,
            mapping=mapping,
            delete_policy=merged.delete or self.policy,
            referrers=True if merged.referrers is None else merged.referrers,
            retain=merged.retain,
        )

    def check_mapping(
        self, mapping: RepositoryMapping, repositories: RepositoryFilter, path: KeyPath
    ) -> None:
        """Names the mapping would produce that OCIR cannot hold."""
        section = (*path, "mapping")
        if mapping.add_prefix:
            sample = f"{self.namespace}/{mapping.add_prefix}x"
            if (why := _why_invalid(sample)) is not None:
                self.problems.add(
                    (*section, "add_prefix"),
                    f"'{mapping.add_prefix}' makes names like '{sample}', which OCIR cannot "
                    f"hold: {why}",
                )
                return
        for source in mapping.rename:
            target = f"{self.namespace}/{mapping.apply(source)}"
            if (why := _why_invalid(target)) is not None:
                self.problems.add(
                    (*section, "rename", source),
                    f"maps '{source}' to '{target}', which OCIR cannot hold: {why}",
                )
        for index, glob in enumerate(repositories.include):
            if not glob.literal or glob.text in mapping.rename:
                continue
            target = f"{self.namespace}/{mapping.apply(glob.text)}"
            if (why := _why_invalid(target)) is not None:
                self.problems.add(
                    (*path, "repositories", "include", index),
                    f"'{glob.text}' maps to '{target}', which OCIR cannot hold: {why}",
                )

    def reachable(self, built: list[Rule]) -> None:
        """Rules after a catch-all can never match: almost surely a mistake in the order."""
        for index, rule in enumerate(built):
            tags = rule.tags
            catch_all = (
                any(glob.text == "**" for glob in rule.repositories.include)
                and not rule.repositories.exclude
                and not (tags.include or tags.exclude or tags.semver)
            )
            if catch_all:
                for later in range(index + 1, len(built)):
                    self.problems.add(
                        ("rules", later),
                        f"is never reached: {rule.label} matches every image first; "
                        "put catch-all rules last",
                    )
                return


def _why_invalid(name: str) -> str | None:
    """Why ``name`` is not a valid repository path, or None when it is."""
    try:
        check_repository(name)
    except InvalidReferenceError as error:
        return error.message
    return None
