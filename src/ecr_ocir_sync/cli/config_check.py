"""``config check [--rules FILE] [IMAGE]``: validate the sync rules, explain where an image goes.

Exit status: 0 when the rules are valid (and IMAGE, if given, is synced), 1 when IMAGE
matches no rule (it would not be synced), 2 for an invalid rules file, missing
settings or a malformed IMAGE.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ecr_ocir_sync.cloud.ecr_auth import ECR_HOST
from ecr_ocir_sync.errors import ConfigError, SyncError
from ecr_ocir_sync.oci.digest import Digest, parse_digest
from ecr_ocir_sync.oci.reference import check_repository, check_tag, parse_reference

if TYPE_CHECKING:
    from ecr_ocir_sync.rules.model import HostLookup, Rule, RuleSet
    from ecr_ocir_sync.settings import Settings

# The rules package (PyYAML, semver) is imported when a check runs, not for --help.
RULES_FILE_VARIABLE = "SYNC_RULES_FILE"

__all__ = [
    "ImageName",
    "add_config_command",
    "describe_rule",
    "explain_image",
    "parse_image",
    "run_config_command",
]

# What config check reads; the two region settings are required.
_REQUIRED = ("OCI_REPO_REGION_KEY", "OCI_TENANCY")
_READ = ("SYNC_DELETE_POLICY", "OCIR_ENDPOINT_<KEY>", RULES_FILE_VARIABLE)

_EPILOG = f"""\
IMAGE is an ECR repository with a tag (team/web:1.4), a digest (team/web@sha256:<hex>)
or neither (matched on the repository only, as a push by digest is), or a full ECR
reference (123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/team/web:1.4).

settings read: OCI_REPO_REGION_KEY, OCI_TENANCY, SYNC_DELETE_POLICY, OCIR_ENDPOINT_<KEY>,
and {RULES_FILE_VARIABLE} when --rules is not given (neither: the environment-only default).

exit status: 0 rules valid (and IMAGE synced), 1 IMAGE matches no rule, 2 invalid rules,
missing settings or a malformed IMAGE.

examples:
  ecr-ocir-sync config check --rules rules.yaml
  ecr-ocir-sync config check --rules rules.yaml team/web:1.4
"""

ImageName = tuple[str, str | None, Digest | None]
"""(repository, tag, digest) of an ECR image."""


def add_config_command(commands: Any) -> None:
    """Add ``config check`` to the ``commands`` subparsers of the top-level parser."""
    config = commands.add_parser(
        "config",
        help="check the sync rules and explain where an image goes",
        description="Check the sync rules (--rules FILE or $SYNC_RULES_FILE).",
    )
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate the rules; with IMAGE, show which rule places it where",
        description="Validate the sync rules and name every problem; given IMAGE, show each "
        "rule in order, whether it matches and why not, and the destinations in every region.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help=f"the rules file (default ${RULES_FILE_VARIABLE}; neither: every image, every region)",
    )
    check.add_argument("image", nargs="?", metavar="IMAGE", help="an ECR image to explain")


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_image(text: str) -> ImageName:
    """``team/web:1.4``, ``team/web@sha256:…``, ``team/web`` or a full reference → parts.

    As in docker, a first component with a '.' or ':' (or ``localhost``) is a registry host.
    """
    first, slash, _ = text.partition("/")
    if slash and _looks_like_host(first):
        reference = parse_reference(text)
        return reference.repository, reference.tag, reference.digest
    name, at, digest_text = text.partition("@")
    digest = parse_digest(digest_text) if at else None
    repository, tag = name, None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        repository, tag = name[:colon], check_tag(name[colon + 1 :])
    return check_repository(repository), tag, digest


def _check(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    settings.require(_READ, required=_REQUIRED, header="config check needs these settings:")
    from ecr_ocir_sync.rules.loader import load_rules  # noqa: PLC0415 - see above

    rules = load_rules(
        args.rules or settings.rules_file,
        region_keys=settings.region_keys,
        namespace=settings.namespace,
        delete_policy=settings.delete_policy,
    )
    hosts = {key: endpoint.host for key, endpoint in settings.ocir_endpoints.items()}
    if args.image is None:
        _print_summary(rules, out)
        return 0
    repository, tag, digest = parse_image(args.image)
    host, slash, _ = args.image.partition("/")
    if slash and _looks_like_host(host) and not ECR_HOST.fullmatch(host):
        print(f"note: {host} is not an ECR host; rules see repository '{repository}'", file=out)
    for line in explain_image(rules, repository, tag, digest=digest, hosts=hosts):
        print(line, file=out)
    try:
        return 0 if rules.place(repository, tag) is not None else 1
    except ConfigError:
        return 2  # the explanation above names the mapping problem


def _print_summary(rules: RuleSet, out: TextIO) -> None:
    if rules.source is None:
        print(
            f"no rules file (no --rules, {RULES_FILE_VARIABLE} unset): the default rule applies",
            file=out,
        )
    else:
        count = len(rules.rules)
        print(f"rules file OK: {count} rule{'' if count == 1 else 's'}", file=out)
    for rule in rules.rules:
        print(f"  {describe_rule(rule)}", file=out)


def run_config_command(
    args: argparse.Namespace,
    settings: Settings,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``config check``; returns the exit status and prints errors itself (never raises
    SyncError). ``stdout`` and ``stderr`` default to the process's."""
    out = stdout or sys.stdout
    try:
        return _check(args, settings, out)
    except SyncError as error:
        print(f"ecr-ocir-sync: error: {error}", file=stderr or sys.stderr)
        return 2


