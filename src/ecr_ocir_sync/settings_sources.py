"""The ECR sources of :mod:`ecr_ocir_sync.settings`: one per allowed account and region.

Every source mirrors to the same ``<namespace>/<repository>`` at OCIR, while the
newest-wins order and the "ECR still agrees" check are kept per source. Two sources
would thus undo each other's work, so more than one is refused unless the operator
says explicitly that they share destinations (``SYNC_SHARED_DESTINATIONS``). Each
source may have its own registry endpoint, ``ECR_ENDPOINT_<ACCOUNT>_<REGION>``; the
plain ``ECR_ENDPOINT`` keeps its meaning only where there is one source to stand for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ecr_ocir_sync.settings_values import Endpoint

__all__ = [
    "FAMILY",
    "PREFIX",
    "Source",
    "endpoints",
    "member_name",
    "problems",
    "sources",
    "variable",
]

FAMILY = "ECR_ENDPOINT_<ACCOUNT>_<REGION>"
PREFIX = "ECR_ENDPOINT_"
_MEMBER = re.compile(r"ECR_ENDPOINT_(?P<account>\d{12})_(?P<region>[A-Z]{2}(?:_[A-Z]+)+_\d)")
_EXAMPLE = "ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2"
_SHARED = "SYNC_SHARED_DESTINATIONS"

Source = tuple[str, str]  # (AWS account, AWS region)


def member_name(value: object) -> object:
    """The validator of a family member's name: a 12-digit account and a region."""
    if isinstance(value, str) and _MEMBER.fullmatch(value) is None:
        raise ValueError(
            "expected ECR_ENDPOINT_<ACCOUNT>_<REGION>: a 12-digit account, then the AWS "
            f"region in capitals with underscores for dashes, e.g. {_EXAMPLE}"
        )
    return value


def variable(source: Source) -> str:
    """The family member that sets ``source``'s endpoint."""
    account, region = source
    return f"{PREFIX}{account}_{region.upper().replace('-', '_')}"


def _source(name: str) -> Source:
    match = _MEMBER.fullmatch(name)
    assert match is not None, name  # member_name accepted it
    return match["account"], match["region"].lower().replace("_", "-")


def sources(accounts: Iterable[str], regions: Iterable[str]) -> list[Source]:
    """Every allowed (account, region), in a stable order."""
    return [(account, region) for account in sorted(accounts) for region in sorted(regions)]


def endpoints(
    members: Mapping[str, Endpoint], plain: Endpoint | None, allowed: list[Source]
) -> dict[Source, Endpoint]:
    """(account, region) → endpoint: the family's members, and ``ECR_ENDPOINT`` for the
    one allowed source (with several it stands for none: :func:`problems` refuses it)."""
    found = {_source(name): endpoint for name, endpoint in members.items()}
    if plain is not None and len(allowed) == 1:
        found.setdefault(allowed[0], plain)
    return found


def problems(
    members: Mapping[str, Endpoint],
    plain: Endpoint | None,
    allowed: list[Source],
    *,
    shared: bool,
) -> list[str]:
    """What makes the sources unusable together, each with its fix."""
    if not allowed:  # SYNC_ALLOWED_ACCOUNTS / _REGIONS missing or bad: said elsewhere
        return []
    found: list[str] = []
    named = ", ".join(f"{account} in {region}" for account, region in allowed)
    if len(allowed) > 1 and not shared:
        found.append(
            f"SYNC_ALLOWED_ACCOUNTS and SYNC_ALLOWED_REGIONS allow {len(allowed)} ECR sources "
            f"({named}) and all of them mirror to the same <namespace>/<repository> at OCIR, "
            "where one's DELETE or older push would undo another's: allow one account and "
            "one region per deployment (run one deployment for each), or set "
            f"{_SHARED}=true to accept that they share destinations"
        )
    if plain is not None and len(allowed) > 1:
        found.append(
            f"ECR_ENDPOINT={plain.host!r}: ambiguous with {len(allowed)} ECR sources allowed; "
            f"give each source its own, e.g. {variable(allowed[0])}, and unset ECR_ENDPOINT"
        )
    hosts: dict[str, str] = {}
    for name, endpoint in sorted(members.items()):
        account, region = _source(name)
        if (account, region) not in allowed:
            found.append(
                f"{name}: account {account} in {region} is not allowed by "
                "SYNC_ALLOWED_ACCOUNTS and SYNC_ALLOWED_REGIONS; allow it or unset the variable"
            )
        elif plain is not None and len(allowed) == 1:
            found.append(f"ECR_ENDPOINT and {name} both set the one source's endpoint; keep one")
        if endpoint.host in hosts:  # credentials are chosen by host: it names one account
            found.append(
                f"{hosts[endpoint.host]} and {name} both name {endpoint.host}: "
                "each account and region needs its own registry host"
            )
        hosts.setdefault(endpoint.host, name)
    return found
