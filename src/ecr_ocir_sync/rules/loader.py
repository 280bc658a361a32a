"""Loading sync rules: from a file (``SYNC_RULES_FILE`` / ``--rules``) or the default rule.

The file is YAML (``safe_load`` semantics) documented in ``docs/rules.example.yaml``;
every problem in it is collected and reported at once, each with its line and key path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ecr_ocir_sync.rules.build import SUPPORTED_VERSIONS, RuleBuilder
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
]


def load_rules(
    path: Path | None,
    *,
    region_keys: Sequence[str],
    namespace: str,
    delete_policy: DeletePolicy,
) -> RuleSet:
    """The rules in ``path``, or with None the environment-only default: one rule sending
    every tag of every repository to every region as ``<namespace>/<repository>``, with
    ``delete_policy`` (SYNC_DELETE_POLICY) and referrers on.

    ``region_keys`` (OCI_REPO_REGION_KEY), ``namespace`` (OCI_TENANCY) and
    ``delete_policy`` come validated from the settings; problems in the file raise
    RulesFileError (a ConfigError) listing every one with its line and key path.
    """
    keys, policy = tuple(region_keys), DeletePolicy(delete_policy)  # the enum or its text
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
