"""A real PostgreSQL server (Debian's ``postgresql`` package) in a temporary directory.

``initdb`` refuses to run as root, so when the suite runs as root the cluster
belongs to ``nobody``; its directory lives directly under the system temp dir
(pytest's own temp dirs are private to root). The server listens on a free
127.0.0.1 port and keeps its unix socket in the same directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port

_UNPRIVILEGED = "nobody"


def _binary(name: str) -> str:
    """``initdb``/``pg_ctl``/``postgres``: on PATH, else Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    versions = Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
    candidates = sorted(versions, key=lambda path: int(path.parts[-3]), reverse=True)
    if not candidates:
        raise FileNotFoundError(
            f"{name} not found: install Debian's postgresql package (make deps does)"
        )
    return str(candidates[0])


@dataclass
class PostgresServer:
    """One ``postgres`` process; :meth:`create_database` hands out empty databases."""

    durable: bool = False  # tests skip fsync; benchmarks keep it
    port: int = field(default_factory=free_port)
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def _owner(self) -> dict[str, object]:
        """Run as ``nobody`` when we are root (initdb refuses root), else as ourselves."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(_UNPRIVILEGED)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def start(self, timeout: float = 30) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="ecr-ocir-sync-pg-"))
        owner = self._owner()
        if owner:
            os.chown(self.root, owner["user"], owner["group"])  # type: ignore[arg-type]
        data = self.root / "data"
        subprocess.run(
            [
                _binary("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **owner,  # type: ignore[arg-type]
        )
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.root}",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        with (self.root / "postgres.log").open("wb") as log:
            self.process = subprocess.Popen(
                [_binary("postgres"), "-D", str(data), "-p", str(self.port), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                **owner,  # type: ignore[arg-type]
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg  # noqa: PLC0415 - only suites that use PostgreSQL need it

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited {self.process.returncode}: {self.log()}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def log(self) -> str:
        assert self.root is not None
        path = self.root / "postgres.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg  # noqa: PLC0415

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
