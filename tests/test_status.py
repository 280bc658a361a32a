"""``ecr-ocir-sync status`` and ``GET /status`` against the real service process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from typing import Any

import pytest

from ecr_ocir_sync.jobs.store import JobStore
from tests.support.faults import SlowProxy
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.ports import free_port
from tests.support.registry import RegistryServer
from tests.support.service import API_KEY, CLI, ServiceProcess, ecr_event, service_env


@pytest.fixture
def ecr(start_registry) -> RegistryServer:
    return start_registry("ecr")


@pytest.fixture
def mel(start_registry) -> RegistryServer:
    return start_registry("mel")


def push(ecr: RegistryServer, repository: str, tag: str, size: int, seed: int) -> int:
    """Pushes an image; returns the bytes a region needs (its layer and config)."""
    image = build_image([layer_bytes(size, seed)])
    pusher = Pusher(ecr.url)
    try:
        pusher.image(repository, tag, image)
    finally:
        pusher.close()
    return image.size


def status(
    service: ServiceProcess, *args: str, key: str | None = API_KEY
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    env["SYNC_STATUS_URL"] = service.url
    if key is not None:
        env["SYNC_API_KEY"] = key
    return subprocess.run(
        [CLI, "status", *args], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def document(service: ServiceProcess) -> dict[str, Any]:
    done = status(service, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_status_shows_a_running_jobs_progress_per_region(ecr, mel, start_service_process):
    needed = push(ecr, "big", "1", 3_000_000, 400)
    slow = SlowProxy(ecr.port, bytes_per_second=600_000).start()
    try:
        service = start_service_process(service_env(slow.host, {"mel": mel.host}))
        job_id = service.post(ecr_event("big", "1")).json()["job_id"]

        def under_way() -> dict[str, Any] | None:
            found = document(service)
            running = [job for job in found["running"] if job["id"] == job_id]
            if running and running[0]["destinations"]["mel"]["bytes_sent"] > 0:
                return found
            return None

        found = service.wait_until(under_way, 30, "the copy's progress to show")
        screen = status(service).stdout
        service.wait_for_job(job_id)
    finally:
        slow.stop()

    [job] = found["running"]
    record = job["destinations"]["mel"]
    assert record["status"] == "running"
    assert record["bytes_needed"] == needed
    assert 0 < record["bytes_sent"] < needed
    assert found["backlog"]["running"] == 1
    assert found["workers"] == {"alive": 4, "configured": 4}
    assert "PUSH big:1  attempt 1" in screen
    assert re.search(r"mel +running +[\d.]+ \w+ / [\d.]+ MiB \(\d+%\)", screen)


def test_status_lists_recent_failures_with_their_reasons(ecr, mel, start_service_process):
    service = start_service_process(service_env(ecr.host, {"mel": mel.host}, SYNC_MAX_ATTEMPTS="1"))
    job_id = service.post(ecr_event("absent", "1")).json()["job_id"]  # ECR has no such image
    failed = service.wait_for_job(job_id, "failed")

    found = document(service)
    screen = status(service).stdout

    assert [job["id"] for job in found["recent_failures"]] == [job_id]
    assert found["recent_failures"][0]["last_error"] == failed["last_error"]
    assert found["backlog"]["failed"] == 1
    assert f"PUSH absent:1  attempts 1  id {job_id}" in screen
    assert failed["last_error"][:40] in screen


def test_status_shows_the_last_reconciliation_passs_drift(
    ecr, mel, start_service_process, tmp_path
):
    service = start_service_process(service_env(ecr.host, {"mel": mel.host}), tmp_path / "pod")
    summary = {"copy": 2, "update": 1, "delete": 0, "in_sync": 40, "errors": 0, "jobs": 3}

    async def record_a_pass() -> None:  # what the periodic pass records at its end
        store = JobStore(tmp_path / "pod").open()
        try:
            await store.end_pass(await store.begin_pass(), "complete", json.dumps(summary))
        finally:
            store.close()

    asyncio.run(record_a_pass())
    found = document(service)
    screen = status(service).stdout

    assert found["reconciliation"]["last_pass"]["summary"] == summary
    assert found["reconciliation"]["last_pass"]["outcome"] == "complete"
    assert "drift: copy 2, update 1, delete 0; in sync 40; errors 0; 3 job(s) enqueued" in screen


def test_status_with_a_wrong_key_names_the_setting_to_fix(ecr, mel, start_service_process):
    service = start_service_process(service_env(ecr.host, {"mel": mel.host}))

    done = status(service, key="not-the-service-key-0123")

    assert done.returncode == 2
    assert "refused the API key: set SYNC_API_KEY" in done.stderr


def test_status_with_a_malformed_key_names_the_setting_before_asking(tmp_path):
    unreachable = ServiceProcess(tmp_path, {}, port=free_port())

    done = status(unreachable, key="short")

    assert done.returncode == 2
    assert "SYNC_API_KEY: must be at least 16 characters" in done.stderr
    assert "cannot reach" not in done.stderr


def test_status_of_an_unreachable_service_names_the_url_setting(tmp_path):
    unreachable = ServiceProcess(tmp_path, {}, port=free_port())

    done = status(unreachable)

    assert done.returncode == 2
    assert f"cannot reach {unreachable.url}" in done.stderr
    assert "SYNC_STATUS_URL" in done.stderr


def test_status_endpoint_needs_the_api_key(ecr, mel, start_service_process):
    service = start_service_process(service_env(ecr.host, {"mel": mel.host}))

    with service.client(None) as http:
        answer = http.get("/status")

    assert answer.status_code == 401


def test_status_watch_redraws_until_interrupted(ecr, mel, start_service_process):
    service = start_service_process(service_env(ecr.host, {"mel": mel.host}))
    env = {**os.environ, "SYNC_STATUS_URL": service.url, "SYNC_API_KEY": API_KEY}
    with subprocess.Popen(
        [CLI, "status", "--watch", "0.2"], stdout=subprocess.PIPE, text=True, env=env
    ) as watching:
        assert watching.stdout is not None
        frames = 0
        for line in watching.stdout:  # bounded: the process redraws every 0.2 s
            frames += line.startswith("\x1b[H\x1b[2Jecr-ocir-sync at")
            if frames == 2:
                break
        watching.send_signal(signal.SIGINT)
        code = watching.wait(10)

    assert code == 0
    assert frames == 2


def test_status_json_is_the_service_document(ecr, mel, start_service_process):
    service = start_service_process(service_env(ecr.host, {"mel": mel.host}))

    found = document(service)

    assert set(found) == {
        "now",
        "backlog",
        "workers",
        "running",
        "recent_failures",
        "reconciliation",
    }
    assert found["reconciliation"] == {"interval_seconds": 0.0, "last_pass": None}
