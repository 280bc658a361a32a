"""``config check [--rules FILE] [IMAGE]``: validate the sync rules, explain where an image goes.

Exit status: 0 when the rules are valid (and IMAGE, if given, is synced), 1 when IMAGE
matches no rule (it would not be synced), 2 for an invalid rules file, missing
settings or a malformed IMAGE.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ecr_ocir_sync.cloud.ecr_auth import ECR_HOST
from ecr_ocir_sync.errors import ConfigError, SyncError
from ecr_ocir_sync.oci.digest import Digest, parse_digest
from ecr_ocir_sync.oci.reference import check_repository, check_tag, parse_reference
from ecr_ocir_sync.rules.policy import DeletePolicy
from ecr_ocir_sync.rules.regions import parse_region_keys
from ecr_ocir_sync.settings import ocir_endpoints

if TYPE_CHECKING:
    from ecr_ocir_sync.rules import RuleSet

# The rules package (PyYAML, packaging) is imported when a check runs, not for --help.
RULES_FILE_VARIABLE = "SYNC_RULES_FILE"

__all__ = ["ImageName", "add_config_command", "parse_image", "run_config_command"]

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


def _environment(environ: Mapping[str, str]) -> tuple[list[str], str, str, dict[str, str]]:
    """(region keys, namespace, delete policy, region → host), or ConfigError naming all gaps."""
    problems: list[str] = []
    keys: list[str] = []
    keys_text = environ.get("OCI_REPO_REGION_KEY", "").strip()
    if not keys_text:
        problems.append(
            "OCI_REPO_REGION_KEY is required: the region keys rules may use, e.g. mel,syd"
        )
    else:
        try:
            keys = parse_region_keys(keys_text)
        except ConfigError as error:
            problems.append(error.message)
    namespace = environ.get("OCI_TENANCY", "").strip()
    if not namespace:
        problems.append("OCI_TENANCY is required: the OCIR namespace destinations live under")
    policy = environ.get("SYNC_DELETE_POLICY", "mirror").strip().lower() or "mirror"
    if policy not in {p.value for p in DeletePolicy}:
        problems.append(f"SYNC_DELETE_POLICY={policy!r}: expected mirror or ignore")
    hosts: dict[str, str] = {}
    try:
        hosts = {key: endpoint.host for key, endpoint in ocir_endpoints(environ).items()}
    except ConfigError as error:
        problems.append(error.message)
    if problems:
        raise ConfigError("config check needs these settings:\n  - " + "\n  - ".join(problems))
    return keys, namespace, policy, hosts


def _check(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    keys, namespace, policy, hosts = _environment(environ)
    from ecr_ocir_sync.rules import load_rules, rules_path  # noqa: PLC0415 - see above

    path = rules_path(args.rules, environ)
    rules = load_rules(path, region_keys=keys, namespace=namespace, delete_policy=policy)
    if args.image is None:
        _print_summary(rules, out)
        return 0
    repository, tag, digest = parse_image(args.image)
    host, slash, _ = args.image.partition("/")
    if slash and _looks_like_host(host) and not ECR_HOST.fullmatch(host):
        print(f"note: {host} is not an ECR host; rules see repository '{repository}'", file=out)
    for line in rules.explain(repository, tag, digest=digest, hosts=hosts):
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
    for line in rules.describe():
        print(f"  {line}", file=out)


def run_config_command(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``config check``; returns the exit status and prints errors itself (never raises
    SyncError). ``environ``, ``stdout`` and ``stderr`` default to the process's."""
    out = stdout or sys.stdout
    try:
        return _check(args, os.environ if environ is None else environ, out)
    except SyncError as error:
        print(f"ecr-ocir-sync: error: {error}", file=stderr or sys.stderr)
        return 2
