"""The real service process (``ecr-ocir-sync serve``) on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port

CLI = str(Path(sys.executable).parent / "ecr-ocir-sync")
API_KEY = "test-api-key-0123456789"  # a throwaway secret for a loopback service
ACCOUNT = "123456789012"
REGION = "ap-southeast-2"


def service_env(
    ecr_host: str,
    regions: Mapping[str, str],
    *,
    namespace: str = "ns",
    token: str = "ocir-token-test-only",
    **extra: str,
) -> dict[str, str]:
    """The service's settings for loopback registries: ``regions`` maps key → host."""
    return {
        "OCI_TENANCY": namespace,
        "OCI_USERNAME": "mirror",
        "OCI_AUTH_TOKEN": token,
        "OCI_REPO_REGION_KEY": ",".join(regions),
        "ECR_ENDPOINT": f"http://{ecr_host}",
        **{f"OCIR_ENDPOINT_{key.upper()}": f"http://{host}" for key, host in regions.items()},
        "SYNC_ALLOWED_ACCOUNTS": ACCOUNT,
        "SYNC_ALLOWED_REGIONS": REGION,
        "SYNC_API_KEY": API_KEY,
        # Short waits between attempts: failure paths stay quick, the behaviour is the same.
        "SYNC_RETRY_BASE_SECONDS": "0.2",
        "SYNC_REQUEST_RETRY_SECONDS": "0.02",
        "SYNC_REQUEST_ATTEMPTS": "2",
        **extra,
    }


def ecr_event(
    repository: str,
    tag: str | None,
    *,
    action: str = "PUSH",
    digest: str | None = None,
    time_text: str = "2026-11-28T01:54:34Z",
    result: str = "SUCCESS",
) -> dict[str, Any]:
    """A full EventBridge "ECR Image Action" event."""
    detail: dict[str, Any] = {
        "result": result,
        "repository-name": repository,
        "action-type": action,
    }
    if tag is not None:
        detail["image-tag"] = tag
    if digest is not None:
        detail["image-digest"] = digest
    return {
        "version": "0",
        "id": f"event-{time.monotonic_ns()}",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": time_text,
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


@dataclass
class ServiceProcess:
    """``ecr-ocir-sync serve`` with its environment; ``start`` waits for /readyz."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    ops_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    command: list[str] = field(default_factory=lambda: [CLI])  # what runs ``serve``

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """Health, readiness and metrics (SYNC_OPS_PORT)."""
        return f"http://127.0.0.1:{self.ops_port}"

    def start(self, timeout: float = 30) -> ServiceProcess:
        self.launch()
        self.wait_until(self._ready, timeout, "the service to become ready")
        return self

    def launch(self) -> ServiceProcess:
        """Start the process without waiting for it to be ready."""
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("OCI", "AWS", "SYNC"))
        }
        environment.update(
            {
                "SYNC_DATA_DIR": str(self.data_dir),
                # No periodic ECR listing unless a test asks for it, and never a lookup of
                # cloud instance metadata: nothing here may leave the machine.
                "SYNC_RECONCILE_INTERVAL_SECONDS": "0",
                "AWS_EC2_METADATA_DISABLED": "true",
                "SYNC_OPS_PORT": str(self.ops_port),
                **self.env,
            }
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"service-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.command, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"service exited {self.process.returncode}: {self.log()}")
        try:
            return httpx.get(f"{self.ops_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()[-5000:] if self.log_path else ""

    @staticmethod
    def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``condition`` until it returns something truthy (across processes, polling
        is the only way to await it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def client(self, key: str | None = API_KEY) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def post(self, payload: Any, key: str | None = API_KEY) -> httpx.Response:
        with self.client(key) as http:
            return http.post("/sync", json=payload)

    def job(self, job_id: str) -> dict[str, Any]:
        with self.client() as http:
            answer = http.get(f"/jobs/{job_id}")
            answer.raise_for_status()
            return dict(answer.json())

    def wait_for_job(self, job_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
        wanted = states or ("succeeded",)

        def finished() -> dict[str, Any] | None:
            job = self.job(job_id)
            if job["state"] in wanted:
                return job
            if job["state"] in ("succeeded", "failed", "superseded"):
                raise AssertionError(f"job ended {job['state']}, wanted {wanted}: {job}")
            return None

        return dict(self.wait_until(finished, timeout, f"job {job_id} to be {wanted}"))

    def metrics(self) -> str:
        return httpx.get(f"{self.ops_url}/metrics", timeout=10).text

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def exited(self, timeout: float = 60) -> int:
        """Wait for the process to end by itself; its exit status."""
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
