"""One RegistryClient per host, each over its own bounded connection pool.

Why per host: with one pool shared by every host, streams held open to one
registry could take every connection another registry's requests need, and a
transfer waiting on the other could never finish.  Per host, a pool holds
``connections`` connections; at most ``streams`` of them carry blob bodies
(see :class:`ConnectionLimits`), the rest stay free for the short requests
(HEAD, POST, PUT, token) that never wait on anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import httpx

from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.credentials import CredentialProvider
from ecr_ocir_sync.registry.retry import RetryPolicy
from ecr_ocir_sync.registry.transport import new_http_client

__all__ = ["ConnectionLimits", "Registries"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Connections per registry host and how long a request may wait for one."""

    per_host: int = 20
    pool_timeout: float = 60.0

    @property
    def streams(self) -> int:
        """Blob bodies in flight per host: four fifths of the pool, at least one."""
        return max(1, self.per_host - max(1, self.per_host // 5))


class Registries:
    """Hands out registry clients; plain HTTP only for hosts listed as insecure."""

    def __init__(
        self,
        credentials: CredentialProvider,
        *,
        insecure: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._credentials = credentials
        self._insecure = insecure
        self.retry = retry or RetryPolicy()
        self.limits = limits or ConnectionLimits()
        self._pools: dict[str, httpx.AsyncClient] = {}
        self._clients: dict[str, RegistryClient] = {}

    def client(self, host: str) -> RegistryClient:
        found = self._clients.get(host)
        if found is None:
            http = new_http_client(
                max_connections=self.limits.per_host, pool_timeout=self.limits.pool_timeout
            )
            self._pools[host] = http
            found = RegistryClient(
                host,
                http,
                self._credentials,
                insecure=host in self._insecure,
                retry=self.retry,
                streams=self.limits.streams,
            )
            self._clients[host] = found
        return found

    async def aclose(self) -> None:
        for http in self._pools.values():
            await http.aclose()

    async def __aenter__(self) -> Registries:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
