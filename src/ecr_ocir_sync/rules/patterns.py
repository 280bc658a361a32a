"""Repository globs: the pattern every repository filter is written in (rules'
``repositories`` and the command line's ``--repository``).

Globs are fnmatch-like but path-aware: ``*`` and ``?`` never cross a ``/``,
``**`` crosses any number of them, and a ``**/`` also matches no directory at
all (``**/web`` matches ``web`` and ``a/b/web``). ``[abc]``, ``[a-z]`` and
``[!abc]`` are character classes (never matching ``/``). Everything else is
literal and the whole name must match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecr_ocir_sync.errors import ConfigError

__all__ = ["EVERY_REPOSITORY", "Glob", "compile_glob", "glob_problem", "repository_glob"]

_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Glob:
    """One repository pattern as written, and the regex it compiles to."""

    text: str
    regex: re.Pattern[str]

    @property
    def literal(self) -> bool:
        """True when the pattern has no wildcard: it names exactly one repository."""
        return not _WILDCARDS.intersection(self.text)

    def matches(self, repository: str) -> bool:
        return self.regex.fullmatch(repository) is not None

    def __str__(self) -> str:
        return self.text


def _char_class(pattern: str, start: int) -> tuple[str, int] | None:
    """``[...]`` at ``start`` → (regex, index after it); None when it is not closed."""
    index = start + 1
    negate = index < len(pattern) and pattern[index] == "!"
    if negate:
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1  # a leading ']' is literal, as in fnmatch
    end = pattern.find("]", index)
    if end < 0:
        return None
    body = re.sub(r"([\\&~|^\[])", r"\\\1", pattern[start + 1 + int(negate) : end])
    return f"(?!/)[{'^' if negate else ''}{body}]", end + 1


def _translate(pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[" and (found := _char_class(pattern, index)) is not None:
            regex, index = found
            out.append(regex)
        else:
            out.append(re.escape(char))
            index += 1
    return "".join(out)


def compile_glob(pattern: str) -> Glob:
    """``team/*`` → a Glob; raises ``re.error`` only for a malformed character class."""
    return Glob(pattern, re.compile(_translate(pattern)))


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` can never match an ECR repository name, or None when it can."""
    if not pattern:
        return "is empty; use '**' for every repository"
    if pattern != pattern.lower():
        return "has uppercase letters, but repository names are lowercase, so it never matches"
    if pattern.startswith("/") or pattern.endswith("/"):
        return "starts or ends with '/', but repository names never do, so it never matches"
    if any(char.isspace() for char in pattern):
        return "contains whitespace, but repository names never do, so it never matches"
    return None


def repository_glob(pattern: str, *, where: str) -> Glob:
    """``pattern`` given in ``where`` (an option, say) as a Glob; ConfigError if it cannot match."""
    problem = glob_problem(pattern)
    if problem is None:
        try:
            return compile_glob(pattern)
        except re.error as error:
            problem = f"is malformed ({error})"
    raise ConfigError(
        f"{where}: pattern '{pattern}' {problem}. Globs match whole repository names: '*' "
        "and '?' stay within one path segment, '**' crosses '/' (e.g. 'team/*', 'team/**')"
    )


EVERY_REPOSITORY = compile_glob("**")
