"""Tags as Semantic Versions (semver.org 2.0.0) and the ranges ``tags.semver`` writes.

A tag is a version when it is ``MAJOR.MINOR.PATCH`` with an optional
``-PRERELEASE`` and ``+BUILD``, after an optional leading ``v``: ``v1.4.0``,
``1.4.0-rc.1``, ``2.0.0+linux``; ``v1.2.3-amd64`` is the pre-release ``amd64``
of 1.2.3.  ``1.4``, ``2024.01.05`` (leading zeros), ``latest`` or a git sha are
not versions (``tags.include`` selects such tags).  Versions compare by
semver precedence (the ``semver`` library): a pre-release sorts before its
release, build metadata is ignored.

A range is comparators joined by ``,`` (all must hold), alternatives joined by
``||`` (any may hold).  A comparator is an operator and a version whose minor
and patch may be left out (``1`` is 1.x.x, ``1.2`` is 1.2.x):

    >=1.2.3  >1.2  <2  <=1.4  =1.2 (1.2.x)  !=1.3.0  1.2.3 (the same as =)
    ^1.2.3 (>=1.2.3, <2.0.0; ^0.2.3 is <0.3.0)   ~1.2.3 (>=1.2.3, <1.3.0)

Pre-releases are matched as npm matches them: a pre-release version is in a
range only when an alternative admits it *and* names a pre-release of the same
``MAJOR.MINOR.PATCH`` (``>=2.0.0-rc.1`` admits ``2.0.0-rc.2`` but not
``2.1.0-rc.1``); otherwise ranges select releases only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from semver import Version

__all__ = ["SemverRange", "parse_range", "tag_version"]

# MAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]], numbers without leading zeros.
_NUMBER = r"(?:0|[1-9]\d*)"
_PARTIAL = re.compile(
    rf"[vV]?(?P<major>{_NUMBER})(?:\.(?P<minor>{_NUMBER})"
    rf"(?:\.(?P<patch>{_NUMBER})(?P<rest>[-+][0-9A-Za-z.+-]*)?)?)?"
)
_COMPARATOR = re.compile(r"(?P<op>>=|<=|>|<|==|=|!=|\^|~)?\s*(?P<version>\S+)")


def tag_version(tag: str) -> Version | None:
    """``v1.4.0`` → Version(1, 4, 0); None for a tag that is not a semantic version."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return Version.parse(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Bounds:
    """One comparator as an interval, or its complement for ``!=``; ``named`` is the
    version as written (for the pre-release rule)."""

    named: Version
    low: Version | None = None
    low_inclusive: bool = True
    high: Version | None = None
    high_inclusive: bool = False
    negated: bool = False

    def admits(self, version: Version) -> bool:
        above = self.low is None or (
            version >= self.low if self.low_inclusive else version > self.low
        )
        below = self.high is None or (
            version <= self.high if self.high_inclusive else version < self.high
        )
        return (above and below) is not self.negated


@dataclass(frozen=True, slots=True)
class SemverRange:
    """``tags.semver`` as written and as alternatives of comparators."""

    text: str
    alternatives: tuple[tuple[_Bounds, ...], ...]

    def __contains__(self, version: Version) -> bool:
        return any(_alternative_admits(bounds, version) for bounds in self.alternatives)


def _alternative_admits(bounds: tuple[_Bounds, ...], version: Version) -> bool:
    if not all(bound.admits(version) for bound in bounds):
        return False
    if version.prerelease is None:
        return True
    release = version.finalize_version()
    return any(
        bound.named.prerelease is not None and bound.named.finalize_version() == release
        for bound in bounds
    )


def _first(major: int, minor: int = 0, patch: int = 0) -> Version:
    """The lowest version of MAJOR.MINOR.PATCH: below even its pre-releases."""
    return Version(major, minor, patch, prerelease="0")


@dataclass(frozen=True, slots=True)
class _Written:
    """A comparator's version: ``named`` with the parts left out as 0, ``parts`` written
    (1 to 3), and ``exact``, every version it stands for (1.2 → 1.2.x)."""

    named: Version
    parts: int
    exact: _Bounds


def _written(text: str) -> _Written:
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise ValueError(f"'{text}' is not a version such as 1, 1.2, 1.2.3 or 1.2.3-rc.1")
    if match["patch"] is not None:
        try:
            named = Version.parse(text.lstrip("vV"))
        except ValueError as error:
            raise ValueError(f"'{text}' is not a semantic version: {error}") from None
        return _Written(named, 3, _Bounds(named, low=named, high=named, high_inclusive=True))
    major, minor = int(match["major"]), int(match["minor"] or 0)
    parts = 1 if match["minor"] is None else 2
    after = _first(major + 1) if parts == 1 else _first(major, minor + 1)
    named = Version(major, minor)
    return _Written(named, parts, _Bounds(named, low=named, high=after))


def _caret(written: _Written) -> _Bounds:
    """Up to the next change of the first non-zero part written (^0.2.3 → <0.3.0)."""
    v = written.named
    if v.major or written.parts == 1:
        high = _first(v.major + 1)
    elif v.minor or written.parts == 2:
        high = _first(0, v.minor + 1)
    else:
        high = _first(0, 0, v.patch + 1)
    return _Bounds(v, low=v, high=high)


def _tilde(written: _Written) -> _Bounds:
    """Up to the next minor (the next major when only MAJOR is written)."""
    v = written.named
    high = _first(v.major + 1) if written.parts == 1 else _first(v.major, v.minor + 1)
    return _Bounds(v, low=v, high=high)


def _bounds(op: str, text: str) -> _Bounds:
    written = _written(text)
    named, exact = written.named, written.exact
    if op == "^":
        return _caret(written)
    if op == "~":
        return _tilde(written)
    one_sided = {
        ">=": _Bounds(named, low=exact.low),
        ">": _Bounds(named, low=exact.high, low_inclusive=not exact.high_inclusive),
        "<": _Bounds(named, high=exact.low),
        "<=": _Bounds(named, high=exact.high, high_inclusive=exact.high_inclusive),
        "!=": replace(exact, negated=True),
    }
    return one_sided.get(op, exact)  # =, == or no operator: exactly what was written


def parse_range(text: str) -> SemverRange:
    """``>=1.2, <2 || ^3.1`` → a SemverRange; ValueError says what is wrong."""
    alternatives: list[tuple[_Bounds, ...]] = []
    for alternative in text.split("||"):
        bounds: list[_Bounds] = []
        for part in alternative.split(","):
            comparator = part.strip()
            match = _COMPARATOR.fullmatch(comparator)
            if not comparator or match is None:
                raise ValueError(
                    f"'{comparator}' is not a comparator such as >=1.2, <2 or ^1.4.0"
                    if comparator
                    else "an empty comparator (two commas, or a ',' or '||' at an end)"
                )
            bounds.append(_bounds(match["op"] or "", match["version"]))
        alternatives.append(tuple(bounds))
    return SemverRange(text, tuple(alternatives))
