"""Three ``serve`` processes sharing one PostgreSQL database, one of them killed mid-copy.

Real processes, real registries, a real PostgreSQL server; skopeo reads the
regions. Events for the same tags go to different processes (as the
Service's load balancer and EventBridge's retries would send them); the
process running the large copy is killed with SIGKILL; another process
takes its job over when the lease expires.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support import skopeo
from tests.support.faults import SlowProxy
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.registry import RegistryServer
from tests.support.service import ServiceProcess, ecr_event, service_env

TOKEN = "ocir-token-test-only"
SYD_CREDS = f"ns/mirror:{TOKEN}"
FINAL = ("succeeded", "failed", "superseded")


def jobs_in(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as connection:
        return connection.execute("SELECT * FROM jobs ORDER BY seq").fetchall()


def accepted(answer: httpx.Response) -> str:
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


@pytest.fixture
def ecr(start_registry) -> RegistryServer:
    return start_registry("ecr")


@pytest.fixture
def mel(start_registry) -> RegistryServer:
    return start_registry("mel")


@pytest.fixture
def syd(start_registry) -> RegistryServer:
    return start_registry("syd", username="ns/mirror", password=TOKEN)


def push(ecr: RegistryServer, repository: str, tag: str, seed: int, size: int) -> str:
    pusher = Pusher(ecr.url)
    try:
        return pusher.image(repository, tag, build_image([layer_bytes(size, seed)]))
    finally:
        pusher.close()


def test_three_processes_share_the_work_and_survive_one_killed_mid_copy(
    ecr, mel, syd, database_url, start_service_process, tmp_path
):
    big = push(ecr, "big", "1", 300, 4_000_000)
    mid = push(ecr, "mid", "1", 301, 1_500_000)
    small = {f"s{i}": push(ecr, "small", f"s{i}", 310 + i, 150_000) for i in range(4)}
    flips = {name: push(ecr, "flip", name, 320 + i, 150_000) for i, name in enumerate("ab")}
    slow = SlowProxy(ecr.port, bytes_per_second=1_500_000).start()
    try:
        env = service_env(
            slow.host,
            {"mel": mel.host, "syd": syd.host},
            token=TOKEN,
            SYNC_DATABASE_URL=database_url,
            SYNC_LEASE_SECONDS="2",
        )
        fleet = [start_service_process(env, tmp_path / f"pod-{i}") for i in range(3)]
        big_job = accepted(fleet[0].post(ecr_event("big", "1", digest=big)))

        def copying() -> dict[str, Any] | None:
            running = [j for j in jobs_in(database_url) if j["state"] == "running"]
            return running[0] if running and slow.forwarded > 1_000_000 else None

        running = ServiceProcess.wait_until(copying, 30, "the large copy to be under way")
        owner_pid = int(running["lease_owner"].split("/")[1])
        [victim] = [p for p in fleet if p.process and p.process.pid == owner_pid]
        survivors = [p for p in fleet if p is not victim]
        victim.kill()

        # EventBridge's retry of an event, to another process, while the first copy runs.
        mid_job = accepted(survivors[0].post(ecr_event("mid", "1", digest=mid)))
        survivors[0].wait_until(
            lambda: survivors[1].job(mid_job)["state"] != "pending", 30, "mid:1 to start"
        )
        retry_job = accepted(survivors[1].post(ecr_event("mid", "1", digest=mid)))
        submitted = [big_job, mid_job, retry_job]
        for i, (tag, digest) in enumerate(small.items()):
            event = ecr_event("small", tag, digest=digest)
            twice = (survivors[i % 2], survivors[(i + 1) % 2])  # the same event, to both
            submitted.extend(accepted(process.post(event)) for process in twice)
        # A DELETE then a PUSH of one tag, to different processes, in order (a) and late (b).
        stamp = "2026-11-28T01:5{}:00Z"
        for tag, order in (("a", ("DELETE", "PUSH")), ("b", ("PUSH", "DELETE"))):
            for i, action in enumerate(order):
                at = stamp.format(1 if action == "DELETE" else 2)
                event = ecr_event("flip", tag, action=action, digest=flips[tag], time_text=at)
                submitted.append(accepted(survivors[i].post(event)))

        def all_final() -> bool:
            return all(j["state"] in FINAL for j in jobs_in(database_url))

        ServiceProcess.wait_until(all_final, 90, "every job to finish")
        restarted = start_service_process(env, victim.data_dir)
    finally:
        slow.stop()

    expected = {"big:1": big, "mid:1": mid} | {f"small:{t}": d for t, d in small.items()}
    expected |= {f"flip:{t}": d for t, d in flips.items()}
    for reference, digest in expected.items():
        assert skopeo.manifest_digest(f"{mel.host}/ns/{reference}") == digest, reference
        assert skopeo.manifest_digest(f"{syd.host}/ns/{reference}", SYD_CREDS) == digest

    jobs = jobs_in(database_url)
    assert {j["state"] for j in jobs} <= {"succeeded", "superseded"}, jobs
    taken_over = next(j for j in jobs if j["id"] == big_job)
    assert (taken_over["state"], taken_over["attempts"]) == ("succeeded", 2)

    # No tag was ever copied by two processes at once: per image key, the jobs that ran
    # did so one after another.
    ran: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for job in jobs:
        if job["started"] is not None:
            ran[job["image_key"]].append((job["started"], job["finished"]))
    for key, intervals in ran.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert end <= start, f"{key}: jobs ran at once: {intervals}"
    assert len(ran[next(j["image_key"] for j in jobs if j["id"] == retry_job)]) == 2

    # Every job, from every live process (the killed one's successor included).
    for process in [*survivors, restarted]:
        for job_id in submitted:
            assert process.job(job_id)["state"] in ("succeeded", "superseded")
