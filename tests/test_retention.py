"""Retention against real registries: ECR's push times (moto's ECR API) decide which
tags stay at the destination; skopeo says what is left there."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest

from ecr_ocir_sync.cloud.ecr_api import EcrCatalog
from ecr_ocir_sync.reconcile.planner import ReconcilePlan, Reconciler
from ecr_ocir_sync.service.wiring import build_placer
from ecr_ocir_sync.settings import Settings
from tests.conftest import make_registries
from tests.support import skopeo
from tests.support.ecr import ACCOUNT, REGION, FakeEcr
from tests.support.images import Image, Pusher, build_image, layer_bytes
from tests.support.service import ecr_event, service_env

# Kept: the newest one, and whatever ECR says was pushed in the last week.
RULES = """\
version: 1
rules:
  - name: builds
    delete: ignore
    retain: {newest: 1, days: 7}
"""


@pytest.fixture
def moto_server(monkeypatch):
    """moto's ECR API on loopback, for the service process and for this one."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    from tests.support.ports import free_port  # noqa: PLC0415

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    httpx.post(f"{url}/moto-api/reset")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    yield url
    server.stop()


@pytest.fixture
def ecr(moto_server, start_registry) -> FakeEcr:
    api = boto3.client("ecr", region_name=REGION, endpoint_url=moto_server)
    return FakeEcr(start_registry("ecr"), api)


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def put(server, repository: str, tag: str, image: Image) -> None:
    pusher = Pusher(server.url)
    try:
        pusher.image(repository, tag, image)
    finally:
        pusher.close()


def rules_env(ecr: FakeEcr, mel, moto_server: str, tmp_path: Path, rules: str, **extra: str):
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    return service_env(
        ecr.registry.host,
        {"mel": mel.host},
        AWS_ENDPOINT_URL_ECR=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        SYNC_RULES_FILE=str(path),
        **extra,
    )


async def plan(environ: dict[str, str], mel, ecr: FakeEcr, moto_server: str) -> ReconcilePlan:
    settings = Settings.from_environ(environ).require_service()
    async with make_registries(mel.host, ecr.registry.host, logins={}) as registries:
        catalog = EcrCatalog(ACCOUNT, REGION, endpoint_url=moto_server)
        return await Reconciler(catalog, registries, build_placer(settings)).plan()


def mirrored(ecr: FakeEcr, mel, tags_and_days: dict[str, float], seed: int) -> dict[str, Image]:
    """Each tag pushed to ECR that many days ago, and already mirrored to ``mel``."""
    images = {}
    for index, (tag, days) in enumerate(tags_and_days.items()):
        images[tag] = build_image([layer_bytes(1_000, seed + index)])
        ecr.push("app", tag, images[tag])
        ecr.pushed_at("app", tag, days_ago(days))
        put(mel, "ns/app", tag, images[tag])
    return images


async def test_reconciliation_expires_only_ecr_tags_that_retain_no_longer_keeps(
    ecr, moto_server, start_registry, tmp_path
):
    mel = start_registry("mel")
    images = mirrored(ecr, mel, {"1.0": 40, "1.1": 30, "1.2": 3, "1.3": 1}, seed=700)
    ecr.push("app", "0.9", build_image([layer_bytes(1_000, 710)]))  # expired, never mirrored
    ecr.pushed_at("app", "0.9", days_ago(50))
    put(mel, "ns/app", "by-hand", build_image([layer_bytes(1_000, 711)]))  # not from ECR
    referrers_tag = images["1.3"].digest.replace(":", "-")  # the mirror's own fallback tag
    put(mel, "ns/app", referrers_tag, build_image([layer_bytes(1_000, 712)]))
    signature = images["1.0"].digest.replace(":", "-") + ".sig"  # cosign's, old, in ECR too
    mirrored(ecr, mel, {signature: 60}, seed=713)

    found = await plan(rules_env(ecr, mel, moto_server, tmp_path, RULES), mel, ecr, moto_server)

    (repository,) = found.repositories
    assert [(d.tag, d.destination_digest) for d in repository.to_expire] == [
        ("1.0", images["1.0"].digest),
        ("1.1", images["1.1"].digest),
    ]
    assert repository.to_copy == []  # 0.9 is expired: never copied
    assert repository.to_delete == []
    assert repository.in_sync == 2
    assert [(r.action, r.tag) for r in found.requests()] == [("EXPIRE", "1.0"), ("EXPIRE", "1.1")]


def test_the_service_expires_by_reconciliation_and_the_next_pass_plans_nothing(
    ecr, moto_server, start_registry, start_service_process, tmp_path
):
    mel = start_registry("mel")
    mirrored(ecr, mel, {"1.0": 40, "1.1": 30, "1.2": 3, "1.3": 1}, seed=720)
    put(mel, "ns/app", "by-hand", build_image([layer_bytes(1_000, 730)]))
    environ = rules_env(
        ecr,
        mel,
        moto_server,
        tmp_path,
        RULES,
        SYNC_RECONCILE_INTERVAL_SECONDS="3600",
        SYNC_RECONCILE_LEADER="true",
    )
    service = start_service_process(environ)

    def expired() -> list[dict]:
        with service.client() as http:
            jobs = http.get("/jobs").json()["jobs"]
        done = len(jobs) == 2 and all(job["state"] == "succeeded" for job in jobs)
        return jobs if done else []

    jobs = service.wait_until(expired, 60, "the two EXPIRE jobs to succeed")

    assert sorted((job["action"], job["tag"]) for job in jobs) == [
        ("EXPIRE", "1.0"),
        ("EXPIRE", "1.1"),
    ]
    assert skopeo.list_tags(f"{mel.host}/ns/app") == ["1.2", "1.3", "by-hand"]
    assert 'ecr_ocir_sync_reconcile_drift{kind="expire"} 2.0' in service.metrics()
    again = asyncio.run(plan(environ, mel, ecr, moto_server))
    assert again.totals() == {
        "copy": 0,
        "update": 0,
        "delete": 0,
        "expire": 0,
        "in_sync": 2,
        "errors": 0,
    }


def test_a_push_expires_what_its_rule_no_longer_keeps_and_keeps_a_shared_manifest(
    ecr, moto_server, start_registry, start_service_process, tmp_path
):
    mel = start_registry("mel")
    images = mirrored(ecr, mel, {"0": 4, "1": 3, "2": 2}, seed=740)
    put(mel, "ns/app", "pinned", images["1"])  # placed by hand, on 1's manifest
    rules = "version: 1\nrules:\n  - name: builds\n    retain: {newest: 2}\n"
    service = start_service_process(rules_env(ecr, mel, moto_server, tmp_path, rules))
    newest = build_image([layer_bytes(1_000, 750)])
    digest = ecr.push("app", "3", newest)

    answer = service.post(ecr_event("app", "3", digest=digest))
    job = service.wait_for_job(answer.json()["job_id"])

    detail = job["destinations"]["mel"]["detail"]
    assert f"0: deleted {images['0'].digest}" in detail
    assert "1: kept: shared with pinned" in detail
    # Debian's registry cannot delete a tag alone: 1 stays with the manifest 'pinned' needs.
    assert skopeo.list_tags(f"{mel.host}/ns/app") == ["1", "2", "3", "pinned"]
    assert skopeo.manifest_digest(f"{mel.host}/ns/app:pinned") == images["1"].digest
