"""The service's JSON log lines, from the real worker pool and job runner in-process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from ecr_ocir_sync.jobs.request import Action, SyncRequest
from ecr_ocir_sync.jobs.store import JobStore
from ecr_ocir_sync.observability.logs import configure_logging
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.service.runner import JobRunner
from ecr_ocir_sync.service.wiring import build_registries
from ecr_ocir_sync.service.workers import WorkerPool
from ecr_ocir_sync.settings import Settings
from tests.support.service import ACCOUNT, REGION, service_env

TOKEN = "ocir-token-never-logged"


class _CrashingPlacer:
    """A placer with a bug: every job attempt meets a KeyError, not a SyncError."""

    def destinations(self, repository: str, tag: str | None) -> dict[str, tuple[str, str]]:
        hosts: dict[str, str] = {}
        return {"mel": (hosts["mel"], repository)}

    def mirrors_deletes(self, repository: str, tag: str | None) -> bool:
        return True

    def referrers(self, repository: str, tag: str | None) -> bool:
        return True


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The service's logging set-up, writing into the returned buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("INFO", buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_crashed_job_attempt_logs_its_traceback(tmp_path, json_logs):
    environ = service_env("127.0.0.1:9", {"mel": "127.0.0.1:9"}, token=TOKEN)
    settings = Settings.from_environ({**environ, "SYNC_DATA_DIR": str(tmp_path)}).require_service()
    store = JobStore(tmp_path).open()
    metrics = Metrics()
    runner = JobRunner(settings, build_registries(settings), metrics, _CrashingPlacer())  # type: ignore[arg-type]
    pool = WorkerPool(store, runner, settings, metrics)
    request = SyncRequest(Action.PUSH, ACCOUNT, REGION, "team/app", "1.0", None, 100.0, None)
    job_id = (await store.submit(request)).job.id
    pool.start()
    try:
        for _ in range(500):
            if (await store.get(job_id)).last_error is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        await pool.drain(0)
        store.close()

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    crashed = [line for line in lines if line["message"] == "job attempt crashed"]
    assert crashed, "no 'job attempt crashed' line was logged"
    line = crashed[0]
    assert line["job_id"] == job_id
    assert line["level"] == "error"
    assert line["error_type"] == "KeyError"
    traceback = str(line["traceback"])
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in destinations" in traceback  # the frame that raised, in the placer
    assert traceback.rstrip().endswith("KeyError: 'mel'")
    assert TOKEN not in json.dumps(crashed)


def test_record_extras_outside_the_context_fields_stay_out_of_the_line(json_logs):
    logging.getLogger("ecr_ocir_sync.test").info(
        "pushed", extra={"repository": "team/app", "authorization": f"Bearer {TOKEN}"}
    )

    (line,) = [json.loads(text) for text in json_logs.getvalue().splitlines()]
    assert line["repository"] == "team/app"
    assert set(line) == {"time", "level", "logger", "message", "repository"}
