"""Parts of the shaped-link benchmark: a registry in a namespace, a proxy that resets
one upload part-way, and a poller that notes when an image appears at a registry."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.registry import RegistryServer

from bench.netns import Link
from bench.registries import _ACCEPT

__all__ = ["NsRegistry", "PresencePoller", "ResetProxy"]

REGISTRY_PORT = 5000
_POLL_SECONDS = 0.05


@dataclass
class NsRegistry(RegistryServer):
    """docker-registry inside ``link``'s namespace, on its address, port 5000."""

    link: Link | None = None
    port: int = REGISTRY_PORT

    @property
    def address(self) -> str:
        assert self.link is not None
        return self.link.address

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> NsRegistry:
        assert self.link is not None
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self._config())
        import subprocess  # noqa: PLC0415 - only here: the one process this class starts

        with (self.root / "registry.log").open("wb") as log:
            # ip netns exec execs the registry: the pid is the registry's (for /proc/PID/io).
            self.process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.link.namespace,
                    "docker-registry",
                    "serve",
                    str(config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._await_ready()
        return self


def fresh_registry(root: Path, link: Link) -> NsRegistry:
    """A new, empty registry in ``link``'s namespace (its storage under ``root``)."""
    return NsRegistry(root, link=link).start()


@dataclass
class PresencePoller:
    """Polls each registry's manifest (HEAD, every 50 ms) on its own thread and keeps the
    monotonic time it first answered with ``digest``."""

    targets: dict[str, tuple[str, str]]  # name -> (registry base URL, manifest path)
    digest: str
    present: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PresencePoller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=5.0) as http:
            while not self._stop.is_set() and len(self.present) < len(self.targets):
                for name, (base, path) in self.targets.items():
                    if name in self.present:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        answer = http.head(base + path, headers={"Accept": _ACCEPT})
                        if answer.headers.get("Docker-Content-Digest") == self.digest:
                            self.present[name] = time.monotonic()
                self._stop.wait(_POLL_SECONDS)


class ResetProxy:
    """127.0.0.1:port (in the client namespace) → a registry, on its own thread.

    Counts every request byte it forwards (``forwarded``, over all connections) and
    resets — a TCP RST, not a close — the connection that carries byte ``cut_at``, once.
    """

    def __init__(self, upstream: str, upstream_port: int, cut_at: int) -> None:
        self.upstream = upstream
        self.upstream_port = upstream_port
        self.cut_at = cut_at
        self.forwarded = 0
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> ResetProxy:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError("reset proxy did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        writers = [client_w]
        try:
            up_r, up_w = await asyncio.open_connection(self.upstream, self.upstream_port)
            writers.append(up_w)
            pipes = {
                asyncio.create_task(self._pipe(client_r, up_w, counted=True)),
                asyncio.create_task(self._pipe(up_r, client_w, counted=False)),
            }
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pipes:
                    task.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        except OSError:
            pass
        finally:
            for writer in writers:
                writer.transport.abort()  # a reset on both sides

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, counted: bool
    ) -> None:
        while data := await reader.read(65536):
            if counted and self.cuts == 0 and self.forwarded + len(data) >= self.cut_at:
                keep = self.cut_at - self.forwarded
                writer.write(data[:keep])
                self.forwarded += keep
                self.cuts += 1
                return  # the caller aborts both sockets
            writer.write(data)
            await writer.drain()
            if counted:
                self.forwarded += len(data)
