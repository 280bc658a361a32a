"""Printing a copy's result: one line per destination, or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from ecr_ocir_sync.engine.result import CopyResult

if TYPE_CHECKING:  # the planner (and asyncio) load only with the commands that plan
    from ecr_ocir_sync.reconcile.planner import ReconcilePlan, TagDrift

__all__ = ["human_size", "print_json", "print_plan", "print_summary"]


def human_size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # unreachable; keeps mypy sure of the return


def print_summary(result: CopyResult, out: TextIO, *, action: str = "copy") -> None:
    for dest in result.destinations:
        if not dest.ok:
            print(f"FAILED  {dest.destination}: {dest.error}", file=out)
        elif action == "delete":
            print(f"ok      {dest.destination}: {dest.detail}", file=out)
        else:
            print(
                f"ok      {dest.destination}  {human_size(dest.counts.bytes_sent)} sent, blobs "
                f"{dest.counts.blobs_copied} copied / {dest.counts.blobs_skipped} skipped / "
                f"{dest.counts.blobs_mounted} mounted, {dest.seconds:.1f}s"
                + (f" ({dest.detail})" if dest.detail else ""),
                file=out,
            )
    if action == "copy" and result.digest:
        print(
            f"source  {result.source} @ {result.digest}: {human_size(result.bytes_read)} read",
            file=out,
        )


def print_json(result: CopyResult, out: TextIO) -> None:
    json.dump(result.to_json(), out, indent=2)
    out.write("\n")


def _drift(kind: str, drifts: list[TagDrift]) -> str:
    by_tag: dict[str, list[str]] = {}
    for drift in drifts:
        by_tag.setdefault(drift.tag, []).append(drift.region)
    return f"{kind} " + ", ".join(f"{tag} ({','.join(r)})" for tag, r in sorted(by_tag.items()))


def print_plan(plan: ReconcilePlan, out: TextIO) -> None:
    """Per repository: to copy, to update, to delete, already in sync."""
    totals = plan.totals()
    print(
        f"ECR {plan.account} {plan.region}: {len(plan.repositories)} repositories, "
        f"{totals['copy']} to copy, {totals['update']} to update, {totals['delete']} to delete, "
        f"{totals['expire']} to expire, {totals['in_sync']} in sync ({plan.ecr_requests} ECR API + "
        f"{plan.registry_requests} registry requests, {plan.seconds:.1f}s)",
        file=out,
    )
    for repository in plan.repositories:
        parts = [
            _drift(kind, drifts)
            for kind, drifts in (
                ("copy", repository.to_copy),
                ("update", repository.to_update),
                ("delete", repository.to_delete),
                ("expire", repository.to_expire),
            )
            if drifts
        ]
        if repository.error:
            parts.append(f"ERROR {repository.error}")
        parts.append(f"{repository.in_sync} in sync")
        print(f"  {repository.repository}: " + "; ".join(parts), file=out)