def _quoted(texts: Sequence[str]) -> str:
    return ", ".join(f"'{text}'" for text in texts)


def _regions(count: int) -> str:
    return f"{count} region{'' if count == 1 else 's'}"


def describe_rule(rule: Rule) -> str:
    """One line per rule for ``config check``: what it matches, where it sends it."""
    parts = [f"repositories {_quoted([g.text for g in rule.repositories.include])}"]
    if rule.repositories.exclude:
        parts[0] += f" except {_quoted([g.text for g in rule.repositories.exclude])}"
    tags: list[str] = []
    if rule.tags.include:
        tags.append(f"include {_quoted([r.pattern for r in rule.tags.include])}")
    if rule.tags.exclude:
        tags.append(f"exclude {_quoted([r.pattern for r in rule.tags.exclude])}")
    if rule.tags.semver is not None:
        tags.append(f"semver '{rule.tags.semver.text}'")
    if rule.tags.latest is not None:
        tags.append(f"newest {rule.tags.latest}")
    parts.append(f"tags {', '.join(tags) if tags else 'all'}")
    parts.append(f"regions {', '.join(rule.regions)}")
    if not rule.mapping.identity:
        m = rule.mapping
        parts.append(
            f"mapping rename {len(m.rename)}, strip '{m.strip_prefix}', add '{m.add_prefix}'"
        )
    parts.append(f"delete {rule.delete_policy.value}")
    parts.append(f"referrers {'on' if rule.referrers else 'off'}")
    if rule.retain is not None:
        parts.append(f"retain {rule.retain.describe()}")
    return f"{rule.label}: {'; '.join(parts)}"


def explain_image(
    rules: RuleSet,
    repository: str,
    tag: str | None,
    *,
    digest: Digest | None = None,
    hosts: HostLookup = None,
) -> list[str]:
    """Lines for humans: every rule in order, matched or why not, then the destinations
    as full references (``hosts`` shows OCIR_ENDPOINT_<KEY> overrides)."""
    image = f"{repository}:{tag}" if tag is not None else repository
    if digest is not None:
        image += f"@{digest}"
    origin = f"rules file {rules.source}" if rules.source else "no rules file (environment)"
    lines = [f"image {image}; {origin}; namespace {rules.namespace}"]
    if tag is None:
        lines.append("no tag: rules match on the repository only, as for a push by digest")
    winner: Rule | None = None
    for rule in rules.rules:
        reason = rule.mismatch(repository, tag)
        if reason is not None:
            lines.append(f"  {rule.label}: no match: {reason}")
        elif winner is None:
            winner = rule
            lines.append(f"  {rule.label}: MATCH")
        else:
            lines.append(f"  {rule.label}: matches too, but {winner.label} comes first")
    if winner is None:
        lines.append(f"result: no rule matches {image}, so it is not synced")
        return lines
    try:
        placement = rules.placement(winner, repository)
    except ConfigError as error:
        lines.append(f"result: {error.message}")
        return lines
    lines.append(
        f"result: {winner.label} sends it to {_regions(len(placement.destinations))}, "
        f"delete {winner.delete_policy.value}, referrers {'on' if winner.referrers else 'off'}"
    )
    references = placement.references(tag, digest, hosts=hosts)
    lines.extend(f"  {key}: {reference}" for key, reference in references.items())
    if winner.tags.latest is not None:
        lines.append(
            f"note: tags.latest {winner.tags.latest} applies to reconciliation only; "
            "an event for a new push always counts as newest"
        )
    if winner.retain is not None:
        lines.append(
            f"note: retain {winner.retain.describe()} (by ECR push time, among this rule's tags "
            "in the repository): the others are deleted at the destination after each push "
            "and by reconciliation, which never selects them, so they are never copied back "
            "while ECR keeps them; referrer tags and tags the rule did not place are never "
            "deleted"
        )
    return lines
