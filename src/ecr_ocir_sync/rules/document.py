"""The rules file as a YAML document: data, the line of every key path, and problems.

Problems are collected rather than raised one at a time, so one run of
``config check`` shows everything to fix; each says ``line N: key.path (rule 'name')``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from ecr_ocir_sync.errors import ConfigError

__all__ = ["RULES_FILE_VARIABLE", "KeyPath", "Problems", "RulesFileError", "read_document"]

RULES_FILE_VARIABLE = "SYNC_RULES_FILE"

KeyPath = tuple[str | int, ...]
"""Where a value sits: ``("rules", 0, "tags", "include", 1)`` is ``rules[0].tags.include[1]``."""

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


class RulesFileError(ConfigError):
    """The rules file is unusable; ``problems`` has one line per problem found."""

    def __init__(self, source: Path, problems: Sequence[str]) -> None:
        count = len(problems)
        super().__init__(
            f"rules file {source} has {count} problem{'' if count == 1 else 's'}; fix:\n  - "
            + "\n  - ".join(problems)
        )
        self.source = source
        self.problems = tuple(problems)


def read_document(path: Path) -> tuple[Any, dict[KeyPath, int], list[tuple[KeyPath, int, int]]]:
    """(data, key path → line, duplicate keys as (path, line, first line))."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"rules file {path} does not exist; fix --rules or {RULES_FILE_VARIABLE}"
        ) from None
    except UnicodeDecodeError as error:
        raise RulesFileError(
            path, [f"not UTF-8 text ({error.reason} at byte {error.start})"]
        ) from None
    except OSError as error:
        raise ConfigError(f"rules file {path} cannot be read: {error.strerror}") from None
    loader: Any = yaml.SafeLoader(text)
    try:
        node: Any = loader.get_single_node()
        data: Any = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise RulesFileError(path, [_yaml_problem(error)]) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    duplicates: list[tuple[KeyPath, int, int]] = []
    if node is not None:
        _index(node, (), lines, duplicates)
    return data, lines, duplicates


def _yaml_problem(error: Any) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is None or problem is None:
        return f"not valid YAML: {error}"
    context = getattr(error, "context", None)
    text = f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: "
    text += f"{context}: {problem}" if context else str(problem)
    if "escape" in str(problem):
        text += " (write regular expressions in single quotes: '^v\\d+$')"
    return text


def _index(
    node: Any, path: KeyPath, lines: dict[KeyPath, int], duplicates: list[tuple[KeyPath, int, int]]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(((*path, key), line, seen[key]))
                continue
            seen[key] = line
            lines[(*path, key)] = line
            _index(value_node, (*path, key), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _index(item, (*path, index), lines, duplicates)


# --- problems -------------------------------------------------------------------------------


def _path_text(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"['{part}']"
    return text


def rule_names(data: Any) -> dict[int, str]:
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return {}
    return {
        index: rule["name"]
        for index, rule in enumerate(rules)
        if isinstance(rule, dict) and isinstance(rule.get("name"), str)
    }


class Problems:
    """Problems found so far, each located by key path (and line, when the file says)."""

    def __init__(self, lines: Mapping[KeyPath, int], names: Mapping[int, str]) -> None:
        self._lines = lines
        self._names = names
        self._found: list[tuple[int, str]] = []

    @property
    def items(self) -> list[str]:
        """In file order: problems without a line (the file as a whole) first."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]

    def add(
        self, path: KeyPath, message: str, *, line: int | None = None, key: str | None = None
    ) -> None:
        """``line N: rules[0].tags.include[1] (rule 'releases'): message``; the line is the
        given one, else that of ``key`` under ``path``, else of the nearest key path known."""
        where = _path_text(path)
        if line is None and key is not None:
            line = self._lines.get((*path, key))
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            name = self._names.get(path[1])
            where += f" (rule '{name}')" if name else ""
        if line is None:
            line = next(
                (self._lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self._lines),
                None,
            )
        prefix = f"line {line}: " if line is not None else ""
        text = f"{prefix}{where}: {message}" if where else f"{prefix}{message}"
        self._found.append((line or 0, text))
