"""SQS intake: EventBridge puts ECR events on a queue, the service takes them off.

One loop long-polls ``SYNC_SQS_QUEUE_URL``. Each message is handled as
``POST /sync`` handles a request: parsed, checked against the sync rules and
committed to the job store; only then is it deleted. A message whose commit
fails is left alone and becomes visible again after its visibility timeout
(``SYNC_SQS_VISIBILITY_SECONDS``), so nothing accepted by the queue is lost.
A message that can never become a job (not an ECR event, an account that is
not allowed) is not deleted either: after the queue's ``maxReceiveCount`` it
moves to the dead-letter queue, where an operator can read why.

A message is held only for the commit, never for a copy: SQS caps a
message's visibility at 12 h, and a large image to several regions can take
longer. The job store carries the work from there.

boto3 is synchronous; its calls run on one thread of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ecr_ocir_sync.jobs.backend import Store
from ecr_ocir_sync.jobs.model import SubmitResult
from ecr_ocir_sync.jobs.request import SyncRequest
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.service.events import IgnoredEvent
from ecr_ocir_sync.service.intake import RejectedError

__all__ = ["SqsIntake", "SqsSettings"]

log = logging.getLogger("ecr_ocir_sync.service.sqs")

_ERROR_PAUSE = 5.0  # after a failed receive, before the next one


@dataclass(frozen=True, slots=True)
class SqsSettings:
    queue_url: str
    wait_seconds: int = 20  # long poll
    visibility_seconds: int = 30  # a message not deleted comes back after this
    max_pending: int | None = None  # a full backlog leaves messages on the queue
    batch: int = 10

    def region_name(self) -> str | None:
        """``https://sqs.<region>.amazonaws.com/<account>/<name>`` names its region;
        otherwise boto3's own configuration (AWS_DEFAULT_REGION) decides."""
        host = self.queue_url.split("://", 1)[-1].split("/", 1)[0]
        parts = host.split(".")
        return parts[1] if len(parts) > 2 and parts[0] == "sqs" else None


Classify = Callable[[Any], SyncRequest | IgnoredEvent]  # raises RejectedError


class SqsIntake:
    """Receive → commit → delete, one message at a time, until stopped."""

    def __init__(
        self,
        settings: SqsSettings,
        store: Store,
        classify: Classify,
        *,
        metrics: Metrics,
        accepted: Callable[[SubmitResult], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._classify = classify
        self._metrics = metrics
        self._accepted = accepted
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqs")
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqs-intake")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A long poll in progress ends on its own within wait_seconds; nothing waits for it.
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, method: str, **arguments: Any) -> Any:
        def call() -> Any:
            if self._client is None:
                import boto3  # noqa: PLC0415 - lazy, like every AWS client here

                self._client = boto3.client("sqs", region_name=self._settings.region_name())
            return getattr(self._client, method)(**arguments)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _run(self) -> None:
        log.info("taking events from SQS queue %s", self._settings.queue_url)
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("receiving from SQS failed; trying again in %.0fs", _ERROR_PAUSE)
                await asyncio.sleep(_ERROR_PAUSE)

    async def poll_once(self) -> int:
        """One long poll; returns how many messages were committed and deleted."""
        answer = await self._call(
            "receive_message",
            QueueUrl=self._settings.queue_url,
            MaxNumberOfMessages=self._settings.batch,
            WaitTimeSeconds=self._settings.wait_seconds,
            VisibilityTimeout=self._settings.visibility_seconds,
        )
        done = 0
        for message in answer.get("Messages", []):
            if await self._handle(message):
                await self._call(
                    "delete_message",
                    QueueUrl=self._settings.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )
                done += 1
        return done

    async def _handle(self, message: dict[str, Any]) -> bool:
        """True when the message may be deleted: committed, or needing no work."""
        events = self._metrics.events
        message_id = message.get("MessageId")
        try:
            parsed = self._classify(json.loads(message.get("Body", "")))
        except (ValueError, RejectedError) as error:
            events.labels("rejected").inc()
            log.error(  # noqa: TRY400 - the reason is the message, a traceback would add nothing
                "SQS message %s is not an event this service can take (%s); it stays on "
                "the queue and moves to the dead-letter queue after its maxReceiveCount",
                message_id,
                error,
            )
            return False
        if isinstance(parsed, IgnoredEvent):
            events.labels("ignored").inc()
            log.info("SQS message %s ignored: %s", message_id, parsed.reason)
            return True
        return await self._commit(parsed, message_id)

    async def _commit(self, request: SyncRequest, message_id: str | None) -> bool:
        try:
            submitted = await self._store.submit(request, self._settings.max_pending)
        except Exception:
            self._metrics.events.labels("unavailable").inc()
            log.exception(
                "could not commit SQS message %s; it comes back after %ds",
                message_id,
                self._settings.visibility_seconds,
            )
            return False
        self._metrics.events.labels("coalesced" if submitted.coalesced else "accepted").inc()
        self._accepted(submitted)
        return True
