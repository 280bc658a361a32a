"""``serve`` and ``jobs list|show|retry``: the service and its store from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecr_ocir_sync.settings import Settings

__all__ = ["add_service_commands", "run_service_command"]


def add_service_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the web app (/sync, /jobs, /metrics) and the worker pool",
        description="Run the sync service. Settings come from the environment; see README.",
    )
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104 - a pod listens on all its addresses
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")

    reconcile = commands.add_parser(
        "reconcile",
        help="compare ECR with every region and enqueue jobs for what differs",
        description="List ECR repositories and images (ECR API) and every region's tags; "
        "enqueue jobs into the service's store (SYNC_DATA_DIR) for tags missing, moved or, "
        "with SYNC_DELETE_POLICY=mirror, gone from ECR. Settings as for serve.",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="print the plan, enqueue nothing")
    reconcile.add_argument(
        "--repository",
        default="**",
        metavar="PATTERN",
        help="only repositories matching this glob, as in rules: '*' stays within one path "
        "segment, '**' crosses '/' (default: every repository)",
    )
    reconcile.add_argument("--json", action="store_true", help="print the plan as JSON")

    jobs = commands.add_parser(
        "jobs",
        help="list, show or retry jobs in the store (SYNC_DATABASE_URL or SYNC_DATA_DIR)",
        description="Read the job store the service writes: the PostgreSQL database of "
        "SYNC_DATABASE_URL when set, else the SQLite store in SYNC_DATA_DIR.",
    )
    jobs.add_argument(
        "--data-dir", type=Path, help="the store's directory (default $SYNC_DATA_DIR)"
    )
    actions = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--state", help="pending, running, succeeded, failed or superseded")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one job in full (JSON)")
    show.add_argument("job_id")
    retry = actions.add_parser("retry", help="start a failed job again")
    retry.add_argument("job_id")


def _data_dir(args: argparse.Namespace, settings: Settings) -> Path:
    from ecr_ocir_sync.errors import ConfigError  # noqa: PLC0415

    path = args.data_dir or (settings.data_dir if settings.given("SYNC_DATA_DIR") else None)
    if not path:
        raise ConfigError("no job store: pass --data-dir or set SYNC_DATA_DIR")
    store_file = Path(path) / "jobs.sqlite3"
    if not store_file.exists():
        raise ConfigError(f"no job store at {store_file}; is SYNC_DATA_DIR right?")
    return Path(path)


def _job_line(job: Any) -> str:
    image = f"{job.repository}:{job.tag}" if job.tag else f"{job.repository}@{job.digest}"
    line = f"{job.id}  {job.state.value:<10} {job.action:<6} {image}  attempts={job.attempts}"
    if job.last_error and job.state.value != "succeeded":
        line += f"  error={job.last_error}"
    return line


async def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    from ecr_ocir_sync.jobs.backend import open_store  # noqa: PLC0415
    from ecr_ocir_sync.jobs.model import JobState  # noqa: PLC0415
    from ecr_ocir_sync.jobs.store import JobNotFoundError, JobStateError  # noqa: PLC0415

    data_dir = Path() if settings.database_url else _data_dir(args, settings)
    async with open_store(data_dir, settings.database_url) as store:
        if args.jobs_command == "list":
            state = JobState(args.state) if args.state else None
            jobs = await store.list(state, args.limit)
            if args.json:
                print(json.dumps([job.to_json() for job in jobs], indent=2))
            else:
                for job in jobs:
                    print(_job_line(job))
            return 0
        try:
            if args.jobs_command == "show":
                print(json.dumps((await store.get(args.job_id)).to_json(), indent=2))
            else:
                job = await store.retry(args.job_id)
                print(f"{job.id} is pending again; a running service picks it up")
        except JobNotFoundError:
            print(f"ecr-ocir-sync: error: no job with id {args.job_id!r}", file=sys.stderr)
            return 1
        except JobStateError as error:
            print(f"ecr-ocir-sync: error: {error}", file=sys.stderr)
            return 1
        return 0


async def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from ecr_ocir_sync.cli.report import print_plan  # noqa: PLC0415
    from ecr_ocir_sync.jobs.backend import open_store  # noqa: PLC0415
    from ecr_ocir_sync.reconcile.loop import apply_plans, plan_all  # noqa: PLC0415
    from ecr_ocir_sync.rules.patterns import repository_glob  # noqa: PLC0415
    from ecr_ocir_sync.service.wiring import build_placer, build_registries  # noqa: PLC0415

    repositories = repository_glob(args.repository, where="--repository")
    settings.require_service()
    async with build_registries(settings) as registries:
        placer = build_placer(settings)
        plans = await plan_all(settings, registries, placer, repositories)
    if args.json:
        print(json.dumps([plan.to_json() for plan in plans], indent=2, default=str))
    else:
        for plan in plans:
            print_plan(plan, sys.stdout)
    if args.dry_run:
        return 0
    async with open_store(settings.data_dir, settings.database_url) as store:
        created = await apply_plans(plans, store)
        where = store.location
    if not args.json:
        print(f"enqueued {created} job(s) in {where}; the service runs them")
    return 0


def run_service_command(args: argparse.Namespace, settings: Settings) -> int:
    """``serve`` and ``reconcile`` need every service setting; ``jobs`` only the store."""
    if args.command == "reconcile":
        return asyncio.run(_reconcile(args, settings))
    if args.command == "serve":
        from ecr_ocir_sync.service.server import serve  # noqa: PLC0415

        serve(settings.require_service(), args.host, args.port)
        return 0
    return asyncio.run(_jobs(args, settings))
