"""The service end to end: the real server process, real registries, skopeo as the oracle."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ecr_ocir_sync.jobs.request import Action, SyncRequest
from ecr_ocir_sync.jobs.store import JobStore
from tests.support import skopeo
from tests.support.faults import SlowProxy
from tests.support.images import Image, Pusher, build_image, layer_bytes, sha256
from tests.support.ports import free_port
from tests.support.registry import RegistryServer
from tests.support.service import (
    ACCOUNT,
    API_KEY,
    CLI,
    REGION,
    ServiceProcess,
    ecr_event,
)
from tests.support.service import service_env as shared_service_env

TOKEN = "ocir-token-test-only"
MiB = 1024 * 1024
SYD_CREDS = f"ns/mirror:{TOKEN}"


@dataclass
class Regions:
    ecr: RegistryServer
    mel: RegistryServer
    syd: RegistryServer

    def push(self, repository: str, tag: str | None, image: Image) -> str:
        pusher = Pusher(self.ecr.url)
        try:
            return pusher.image(repository, tag, image)
        finally:
            pusher.close()

    def delete_from_ecr(self, repository: str, digest: str) -> None:
        answer = httpx.delete(f"{self.ecr.url}/v2/{repository}/manifests/{digest}")
        assert answer.status_code == 202, answer.text

    def digests(self, reference: str) -> tuple[str, str]:
        return (
            skopeo.manifest_digest(f"{self.mel.host}/ns/{reference}"),
            skopeo.manifest_digest(f"{self.syd.host}/ns/{reference}", SYD_CREDS),
        )

    def present(self, reference: str) -> tuple[bool, bool]:
        return (
            skopeo.exists(f"{self.mel.host}/ns/{reference}"),
            skopeo.exists(f"{self.syd.host}/ns/{reference}", SYD_CREDS),
        )


@pytest.fixture
def regions(start_registry) -> Regions:
    return Regions(
        start_registry("ecr"),
        start_registry("mel"),
        start_registry("syd", username="ns/mirror", password=TOKEN),
    )


def service_env(ecr_host: str, mel_host: str, syd_host: str, **extra: str) -> dict[str, str]:
    return shared_service_env(ecr_host, {"mel": mel_host, "syd": syd_host}, token=TOKEN, **extra)


@pytest.fixture
def start_service(start_service_process) -> Callable[..., ServiceProcess]:
    return start_service_process


@pytest.fixture
def service(regions, start_service) -> ServiceProcess:
    return start_service(service_env(regions.ecr.host, regions.mel.host, regions.syd.host))


def accepted(answer) -> str:
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "success"
    assert body["message"] == "Task is running asynchronously"
    return str(body["job_id"])


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = "^" + re.escape(f"{name}{{{selector}}}" if labels else name) + r" (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# -- intake and copy -----------------------------------------------------------------


def test_a_push_event_lands_the_image_in_every_region(regions, service):
    image = build_image([layer_bytes(300_000, 200), layer_bytes(100_000, 201)])
    digest = regions.push("team/app", "1.0", image)

    job_id = accepted(service.post(ecr_event("team/app", "1.0", digest=digest)))
    job = service.wait_for_job(job_id)

    assert regions.digests("team/app:1.0") == (digest, digest)
    assert set(job["destinations"]) == {"mel", "syd"}
    for record in job["destinations"].values():
        assert record["status"] == "succeeded"
        assert record["bytes_sent"] == image.size
        assert record["blobs_copied"] == 3


def test_two_regions_served_by_one_registry_each_get_their_own_record(regions, start_service):
    # Destinations are told apart by region key, not by the reference they display.
    service = start_service(service_env(regions.ecr.host, regions.mel.host, regions.mel.host))
    digest = regions.push("team/twin", "1.0", build_image([layer_bytes(10_000, 204)]))

    job = service.wait_for_job(accepted(service.post(ecr_event("team/twin", "1.0", digest=digest))))

    assert {key: record["status"] for key, record in job["destinations"].items()} == {
        "mel": "succeeded",
        "syd": "succeeded",
    }
    assert skopeo.manifest_digest(f"{regions.mel.host}/ns/team/twin:1.0") == digest


def test_the_original_short_payload_still_syncs(regions, service):
    digest = regions.push("legacy", "v2", build_image([layer_bytes(10_000, 202)]))
    payload = {
        "account": ACCOUNT,
        "region": REGION,
        "detail": {"action-type": "PUSH", "repository-name": "legacy", "image-tag": "v2"},
    }

    service.wait_for_job(accepted(service.post(payload)))

    assert regions.digests("legacy:v2") == (digest, digest)


def test_a_push_without_a_tag_lands_by_digest(regions, service):
    image = build_image([layer_bytes(10_000, 203)])
    digest = regions.push("untagged", None, image)

    service.wait_for_job(accepted(service.post(ecr_event("untagged", None, digest=digest))))

    assert regions.digests(f"untagged@{digest}") == (digest, digest)


def test_events_that_need_no_work_are_acknowledged_and_ignored(service):
    event = ecr_event("team/app", "1.0", result="FAILURE")

    answer = service.post(event)

    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    assert "SUCCESS" in answer.json()["message"]


def test_duplicates_of_a_pending_event_coalesce_into_one_job(regions, start_service):
    regions.push("big", "1", build_image([layer_bytes(3_000_000, 204)]))
    slow = SlowProxy(regions.ecr.port, bytes_per_second=1_000_000).start()
    try:
        service = start_service(service_env(slow.host, regions.mel.host, regions.syd.host))
        running = accepted(service.post(ecr_event("big", "1")))
        service.wait_until(lambda: service.job(running)["state"] == "running", 30, "a running job")

        # The tag's job is running, so the next event waits as a pending job; repeats fold in.
        answers = [service.post(ecr_event("big", "1")).json() for _ in range(3)]
        service.wait_for_job(running)
    finally:
        slow.stop()

    assert len({answer["job_id"] for answer in answers}) == 1
    assert [answer["coalesced"] for answer in answers] == [False, True, True]
    assert answers[0]["job_id"] != running


# -- deletions and ordering ------------------------------------------------------------


def test_a_delete_event_removes_the_image_from_every_region(regions, service):
    digest = regions.push("gone", "1", build_image([layer_bytes(10_000, 205)]))
    service.wait_for_job(accepted(service.post(ecr_event("gone", "1", digest=digest))))
    regions.delete_from_ecr("gone", digest)

    delete = ecr_event(
        "gone", "1", action="DELETE", digest=digest, time_text="2026-11-28T02:00:00Z"
    )
    job = service.wait_for_job(accepted(service.post(delete)))

    assert regions.present("gone:1") == (False, False)
    assert {r["detail"] for r in job["destinations"].values()} == {f"deleted {digest}"}


def test_a_stale_delete_does_not_undo_a_newer_push(regions, service):
    digest = regions.push("app", "live", build_image([layer_bytes(10_000, 206)]))
    push = ecr_event("app", "live", digest=digest, time_text="2026-11-28T03:00:00Z")
    service.wait_for_job(accepted(service.post(push)))

    stale = ecr_event(
        "app", "live", action="DELETE", digest=digest, time_text="2026-11-28T02:00:00Z"
    )
    job = service.job(accepted(service.post(stale)))

    assert job["state"] == "superseded"
    assert regions.digests("app:live") == (digest, digest)


def test_a_delete_event_for_a_tag_that_exists_again_in_ecr_deletes_nothing(regions, service):
    digest = regions.push("back", "1", build_image([layer_bytes(10_000, 216)]))
    service.wait_for_job(accepted(service.post(ecr_event("back", "1", digest=digest))))

    # Deleted and pushed again in ECR; the DELETE event arrives, the PUSH event not yet.
    delete = ecr_event(
        "back", "1", action="DELETE", digest=digest, time_text="2026-11-28T02:00:00Z"
    )
    job = service.wait_for_job(accepted(service.post(delete)), "superseded")

    assert "exists again in ECR" in job["last_error"]
    assert regions.digests("back:1") == (digest, digest)


def test_a_push_event_whose_tag_moved_on_in_ecr_is_superseded(regions, service):
    old = regions.push("moved", "1", build_image([layer_bytes(10_000, 217)]))
    new = regions.push("moved", "1", build_image([layer_bytes(10_000, 218)]))

    job = service.wait_for_job(
        accepted(service.post(ecr_event("moved", "1", digest=old))), "superseded"
    )

    assert new in job["last_error"]
    assert regions.present("moved:1") == (False, False)


def test_an_event_dated_in_the_year_9999_does_not_freeze_its_tag(regions, service):
    old = regions.push("frozen", "1", build_image([layer_bytes(10_000, 224)]))
    future = ecr_event("frozen", "1", digest=old, time_text="9999-12-31T23:59:59Z")
    service.wait_for_job(accepted(service.post(future)))

    new = regions.push("frozen", "1", build_image([layer_bytes(10_000, 225)]))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    service.wait_for_job(
        accepted(service.post(ecr_event("frozen", "1", digest=new, time_text=now)))
    )

    assert regions.digests("frozen:1") == (new, new)


def test_deleting_one_tag_keeps_a_sibling_tag_that_ecr_still_holds(regions, service):
    image = build_image([layer_bytes(10_000, 219)])
    regions.push("web", "1.0", image)  # ECR untagged "latest"; "1.0" stays
    for server, auth in ((regions.mel, None), (regions.syd, ("ns/mirror", TOKEN))):
        pusher = Pusher(server.url, auth)
        for tag in ("latest", "1.0"):
            pusher.image("ns/web", tag, image)
        pusher.close()

    delete = ecr_event("web", "latest", action="DELETE", digest=image.digest)
    job = service.wait_for_job(accepted(service.post(delete)))

    assert {r["detail"] for r in job["destinations"].values()} == {"kept: shared with 1.0"}
    assert regions.digests("web:1.0") == (image.digest, image.digest)


def test_a_delete_naming_only_a_digest_ecr_still_holds_deletes_nothing(regions, service):
    digest = regions.push("kept", "1", build_image([layer_bytes(10_000, 220)]))
    service.wait_for_job(accepted(service.post(ecr_event("kept", "1", digest=digest))))

    delete = ecr_event("kept", None, action="DELETE", digest=digest)
    job = service.wait_for_job(accepted(service.post(delete)), "superseded")

    assert job["last_error"] == f"image {digest} still exists in ECR; not deleted"
    assert regions.digests("kept:1") == (digest, digest)


def test_a_slow_copy_whose_tag_ecr_moved_on_meanwhile_writes_no_tag(regions, start_service):
    old = regions.push("slow", "1", build_image([layer_bytes(3_000_000, 221)]))
    slow = SlowProxy(regions.ecr.port, bytes_per_second=1_000_000).start()
    try:
        service = start_service(service_env(slow.host, regions.mel.host, regions.syd.host))
        job_id = accepted(service.post(ecr_event("slow", "1", digest=old)))
        service.wait_until(lambda: slow.forwarded > 500_000, 30, "the copy to be under way")
        new = regions.push("slow", "1", build_image([layer_bytes(1_000, 222)]))
        job = service.wait_for_job(job_id, "superseded", timeout=60)
    finally:
        slow.stop()

    assert job["last_error"] == f"ECR's tag 1 now points at {new}, a newer push"
    assert regions.present("slow:1") == (False, False)


# -- durability and retries ------------------------------------------------------------


def test_a_job_survives_kill_9_mid_copy_and_completes_after_restart(
    regions, start_service, tmp_path
):
    image = build_image([layer_bytes(4_000_000, 207), layer_bytes(2_000_000, 208)])
    digest = regions.push("large", "1", image)
    slow = SlowProxy(regions.ecr.port, bytes_per_second=2_000_000).start()
    try:
        env = service_env(slow.host, regions.mel.host, regions.syd.host)
        first = start_service(env, tmp_path / "pod-0")
        job_id = accepted(first.post(ecr_event("large", "1", digest=digest)))
        first.wait_until(lambda: slow.forwarded > 1_000_000, 30, "the copy to be under way")
        first.kill()

        second = start_service(env, tmp_path / "pod-0", port=first.port)
        job = second.wait_for_job(job_id, timeout=60)
    finally:
        slow.stop()

    assert regions.digests("large:1") == (digest, digest)
    assert job["attempts"] == 2
    skopeo.pull_all(f"{regions.syd.host}/ns/large:1", tmp_path / "pulled", SYD_CREDS)


def test_after_kill_9_the_restarted_service_reads_only_what_the_spool_did_not_hold(
    regions, start_service, tmp_path
):
    layer = layer_bytes(24 * MiB, 209)
    image = build_image([layer])
    digest = regions.push("huge", "1", image)
    slow = SlowProxy(regions.ecr.port, bytes_per_second=6 * MiB).start()
    journal = tmp_path / "pod-0" / "spool" / f"{sha256(layer).removeprefix('sha256:')}.json"

    def verified() -> int:
        try:
            return int(json.loads(journal.read_text())["verified"])
        except (FileNotFoundError, json.JSONDecodeError):
            return 0

    try:
        env = service_env(slow.host, regions.mel.host, regions.syd.host)
        first = start_service(env, tmp_path / "pod-0")
        job_id = accepted(first.post(ecr_event("huge", "1", digest=digest)))
        first.wait_until(lambda: verified() >= 16 * MiB, 30, "16 MiB to be checkpointed")
        first.kill()
        kept = verified()
        slow.rate = 1 << 40

        second = start_service(env, tmp_path / "pod-0", port=first.port)
        job = second.wait_for_job(job_id, timeout=60)
        metrics = second.metrics()
    finally:
        slow.stop()

    assert job["state"] == "succeeded", job
    assert regions.digests("huge:1") == (digest, digest)
    reused = metric(metrics, "ecr_ocir_sync_spool_reused_bytes_total")
    assert reused >= kept
    # What the second process read: the rest of the layer, and the config if it was not
    # yet in both regions; never the bytes the spool held.
    assert metric(metrics, "ecr_ocir_sync_source_bytes_total") <= image.size - reused
    assert list((tmp_path / "pod-0" / "spool").iterdir()) == []


CRASHING_SERVICE = [sys.executable, str(Path(__file__).parent / "support/crashing_service.py")]


async def _enqueue(data_dir: Path, *requests: SyncRequest) -> list[str]:
    """Events a previous process accepted: committed to the store it left behind."""
    store = JobStore(data_dir).open()
    try:
        return [(await store.submit(request)).job.id for request in requests]
    finally:
        store.close()


def test_a_job_that_kills_the_process_fails_after_its_attempts_and_blocks_nothing(
    regions, start_service, tmp_path
):
    digest = regions.push("fine", "1", build_image([layer_bytes(10_000, 223)]))
    data = tmp_path / "pod-0"
    crashing, fine = asyncio.run(
        _enqueue(
            data,
            SyncRequest(Action.PUSH, ACCOUNT, REGION, "crash/me", "1", None, None, None),
            SyncRequest(Action.PUSH, ACCOUNT, REGION, "fine", "1", None, None, None),
        )
    )
    env = service_env(
        regions.ecr.host,
        regions.mel.host,
        regions.syd.host,
        SYNC_MAX_ATTEMPTS="2",
        SYNC_WORKERS="1",
        SYNC_RETRY_BASE_SECONDS="2",
        TEST_CRASH_REPOSITORY="crash/me",
    )
    for _ in range(2):  # attempt 1, then (after the queue behind it) attempt 2 kill it
        dying = ServiceProcess(data, env, command=CRASHING_SERVICE).launch()
        try:
            assert dying.exited() == 137
        finally:
            dying.stop()

    service = start_service(env, data)

    failed = service.job(crashing)
    assert (failed["state"], failed["attempts"]) == ("failed", 2)
    assert failed["last_error"].startswith("gave up after 2 attempt(s): the last one never")
    assert service.job(fine)["state"] == "succeeded"
    assert regions.digests("fine:1") == (digest, digest)


def test_a_region_down_at_first_is_retried_alone_until_the_job_succeeds(
    regions, start_service, start_registry
):
    syd_port = free_port()
    image = build_image([layer_bytes(200_000, 209)])
    digest = regions.push("app", "2", image)
    service = start_service(
        service_env(regions.ecr.host, regions.mel.host, f"127.0.0.1:{syd_port}")
    )
    job_id = accepted(service.post(ecr_event("app", "2", digest=digest)))

    def failed_once() -> bool:
        job = service.job(job_id)
        return job["attempts"] >= 1 and job["destinations"].get("syd", {}).get("status") == "failed"

    service.wait_until(failed_once, 30, "syd to fail its first attempt")
    start_registry("syd-late", username="ns/mirror", password=TOKEN, port=syd_port)
    job = service.wait_for_job(job_id, timeout=60)

    assert job["attempts"] >= 2
    assert skopeo.manifest_digest(f"127.0.0.1:{syd_port}/ns/app:2", SYD_CREDS) == digest
    metrics = service.metrics()
    # mel was copied once, in the first attempt, and never touched again.
    assert metric(metrics, "ecr_ocir_sync_destination_bytes_total", destination="mel") == image.size
    assert metric(metrics, "ecr_ocir_sync_blobs_total", destination="mel", outcome="skipped") == 0
    assert (
        metric(
            metrics,
            "ecr_ocir_sync_destination_duration_seconds_count",
            destination="mel",
            outcome="succeeded",
        )
        == 1
    )


# -- bad input and auth ----------------------------------------------------------------


BAD_REQUESTS = [
    ("malformed JSON", b"{not json", 400, "body"),
    ("not an object", b"[1, 2]", 400, "body"),
    ("no detail", json.dumps({"account": ACCOUNT, "region": REGION}).encode(), 400, "detail"),
    (
        "bad repository",
        json.dumps(ecr_event("Bad/Repo", "1")).encode(),
        400,
        "detail.repository-name",
    ),
    ("bad tag", json.dumps(ecr_event("app", "-x")).encode(), 400, "detail.image-tag"),
    (
        "bad digest",
        json.dumps(ecr_event("app", "1", digest="sha256:123")).encode(),
        400,
        "detail.image-digest",
    ),
    (
        "foreign account",
        json.dumps({**ecr_event("app", "1"), "account": "999999999999"}).encode(),
        403,
        "account",
    ),
    (
        "foreign region",
        json.dumps({**ecr_event("app", "1"), "region": "eu-west-1"}).encode(),
        403,
        "region",
    ),
    ("too large", b'{"pad": "' + b"x" * 70_000 + b'"}', 413, "body"),
]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_4xx_naming_the_field_and_enqueues_nothing(service, body, status, field):
    with service.client() as http:
        answer = http.post("/sync", content=body, headers={"Content-Type": "application/json"})
        jobs = http.get("/jobs").json()["jobs"]

    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["message"].startswith(field)
    assert jobs == []


@pytest.mark.parametrize("key", [None, "wrong-key-0123456789"], ids=["missing", "wrong"])
def test_sync_and_jobs_demand_the_shared_secret(service, key):
    with service.client(key) as http:
        sync = http.post("/sync", json=ecr_event("app", "1"))
        jobs = http.get("/jobs")

    assert (sync.status_code, jobs.status_code) == (401, 401)
    assert "X-API-Key" in sync.json()["message"]


def test_the_secret_may_come_as_a_bearer_token(service):
    with service.client(None) as http:
        answer = http.get("/jobs", headers={"Authorization": f"Bearer {API_KEY}"})

    assert answer.status_code == 200


def test_health_readiness_and_metrics_need_no_secret_on_the_operations_port(service):
    with httpx.Client(base_url=service.ops_url) as http:
        statuses = [http.get(path).status_code for path in ("/healthz", "/readyz", "/metrics")]

    assert statuses == [200, 200, 200]


def test_the_api_port_serves_no_operations_endpoints_or_docs(service):
    with service.client() as http:
        paths = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")
        statuses = [http.get(path).status_code for path in paths]

    assert statuses == [404] * len(paths)


def test_start_up_names_every_missing_setting(tmp_path):
    done = subprocess.run(
        [CLI, "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SYNC_DATA_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    for name in (
        "OCI_TENANCY",
        "OCI_USERNAME",
        "OCI_AUTH_TOKEN",
        "OCI_REPO_REGION_KEY",
        "SYNC_ALLOWED_ACCOUNTS",
        "SYNC_ALLOWED_REGIONS",
        "SYNC_API_KEY",
    ):
        assert name in done.stderr


def test_an_unwritable_data_dir_stops_start_up_with_the_settings_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be made under a file, not even by root
    environ = shared_service_env(
        "127.0.0.1:9", {"mel": "127.0.0.1:9"}, SYNC_DATA_DIR=str(blocker / "d")
    )

    done = subprocess.run(
        [CLI, "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **environ},
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("ecr-ocir-sync: error: cannot start, fix these settings:\n")
    assert f"SYNC_DATA_DIR={str(blocker / 'd')!r}: cannot create or write there" in done.stderr


# -- observability and shutdown --------------------------------------------------------


def test_metrics_move_as_jobs_run(regions, service):
    before = service.metrics()
    image = build_image([layer_bytes(50_000, 210)])
    digest = regions.push("metered", "1", image)

    service.wait_for_job(accepted(service.post(ecr_event("metered", "1", digest=digest))))
    after = service.metrics()

    assert metric(before, "ecr_ocir_sync_jobs_total", action="PUSH", outcome="succeeded") == 0
    assert metric(after, "ecr_ocir_sync_jobs_total", action="PUSH", outcome="succeeded") == 1
    assert metric(after, "ecr_ocir_sync_events_total", result="accepted") == 1
    assert metric(after, "ecr_ocir_sync_source_bytes_total") == image.size
    assert metric(after, "ecr_ocir_sync_destination_bytes_total", destination="syd") == image.size
    assert metric(after, "ecr_ocir_sync_blobs_total", destination="mel", outcome="copied") == 2
    assert metric(after, "ecr_ocir_sync_queue_jobs", state="succeeded") == 1
    assert (
        metric(after, "ecr_ocir_sync_destination_last_success_timestamp_seconds", destination="mel")
        > 0
    )
    assert "repository=" not in after  # labels stay bounded


def test_logs_are_json_lines_with_job_context_and_no_secrets_even_at_debug(regions, start_service):
    env = service_env(regions.ecr.host, regions.mel.host, regions.syd.host)
    service = start_service({**env, "SYNC_LOG_LEVEL": "DEBUG"})
    digest = regions.push("logged", "1", build_image([layer_bytes(10_000, 211)]))
    job_id = accepted(service.post(ecr_event("logged", "1", digest=digest)))
    service.wait_for_job(job_id)

    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]

    job_lines = [line for line in lines if line.get("job_id") == job_id]
    assert {line["message"] for line in job_lines} >= {"job started", "job succeeded"}
    assert {line.get("destination") for line in job_lines} >= {"mel", "syd"}
    assert all(line["repository"] == "logged" for line in job_lines)
    log = service.log_path.read_text() if service.log_path else ""
    basic = base64.b64encode(f"ns/mirror:{TOKEN}".encode()).decode()
    for secret in (TOKEN, API_KEY, basic):
        assert secret not in log


def test_sigterm_fails_readiness_finishes_the_running_job_and_exits(regions, start_service):
    digest = regions.push("drain", "1", build_image([layer_bytes(3_000_000, 212)]))
    slow = SlowProxy(regions.ecr.port, bytes_per_second=1_500_000).start()
    try:
        service = start_service(service_env(slow.host, regions.mel.host, regions.syd.host))
        job_id = accepted(service.post(ecr_event("drain", "1", digest=digest)))
        service.wait_until(lambda: slow.forwarded > 200_000, 30, "the copy to be under way")
        assert service.process is not None
        service.process.send_signal(15)

        def not_ready() -> bool:
            return httpx.get(f"{service.ops_url}/readyz").status_code == 503

        service.wait_until(not_ready, 10, "readiness to fail")
        exit_code = service.process.wait(60)
    finally:
        slow.stop()

    assert exit_code == 0
    assert regions.digests("drain:1") == (digest, digest)
    assert '"message": "job succeeded"' in service.log()
    assert job_id in service.log()


# -- operators -------------------------------------------------------------------------


def test_a_job_for_a_missing_image_fails_at_once_and_retry_starts_it_again(regions, service):
    job_id = accepted(service.post(ecr_event("later", "1")))
    failed = service.wait_for_job(job_id, "failed")
    assert failed["attempts"] == 1  # a 404 is not retried
    assert "404" in failed["last_error"]
    digest = regions.push("later", "1", build_image([layer_bytes(10_000, 213)]))

    with service.client() as http:
        answer = http.post(f"/jobs/{job_id}/retry")
    job = service.wait_for_job(job_id)

    assert answer.status_code == 202
    assert job["state"] == "succeeded"
    assert regions.digests("later:1") == (digest, digest)


def test_only_a_failed_job_can_be_retried_through_the_api(regions, service):
    digest = regions.push("fine", "1", build_image([layer_bytes(10_000, 214)]))
    job_id = accepted(service.post(ecr_event("fine", "1", digest=digest)))
    service.wait_for_job(job_id)

    with service.client() as http:
        conflict = http.post(f"/jobs/{job_id}/retry")
        missing = http.post("/jobs/no-such-job/retry")

    assert conflict.status_code == 409
    assert "only failed jobs retry" in conflict.json()["message"]
    assert missing.status_code == 404


def test_the_jobs_command_reads_the_services_store(regions, service):
    digest = regions.push("listed", "1", build_image([layer_bytes(10_000, 215)]))
    job_id = accepted(service.post(ecr_event("listed", "1", digest=digest)))
    service.wait_for_job(job_id)

    def jobs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "jobs", "--data-dir", str(service.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listing = jobs("list", "--state", "succeeded")
    shown = jobs("show", job_id)

    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith(f"{job_id}  succeeded  PUSH   listed:1  attempts=1")
    assert json.loads(shown.stdout)["destinations"]["syd"]["status"] == "succeeded"
    assert jobs("show", "nope").returncode == 1
