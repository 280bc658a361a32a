"""Real CNCF distribution registries (Debian's docker-registry) on loopback ports."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import httpx

from tests.support.ports import free_port

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@dataclass
class RegistryServer:
    """One registry process; ``host`` is ``127.0.0.1:PORT``, plain HTTP."""

    root: Path
    username: str | None = None
    password: str | None = None
    token_auth: dict[str, str] | None = None  # realm, service, issuer, rootcertbundle
    access_log: bool = False  # benchmarks count requests from it
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (tests corrupt them here)."""
        hexdigest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def _config(self) -> str:
        auth = ""
        if self.username is not None:
            assert self.password is not None
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (self.root / "htpasswd").write_text(f"{self.username}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {self.root / 'htpasswd'}\n"
        elif self.token_auth is not None:
            lines = "".join(f"    {key}: {value}\n" for key, value in self.token_auth.items())
            auth = f"auth:\n  token:\n{lines}"
        return (
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n"
            f"    disabled: {str(not self.access_log).lower()}\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: {self.host}\n"
            "  draintimeout: 1s\n"
            f"{auth}"
        )

    def start(self) -> RegistryServer:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self._config())
        with (self.root / "registry.log").open("wb") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        self._await_ready()
        return self

    def _await_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.root / "registry.log").read_text()
                raise RuntimeError(f"registry on {self.host} exited: {log[-2000:]}")
            try:
                status = httpx.get(f"{self.url}/v2/", timeout=1).status_code
            except httpx.TransportError:
                time.sleep(0.02)  # polling for a socket; there is no event to await
                continue
            if status in (200, 401):
                return
        raise RuntimeError(f"registry on {self.host} did not answer within {timeout}s")

    def requests_logged(self) -> int:
        """Requests in the access log so far (with ``access_log=True``)."""
        log = (self.root / "registry.log").read_text(errors="replace")
        return sum(
            1
            for line in log.splitlines()
            if '"HEAD /v2/' in line
            or '"GET /v2/' in line
            or '"PUT /v2/' in line
            or '"POST /v2/' in line
            or '"PATCH /v2/' in line
            or '"DELETE /v2/' in line
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
