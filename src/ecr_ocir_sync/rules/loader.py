"""Loading sync rules: from a file (``SYNC_RULES_FILE`` / ``--rules``) or the environment.

The file is YAML (``safe_load`` semantics) documented in ``docs/rules.example.yaml``;
every problem in it is collected and reported at once, each with its line and key path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.rules.build import SUPPORTED_VERSIONS, RuleBuilder, valid_repository
from ecr_ocir_sync.rules.document import (
    RULES_FILE_VARIABLE,
    Problems,
    RulesFileError,
    read_document,
    rule_names,
)
from ecr_ocir_sync.rules.model import RepositoryFilter, RepositoryMapping, Rule, RuleSet, TagFilter
from ecr_ocir_sync.rules.policy import DeletePolicy

__all__ = [
    "RULES_FILE_VARIABLE",
    "SUPPORTED_VERSIONS",
    "RulesFileError",
    "load_rules",
    "rules_path",
]


def rules_path(flag: Path | None = None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The rules file to use: ``--rules`` when given, else ``SYNC_RULES_FILE``, else None."""
    if flag is not None:
        return flag
    value = environ.get(RULES_FILE_VARIABLE, "").strip()
    return Path(value) if value else None


def load_rules(
    path: Path | None, *, region_keys: Sequence[str], namespace: str, delete_policy: str
) -> RuleSet:
    """The rules in ``path``, or with None the environment-only default: one rule sending
    every tag of every repository to every region as ``<namespace>/<repository>``, with
    ``delete_policy`` (SYNC_DELETE_POLICY) and referrers on.

    ``region_keys`` (OCI_REPO_REGION_KEY), ``namespace`` (OCI_TENANCY) and
    ``delete_policy`` are checked first (ConfigError naming the variable); then the file:
    RulesFileError (a ConfigError) lists every problem with its line and key path.
    """
    keys, namespace, policy = _environment(region_keys, namespace, delete_policy)
    if path is None:
        default = Rule(
            label="default rule (no rules file)",
            name=None,
            repositories=RepositoryFilter(),
            tags=TagFilter(),
            regions=keys,
            mapping=RepositoryMapping(),
            delete_policy=policy,
            referrers=True,
        )
        return RuleSet((default,), namespace, keys, None)
    data, lines, duplicates = read_document(path)
    problems = Problems(lines, rule_names(data))
    for key_path, line, first in duplicates:
        problems.add(
            key_path[:-1],
            f"key '{key_path[-1]}' appears twice (also on line {first}); YAML would keep only "
            "the last one, so merge them",
            line=line,
        )
    rules = RuleBuilder(problems, keys, namespace, policy).rules(data)
    if problems.items:
        raise RulesFileError(path, problems.items)
    return RuleSet(rules, namespace, keys, path)


def _environment(
    region_keys: Sequence[str], namespace: str, delete_policy: str
) -> tuple[tuple[str, ...], str, DeletePolicy]:
    problems: list[str] = []
    keys = tuple(key.strip().lower() for key in region_keys)
    if not keys or not all(keys):
        problems.append(
            "OCI_REPO_REGION_KEY is required: comma-separated region keys, e.g. mel,syd"
        )
    elif len(set(keys)) != len(keys):
        problems.append(f"OCI_REPO_REGION_KEY names a region twice: {','.join(keys)}")
    namespace = namespace.strip()
    if "/" in namespace or not valid_repository(namespace):
        problems.append(
            f"OCI_TENANCY={namespace!r} is not an OCIR namespace (lowercase letters and digits, "
            "as shown on the tenancy's details page)"
        )
    try:
        policy = DeletePolicy(str(delete_policy).strip().lower())
    except ValueError:
        problems.append(f"SYNC_DELETE_POLICY={delete_policy!r}: expected mirror or ignore")
        policy = DeletePolicy.MIRROR
    if problems:
        raise ConfigError(
            "cannot load sync rules, fix these settings:\n  - " + "\n  - ".join(problems)
        )
    return keys, namespace, policy
