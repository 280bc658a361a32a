"""Reconciliation finds what events missed: ECR listings under moto, real registries."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess

import boto3
import pytest
from moto import mock_aws

from ecr_ocir_sync.cloud.ecr_api import EcrCatalog
from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.reconcile.loop import ReconcileLoop, apply_plans
from ecr_ocir_sync.reconcile.planner import Reconciler
from ecr_ocir_sync.rules.patterns import compile_glob
from ecr_ocir_sync.service.supervisor import Supervisor
from ecr_ocir_sync.service.wiring import build_placer
from ecr_ocir_sync.settings import Settings
from tests.conftest import make_registries
from tests.support import skopeo
from tests.support.ecr import ACCOUNT, REGION, FakeEcr
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.service import CLI, service_env


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("ecr", region_name=REGION)


@pytest.fixture
def ecr(aws, start_registry) -> FakeEcr:
    return FakeEcr(start_registry("ecr"), aws)


def settings_for(dest_open, **extra: str) -> Settings:
    environ = service_env("unused:5000", {"mel": dest_open.host}, **extra)
    return Settings.from_environ(environ).require_service()


@pytest.fixture
def settings(dest_open, tmp_path) -> Settings:
    return settings_for(dest_open, SYNC_DATA_DIR=str(tmp_path / "data"))


def put(server, repository: str, tag: str, image) -> None:
    pusher = Pusher(server.url)
    pusher.image(repository, tag, image)
    pusher.close()


async def plan_for(settings, dest_open, ecr, repositories: str = "**"):
    async with make_registries(dest_open.host, ecr.registry.host, logins={}) as registries:
        reconciler = Reconciler(EcrCatalog(ACCOUNT, REGION), registries, build_placer(settings))
        return await reconciler.plan(compile_glob(repositories))


async def test_a_missed_push_a_missed_delete_and_a_moved_tag_are_found(ecr, dest_open, settings):
    synced = build_image([layer_bytes(1_000, 300)])
    ecr.push("team/web", "1", synced)
    put(dest_open, "ns/team/web", "1", synced)
    missed = build_image([layer_bytes(1_000, 301)])
    ecr.push("team/web", "2", missed)
    moved_old, moved_new = (
        build_image([layer_bytes(1_000, 302)]),
        build_image([layer_bytes(1_000, 303)]),
    )
    put(dest_open, "ns/team/web", "latest", moved_old)
    ecr.push("team/web", "latest", moved_new)
    deleted = build_image([layer_bytes(1_000, 304)])
    put(dest_open, "ns/team/web", "old", deleted)

    plan = await plan_for(settings, dest_open, ecr)

    (repository,) = plan.repositories
    assert [(d.tag, d.source_digest) for d in repository.to_copy] == [("2", missed.digest)]
    assert [(d.tag, d.destination_digest, d.source_digest) for d in repository.to_update] == [
        ("latest", moved_old.digest, moved_new.digest)
    ]
    assert [(d.tag, d.destination_digest) for d in repository.to_delete] == [
        ("old", deleted.digest)
    ]
    assert repository.in_sync == 1
    assert plan.totals() == {
        "copy": 1,
        "update": 1,
        "delete": 1,
        "expire": 0,
        "in_sync": 1,
        "errors": 0,
    }


async def test_a_repository_missing_at_the_destination_is_copied_whole(ecr, dest_open, settings):
    ecr.push("fresh", "a", build_image([layer_bytes(1_000, 305)]))
    ecr.push("fresh", "b", build_image([layer_bytes(1_000, 306)]))

    plan = await plan_for(settings, dest_open, ecr)

    assert sorted(d.tag for d in plan.repositories[0].to_copy) == ["a", "b"]


async def test_a_repository_glob_means_what_it_means_in_rules(ecr, dest_open, settings):
    image = build_image([layer_bytes(1_000, 330)])
    for name in ("team/web", "team/web/cache", "other"):
        ecr.push(name, "1", image)

    one_segment = await plan_for(settings, dest_open, ecr, "team/*")
    any_depth = await plan_for(settings, dest_open, ecr, "team/**")

    assert [plan.repository for plan in one_segment.repositories] == ["team/web"]
    assert [plan.repository for plan in any_depth.repositories] == ["team/web", "team/web/cache"]


def test_a_repository_pattern_that_can_never_match_is_refused(tmp_path):
    done = subprocess.run(
        [CLI, "reconcile", "--dry-run", "--repository", "Team/*"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SYNC_DATA_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "--repository: pattern 'Team/*' has uppercase letters" in done.stderr
    assert "'*' and '?' stay within one path segment, '**' crosses '/'" in done.stderr


async def test_with_the_ignore_policy_nothing_is_planned_for_deletion(ecr, dest_open, tmp_path):
    ecr.push("app", "1", build_image([layer_bytes(1_000, 307)]))
    put(dest_open, "ns/app", "stale", build_image([layer_bytes(1_000, 308)]))
    ignoring = settings_for(dest_open, SYNC_DELETE_POLICY="ignore")

    plan = await plan_for(ignoring, dest_open, ecr)

    assert plan.totals()["delete"] == 0


async def test_applying_a_plan_enqueues_one_job_per_image_and_action(
    ecr, dest_open, settings, tmp_path
):
    ecr.push("app", "1", build_image([layer_bytes(1_000, 309)]))
    ecr.push("app", "2", build_image([layer_bytes(1_000, 310)]))
    put(dest_open, "ns/app", "gone", build_image([layer_bytes(1_000, 311)]))
    plan = await plan_for(settings, dest_open, ecr)
    store = JobStore(tmp_path / "store").open()
    try:
        created = await apply_plans([plan], store)
        again = await apply_plans([plan], store)  # the same drift twice: folded in
        jobs = await store.list()
    finally:
        store.close()

    assert (created, again) == (3, 0)
    assert sorted((job.action, job.tag) for job in jobs) == [
        ("DELETE", "gone"),
        ("PUSH", "1"),
        ("PUSH", "2"),
    ]


@pytest.fixture
def served_ecr(moto_server, start_registry) -> FakeEcr:
    """The fake ECR with its API on loopback, for the service and CLI processes."""
    api = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return FakeEcr(start_registry("ecr"), api)


def process_env(ecr: FakeEcr, mel, moto_server: str, **extra: str) -> dict[str, str]:
    return service_env(
        ecr.registry.host,
        {"mel": mel.host},
        AWS_ENDPOINT_URL_ECR=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        **extra,
    )


def test_the_periodic_pass_of_the_service_repairs_what_events_missed(
    served_ecr, moto_server, start_registry, start_service_process
):
    ecr = served_ecr
    mel = start_registry("mel")
    missed = build_image([layer_bytes(20_000, 320)])
    ecr.push("web", "1", missed)
    moved_old, moved_new = (
        build_image([layer_bytes(1_000, 321)]),
        build_image([layer_bytes(1_000, 322)]),
    )
    put(mel, "ns/web", "latest", moved_old)
    ecr.push("web", "latest", moved_new)
    put(mel, "ns/web", "removed", build_image([layer_bytes(1_000, 323)]))

    service = start_service_process(
        process_env(
            ecr,
            mel,
            moto_server,
            SYNC_RECONCILE_INTERVAL_SECONDS="3600",
            SYNC_RECONCILE_LEADER="true",
        )
    )

    def converged() -> bool:
        with service.client() as http:
            jobs = http.get("/jobs").json()["jobs"]
        return len(jobs) == 3 and all(job["state"] == "succeeded" for job in jobs)

    service.wait_until(converged, 60, "the reconciliation jobs to succeed")

    assert skopeo.manifest_digest(f"{mel.host}/ns/web:1") == missed.digest
    assert skopeo.manifest_digest(f"{mel.host}/ns/web:latest") == moved_new.digest
    assert not skopeo.exists(f"{mel.host}/ns/web:removed")
    metrics = service.metrics()
    assert 'ecr_ocir_sync_reconcile_drift{kind="copy"} 1.0' in metrics
    assert 'ecr_ocir_sync_reconcile_drift{kind="delete"} 1.0' in metrics
    assert "ecr_ocir_sync_reconcile_last_complete_timestamp_seconds 1." in metrics
    assert "ecr_ocir_sync_reconcile_interval_seconds 3600.0" in metrics


def test_the_dry_run_prints_the_plan_and_enqueues_nothing(
    served_ecr, moto_server, start_registry, tmp_path
):
    ecr = served_ecr
    mel = start_registry("mel")
    ecr.push("web", "1", build_image([layer_bytes(1_000, 324)]))
    env = {
        "PATH": "/usr/bin:/bin",
        "SYNC_DATA_DIR": str(tmp_path / "data"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **process_env(ecr, mel, moto_server),
    }

    done = subprocess.run(
        [CLI, "reconcile", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"ECR {ACCOUNT} {REGION}: 1 repositories, 1 to copy, 0 to update, 0 to delete" in (
        done.stdout
    )
    assert "  web: copy 1 (mel); 0 in sync" in done.stdout
    assert not (tmp_path / "data" / "jobs.sqlite3").exists()


async def test_the_mirrors_own_referrer_tags_are_never_drift(ecr, dest_open, settings):
    image = build_image([layer_bytes(1_000, 312)])
    ecr.push("signed", "1", image)
    put(dest_open, "ns/signed", "1", image)
    schema = "sha256-" + image.digest.removeprefix("sha256:")
    for tag in (schema, f"{schema}.sig", f"{schema}.att", f"{schema}.sbom"):
        put(dest_open, "ns/signed", tag, build_image([layer_bytes(500, 313)]))

    plan = await plan_for(settings, dest_open, ecr)

    assert plan.totals() == {
        "copy": 0,
        "update": 0,
        "delete": 0,
        "expire": 0,
        "in_sync": 1,
        "errors": 0,
    }


class PassesFailOnce(JobStore):
    """A real store whose first ``begin_pass`` fails as a locked database does."""

    failed = False

    async def begin_pass(self) -> int:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database is locked")
        return await super().begin_pass()


async def test_a_store_error_in_the_reconciliation_loop_is_counted_and_the_pass_runs_again(
    ecr, dest_open, tmp_path
):
    ecr.push("app", "1", build_image([layer_bytes(1_000, 314)]))
    settings = settings_for(
        dest_open, SYNC_RECONCILE_INTERVAL_SECONDS="3600", SYNC_RECONCILE_LEADER="true"
    )
    store = PassesFailOnce(tmp_path / "store").open()
    metrics = Metrics()
    async with make_registries(dest_open.host, ecr.registry.host, logins={}) as registries:
        loop = ReconcileLoop(
            settings,
            registries,
            build_placer(settings),
            store,
            metrics=metrics,
            wake_workers=lambda: None,
            start_task=Supervisor(metrics, lambda _failures: 0.05).start,
        )
        loop.start()
        try:
            for _ in range(400):  # bounded: the pass is in-process, there is no event to await
                last = await store.last_pass()
                if last is not None and last[1] is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            await loop.stop()
            jobs = await store.list()
            store.close()

    assert metrics.task_restarts.labels("reconcile")._value.get() == 1
    assert [(job.action, job.tag, job.origin) for job in jobs] == [("PUSH", "1", "reconcile")]
