"""One RegistryClient per host over one shared connection pool."""

from __future__ import annotations

from types import TracebackType

from ecr_ocir_sync.registry.client import RegistryClient
from ecr_ocir_sync.registry.credentials import CredentialProvider
from ecr_ocir_sync.registry.retry import RetryPolicy
from ecr_ocir_sync.registry.transport import new_http_client

__all__ = ["Registries"]


class Registries:
    """Hands out registry clients; plain HTTP only for hosts listed as insecure."""

    def __init__(
        self,
        credentials: CredentialProvider,
        *,
        insecure: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
    ) -> None:
        self._credentials = credentials
        self._insecure = insecure
        self.retry = retry or RetryPolicy()
        self._http = new_http_client()
        self._clients: dict[str, RegistryClient] = {}

    def client(self, host: str) -> RegistryClient:
        found = self._clients.get(host)
        if found is None:
            found = RegistryClient(
                host,
                self._http,
                self._credentials,
                insecure=host in self._insecure,
                retry=self.retry,
            )
            self._clients[host] = found
        return found

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Registries:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
