"""SQLite against the shared PostgreSQL store, one and three service processes.

    .venv/bin/python -m bench.shared_store [--seconds N] [--images N] [--write]

(on a shared machine, under ``flock /work/suite.lock``).

Everything on 127.0.0.1: a real PostgreSQL server (Debian's, fsync on, as in
production), the real ``ecr-ocir-sync serve`` processes, Debian's
docker-registry as "ECR" and the two regions.

1. Intake: ``wrk`` (bench/intake_post.lua, a new tag per event, closed loop,
   16 connections per process) POSTs to every process at once for
   ``--seconds``; the workers are busy (ECR is a listener that never answers),
   as in bench/intake.py. Afterwards every accepted event (the processes'
   /metrics) is looked for in the store: the rows must equal them.
2. Jobs completed per second: ``--images`` small images (one 4 KiB layer),
   one event each, spread over the processes; the clock runs from the first
   event to the last job ``succeeded`` in the store, fresh destinations each run.

``--write`` replaces the ``shared-store`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer
from tests.support.service import ServiceProcess, ecr_event

from bench.intake import Blackhole, WrkResult, metric, run_wrk, service_env
from bench.report import machine_lines, update_results_file

WORK = Path(__file__).resolve().parent / ".work" / "shared-store"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CONNECTIONS = 16  # per process


@dataclass(frozen=True, slots=True)
class Setup:
    backend: str  # sqlite | postgresql
    processes: int

    @property
    def label(self) -> str:
        return f"{self.backend}, {self.processes} process{'es' if self.processes > 1 else ''}"


SETUPS = (Setup("sqlite", 1), Setup("postgresql", 1), Setup("postgresql", 3))


@contextmanager
def fleet(
    setup: Setup, env: dict[str, str], root: Path, database_url: str | None
) -> Iterator[list[ServiceProcess]]:
    extra = {"SYNC_DATABASE_URL": database_url} if database_url else {}
    services = [ServiceProcess(root / f"pod-{i}", {**env, **extra}) for i in range(setup.processes)]
    try:
        for service in services:
            service.start()
        yield services
    finally:
        for service in services:
            service.stop()


def stored_rows(setup: Setup, root: Path, database_url: str | None) -> int:
    if database_url:
        with psycopg.connect(database_url) as connection:
            row = connection.execute("SELECT COUNT(*) FROM jobs").fetchone()
            return int(row[0]) if row else 0
    with sqlite3.connect(root / "pod-0" / "jobs.sqlite3") as connection:
        return int(connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


@dataclass(frozen=True, slots=True)
class IntakeFigures:
    setup: Setup
    per_second: float
    p99_ms: float  # the worst process's
    accepted: int
    rows: int


def intake(setup: Setup, pg: PostgresServer, seconds: int) -> IntakeFigures:
    root = WORK / f"intake-{setup.backend}-{setup.processes}"
    shutil.rmtree(root, ignore_errors=True)  # a fresh store and registries each run
    database_url = pg.create_database() if setup.backend == "postgresql" else None
    with ExitStack() as stack:
        ecr = stack.enter_context(Blackhole())
        mel = stack.enter_context(_registry(root / "mel"))
        syd = stack.enter_context(_registry(root / "syd"))
        env = service_env(ecr.url, mel, syd)
        services = stack.enter_context(fleet(setup, env, root, database_url))
        results: list[WrkResult] = []
        threads = [
            threading.Thread(
                target=lambda s=service, i=index: results.append(
                    run_wrk(s.url, CONNECTIONS, seconds, f"r{i}", root / f"wrk-{i}.log")
                )
            )
            for index, service in enumerate(services)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accepted = sum(
            int(metric(s.metrics(), "ecr_ocir_sync_events_total", result="accepted"))
            for s in services
        )
        for service in services:
            service.terminate()
        rows = stored_rows(setup, root, database_url)
    answered = sum(r.answered_2xx for r in results)
    return IntakeFigures(
        setup,
        answered / max(r.seconds for r in results),
        max(r.p99_ms for r in results),
        accepted,
        rows,
    )


@contextmanager
def _registry(root: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(root).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True, slots=True)
class JobFigures:
    setup: Setup
    images: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.images / self.seconds


def jobs(setup: Setup, pg: PostgresServer, images: int) -> JobFigures:
    root = WORK / f"jobs-{setup.backend}-{setup.processes}"
    shutil.rmtree(root, ignore_errors=True)
    database_url = pg.create_database() if setup.backend == "postgresql" else None
    with ExitStack() as stack:
        ecr = stack.enter_context(_registry(root / "ecr"))
        mel = stack.enter_context(_registry(root / "mel"))
        syd = stack.enter_context(_registry(root / "syd"))
        pusher = Pusher(ecr.url)
        digests = [
            pusher.image("bench/small", f"t{i}", build_image([layer_bytes(4096, 10_000 + i)]))
            for i in range(images)
        ]
        pusher.close()
        services = stack.enter_context(
            fleet(setup, service_env(ecr.url, mel, syd), root, database_url)
        )
        started = time.monotonic()
        job_ids = []
        for i, digest in enumerate(digests):
            answer = services[i % len(services)].post(
                ecr_event("bench/small", f"t{i}", digest=digest)
            )
            job_ids.append(answer.json()["job_id"])

        def done() -> bool:
            with services[0].client() as http:
                listed = http.get("/jobs", params={"state": "succeeded", "limit": 1000}).json()
            return len(listed["jobs"]) >= images

        ServiceProcess.wait_until(done, 600, "every job to succeed")
        elapsed = time.monotonic() - started
    return JobFigures(setup, images, elapsed)


def render(intakes: list[IntakeFigures], runs: list[JobFigures], command: str) -> str:
    lines = [
        "## `shared-store` run: SQLite against PostgreSQL, one and three processes",
        "",
        f"`{command}`",
        "",
        *machine_lines(),
        "",
        "Intake (workers busy, closed loop, 16 connections per process, every process at once):",
        "",
        "| store | 202/s (all processes) | p99 ms (worst process) | accepted | rows in store |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.setup.label} | {f.per_second:,.0f} | {f.p99_ms:.1f} | {f.accepted} | {f.rows} |"
        for f in intakes
    ]
    lines += [
        "",
        "Jobs completed (small images, one 4 KiB layer, two regions, 4 workers per process):",
        "",
        "| store | images | seconds | jobs/s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.setup.label} | {r.images} | {r.seconds:.1f} | {r.per_second:.1f} |" for r in runs
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per intake run (max 60)")
    parser.add_argument("--images", type=int, default=300, help="small images (max 2000)")
    parser.add_argument("--write", action="store_true", help=f"put the report into {RESULTS}")
    args = parser.parse_args(argv)
    seconds, images = min(args.seconds, 60), min(args.images, 2000)
    pg = PostgresServer(durable=True).start()
    try:
        intakes = [intake(setup, pg, seconds) for setup in SETUPS]
        runs = [jobs(setup, pg, images) for setup in SETUPS]
    finally:
        pg.stop()
    command = (
        "flock /work/suite.lock .venv/bin/python -m bench.shared_store "
        f"--seconds {seconds} --images {images}"
    )
    report = render(intakes, runs, command)
    print(report)
    if args.write:
        update_results_file(RESULTS, "shared-store", report)
    for figures in intakes:
        if figures.rows != figures.accepted:
            print(
                f"LOST EVENTS: {figures.setup.label}: {figures.accepted} accepted, "
                f"{figures.rows} stored"
            )
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
