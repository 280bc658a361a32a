"""``ecr-ocir-sync usage``: how full each OCIR region is, from the OCI API."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecr_ocir_sync.settings import Settings

__all__ = ["add_usage_command", "run_usage_command"]

UNAVAILABLE = (
    "OCIR usage figures are unavailable: the OCI API is not configured "
    "(set OCI_COMPARTMENT_ID and the OCI API credentials, as for repository creation)"
)


def add_usage_command(commands: Any) -> None:
    usage = commands.add_parser(
        "usage",
        help="storage, repositories and images per OCIR region, against the limits",
        description="Read, through the OCI API (OCI_COMPARTMENT_ID and the credentials of "
        "repository creation), every region's storage used, repositories and images in the "
        "compartment, and the tenancy's limits where the Limits API gives them.",
    )
    usage.add_argument("--json", action="store_true", help="print the figures as JSON")


def _size(count: int | None) -> str:
    return "unknown" if count is None else f"{count / 10**9:.2f} GB"


async def _read(settings: Settings) -> list[dict[str, Any]]:
    from ecr_ocir_sync.cloud.ocir_repositories import (  # noqa: PLC0415 - keeps --help fast
        OcirRepositories,
    )
    from ecr_ocir_sync.cloud.ocir_usage import OcirUsage  # noqa: PLC0415
    from ecr_ocir_sync.errors import SyncError  # noqa: PLC0415
    from ecr_ocir_sync.service.wiring import repository_settings  # noqa: PLC0415

    api = repository_settings(settings)
    if api is None:
        return []
    repositories = OcirRepositories(api, namespace=settings.namespace)
    reader = OcirUsage(repositories)
    figures: list[dict[str, Any]] = []
    try:
        for key in settings.region_keys:
            try:
                figures.append((await reader.read(key)).to_json())
            except SyncError as error:
                figures.append({"region": key, "error": str(error)})
    finally:
        repositories.close()
    return figures


def _print(figure: dict[str, Any]) -> None:
    region = figure["region"]
    if "error" in figure:
        print(f"{region}: cannot read: {figure['error']}")
        return
    fraction = figure["storage_fraction"]
    share = f" ({fraction:.0%} of {_size(figure['storage_limit_bytes'])})" if fraction else ""
    limit = figure["repository_limit"]
    print(
        f"{region}: {_size(figure['used_bytes'])} used{share}, billable "
        f"{_size(figure['billable_bytes'])}; {figure['images']} images in "
        f"{figure['repositories']} repositories"
        + (f" (limit {limit})" if limit is not None else "")
    )
    if figure["limit_note"]:
        print(f"  limit: {figure['limit_note']}")


_NEEDED = (
    "OCI_COMPARTMENT_ID",
    "OCI_API_AUTH",
    "OCI_CONFIG_FILE",
    "OCI_CONFIG_PROFILE",
    "OCI_API_REGION_<KEY>",
    "OCI_ARTIFACTS_ENDPOINT_<KEY>",
    "OCI_LIMITS_ENDPOINT_<KEY>",
)


def run_usage_command(args: argparse.Namespace, settings: Settings) -> int:
    if settings.compartment_id is None and not settings.problems(["OCI_COMPARTMENT_ID"]):
        if args.json:
            json.dump({"available": False, "reason": UNAVAILABLE, "regions": []}, sys.stdout)
            print()
        else:
            print(UNAVAILABLE)
        return 0
    settings.require(_NEEDED, required=("OCI_REPO_REGION_KEY",), header="cannot read usage:")
    figures = asyncio.run(_read(settings))
    if args.json:
        json.dump({"available": True, "regions": figures}, sys.stdout, indent=2)
        print()
    else:
        for figure in figures:
            _print(figure)
    return 1 if any("error" in figure for figure in figures) else 0
