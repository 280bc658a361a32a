"""The registries of a benchmark: one source, and fresh empty destinations per run.

Every registry is Debian's docker-registry on a free 127.0.0.1 port, plain
HTTP, storing under ``bench/.work``.  Destinations are stopped and their
storage deleted before the next run gets new ones, so nothing is ever found
already there (and disk stays free).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from pathlib import Path
from types import TracebackType

import httpx
from tests.support.registry import RegistryServer

from bench.measure import proc_cpu_seconds, proc_written_bytes

__all__ = ["Lab", "manifest_digest"]

_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def manifest_digest(server: RegistryServer, repository: str, reference: str) -> str | None:
    """The digest ``repository:reference`` resolves to at ``server``, or None."""
    response = httpx.head(
        f"{server.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": _ACCEPT},
        timeout=30,
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.headers.get("Docker-Content-Digest")


class Lab:
    """A source registry that lives for the whole benchmark, and disposable destinations."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source: RegistryServer | None = None
        self.destinations: list[RegistryServer] = []
        self._names = itertools.count(1)

    def __enter__(self) -> Lab:
        if self.root.exists():
            shutil.rmtree(self.root)  # left over from an interrupted run
        self.root.mkdir(parents=True)
        self.source = RegistryServer(self.root / "source").start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.drop_destinations()
        if self.source is not None:
            self.source.stop()
            self.source = None
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def src(self) -> RegistryServer:
        assert self.source is not None, "Lab used outside its with-block"
        return self.source

    def drop_destinations(self) -> None:
        """Stop every destination and delete its storage."""
        for server in self.destinations:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
        self.destinations = []

    def fresh_destinations(self, count: int) -> list[RegistryServer]:
        """``count`` new, empty registries (the previous ones are dropped first)."""
        self.drop_destinations()
        for _ in range(count):
            server = RegistryServer(self.root / f"dest-{next(self._names)}")
            self.destinations.append(server)
            server.start()
        return list(self.destinations)

    def servers(self) -> list[RegistryServer]:
        return [self.src, *self.destinations]

    def registry_cpu_seconds(self) -> float:
        """CPU every running registry has used so far (to subtract: what a run cost them)."""
        total = 0.0
        for server in self.servers():
            if server.process is not None:
                with contextlib.suppress(OSError):
                    total += proc_cpu_seconds(server.process.pid)
        return total

    def source_bytes_served(self) -> int:
        """Bytes the source registry has written so far: its answers, bodies included."""
        assert self.src.process is not None
        return proc_written_bytes(self.src.process.pid)
