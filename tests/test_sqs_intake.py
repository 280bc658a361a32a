"""SQS intake against moto's server: committed, then deleted; never lost on a failed commit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.jobs.model import JobState, SubmitResult
from ecr_ocir_sync.jobs.request import SyncRequest
from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.service.intake import classify
from ecr_ocir_sync.service.sqs import SqsIntake, SqsSettings
from ecr_ocir_sync.service.wiring import build_placer
from ecr_ocir_sync.settings import Settings
from tests.support import skopeo
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.ports import free_port
from tests.support.service import ecr_event, service_env

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def sqs_endpoint(monkeypatch) -> Iterator[str]:
    """moto's server on a loopback port; this process's boto3 clients use it too."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    httpx.post(f"{url}/moto-api/reset")  # moto's state is per process, not per server
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    yield url
    server.stop()


@pytest.fixture
def sqs(sqs_endpoint: str) -> Any:
    return boto3.client("sqs", region_name="ap-southeast-2", endpoint_url=sqs_endpoint)


@pytest.fixture
def queue_url(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName="ecr-ocir-sync")["QueueUrl"])


def messages_left(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_an_event_from_the_queue_is_copied_and_its_message_deleted(
    start_registry, start_service_process, sqs, sqs_endpoint, queue_url, tmp_path
):
    ecr, mel = start_registry("ecr"), start_registry("mel")
    pusher = Pusher(ecr.url)
    digest = pusher.image("team/app", "1.0", build_image([layer_bytes(200_000, 400)]))
    pusher.close()
    env = service_env(
        ecr.host,
        {"mel": mel.host},
        SYNC_SQS_QUEUE_URL=queue_url,
        SYNC_SQS_WAIT_SECONDS="1",
        AWS_ENDPOINT_URL_SQS=sqs_endpoint,
        AWS_DEFAULT_REGION="ap-southeast-2",
        **AWS,
    )
    service = start_service_process(env, tmp_path / "pod")

    sqs.send_message(
        QueueUrl=queue_url, MessageBody=json.dumps(ecr_event("team/app", "1.0", digest=digest))
    )

    def copied() -> bool:
        with service.client() as http:
            jobs = http.get("/jobs").json()["jobs"]
        return bool(jobs) and jobs[0]["state"] == "succeeded"

    service.wait_until(copied, 60, "the queued event's job to succeed")
    assert skopeo.manifest_digest(f"{mel.host}/ns/team/app:1.0") == digest
    assert messages_left(sqs, queue_url) == 0


class _FailingOnce:
    """A real store whose first commit fails, as a database restart would make it."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.failures = 0

    async def submit(self, request: SyncRequest, max_pending: int | None = None) -> SubmitResult:
        if self.failures == 0:
            self.failures += 1
            raise ConnectionError("the database went away")
        return await self.store.submit(request, max_pending)


def _intake(store: Any, queue_url: str, settings: Settings) -> SqsIntake:
    return SqsIntake(
        SqsSettings(queue_url, wait_seconds=1, visibility_seconds=1),
        store,
        lambda payload: classify(payload, settings, build_placer(settings)),
        metrics=Metrics(),
        accepted=lambda _: None,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_environ(
        service_env("127.0.0.1:1", {"mel": "127.0.0.1:2"})
    ).require_service()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    opened = JobStore(tmp_path / "data").open()
    yield opened
    opened.close()


async def test_a_message_whose_commit_failed_comes_back_and_is_committed(
    sqs, queue_url, settings, store
):
    flaky = _FailingOnce(store)
    intake = _intake(flaky, queue_url, settings)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(ecr_event("app", "1")))

    assert await intake.poll_once() == 0  # received, not committed, so not deleted
    assert messages_left(sqs, queue_url) == 1
    deleted = 0
    for _ in range(10):  # each poll waits up to 1 s; the message is back after 1 s
        deleted += await intake.poll_once()
        if deleted:
            break
    await intake.stop()

    assert deleted == 1
    assert messages_left(sqs, queue_url) == 0
    assert [(job.tag, job.state) for job in await store.list()] == [("1", JobState.PENDING)]


async def test_a_message_that_is_not_an_event_stays_for_the_dead_letter_queue(
    sqs, queue_url, settings, store
):
    intake = _intake(store, queue_url, settings)
    sqs.send_message(QueueUrl=queue_url, MessageBody="this is not an ECR event")

    assert await intake.poll_once() == 0
    await intake.stop()

    assert messages_left(sqs, queue_url) == 1
    assert await store.list() == []


async def test_an_event_no_sync_is_needed_for_is_deleted(sqs, queue_url, settings, store):
    intake = _intake(store, queue_url, settings)
    failed_push = ecr_event("app", "1", result="FAILURE")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(failed_push))

    assert await intake.poll_once() == 1
    await intake.stop()

    assert messages_left(sqs, queue_url) == 0
    assert await store.list() == []


def test_the_service_refuses_a_queue_url_that_is_not_a_url() -> None:
    with pytest.raises(ConfigError, match="SYNC_SQS_QUEUE_URL"):
        Settings.from_environ(
            service_env("127.0.0.1:1", {"mel": "127.0.0.1:2"}, SYNC_SQS_QUEUE_URL="my-queue")
        ).require_service()
