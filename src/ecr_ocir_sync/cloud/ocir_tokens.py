"""OCIR logins without a long-lived auth token: registry tokens exchanged with OCI IAM.

With ``OCI_REGISTRY_AUTH=token_exchange`` the registry password of a region is
a short-lived token that the region's Container Registry API issues
(``GET /20180419/docker/token``, the SDK's ``get_access_token``) to a request
signed as the configured OCI principal; the registry user is ``BEARER_TOKEN``.
A token is kept per region and renewed shortly before it expires, or at once
when the registry refuses it (:meth:`OcirTokenExchange.invalidate`).  Tokens
are never logged: only that one was obtained, for which region and how long.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ecr_ocir_sync.cloud.oci_signing import INSTALL_EXTRA, OciPrincipal, OciSigning, oci_sdk
from ecr_ocir_sync.errors import ProtocolError
from ecr_ocir_sync.registry.credentials import Credentials
from ecr_ocir_sync.settings import RegistryAuth, Settings

__all__ = ["TOKEN_USER", "OcirTokenExchange", "OcirTokenSettings"]

log = logging.getLogger("ecr_ocir_sync.cloud.ocir_tokens")

TOKEN_USER = "BEARER_TOKEN"  # noqa: S105 - OCIR's user for a registry-token password
_RENEW_AHEAD = 60.0  # renew this many seconds before expiry (at most half the lifetime)
_MISSING_SDK = (
    "OCI_REGISTRY_AUTH=token_exchange obtains registry tokens through the OCI SDK, which is "
    f"not installed: {INSTALL_EXTRA}, or log in with OCI_USERNAME / OCI_AUTH_TOKEN"
)


@dataclass(frozen=True, slots=True)
class OcirTokenSettings:
    principal: OciPrincipal
    # registry host → region key, for hosts that are not ``<key>.ocir.io`` (OCIR_ENDPOINT_<KEY>)
    hosts: Mapping[str, str] = field(default_factory=dict)
    # region key → the Container Registry API's URL (OCIR_TOKEN_ENDPOINT_<KEY>); default:
    # https://<the region's registry host>
    endpoints: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> OcirTokenSettings | None:
        """None unless ``OCI_REGISTRY_AUTH=token_exchange``."""
        if settings.registry_auth is not RegistryAuth.TOKEN_EXCHANGE:
            return None
        principal = OciPrincipal(
            settings.api_auth,
            settings.oci_config_file,
            settings.oci_config_profile,
            settings.api_regions,
        )
        hosts = {endpoint.host: key for key, endpoint in settings.ocir_endpoints.items()}
        return cls(principal, hosts, settings.token_endpoints)


@dataclass(frozen=True, slots=True)
class _Token:
    credentials: Credentials
    renew_at: float


class OcirTokenExchange:
    """A credential provider for OCIR hosts whose password is a token from OCI IAM."""

    def __init__(
        self,
        settings: OcirTokenSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.signing = OciSigning(settings.principal, missing=_MISSING_SDK)
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._clients: dict[str, Any] = {}
        self._build_lock = threading.Lock()

    def region_of(self, host: str) -> str | None:
        """The region key of registry ``host``; None when it is not an OCIR host."""
        if host in self.settings.hosts:
            return self.settings.hosts[host]
        if host.endswith(".ocir.io"):
            return host.removesuffix(".ocir.io").lower()
        return None

    async def credentials(self, host: str) -> Credentials | None:
        key = self.region_of(host)
        if key is None:
            return None
        token = self._tokens.get(key)
        if token is not None and self._clock() < token.renew_at:
            return token.credentials
        async with self._locks.setdefault(key, asyncio.Lock()):
            token = self._tokens.get(key)
            if token is None or self._clock() >= token.renew_at:
                token = await asyncio.to_thread(self._exchange, key, host)
                self._tokens[key] = token
            return token.credentials

    def invalidate(self, host: str) -> None:
        """The registry refused the token: the next request for ``host`` gets a new one."""
        key = self.region_of(host)
        if key is not None:
            self._tokens.pop(key, None)

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        with self._build_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.base_client.session.close()

    # -- in a worker thread ----------------------------------------------------

    def _exchange(self, key: str, host: str) -> _Token:
        client = self._client(key, host)
        failed = f"OCIR {key}: cannot obtain a registry token from OCI IAM"
        started = self._clock()
        try:
            answer = client.get_access_token()
        except Exception as exc:
            raise self.signing.error(exc, failed, lambda said: self._denied(failed, said)) from exc
        value = getattr(answer.data, "token", None) or getattr(answer.data, "access_token", None)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"{failed}: the answer holds no token")
        lifetime = float(answer.data.expires_in or 60)
        renew_in = max(lifetime / 2, lifetime - _RENEW_AHEAD)
        log.info("OCIR %s: obtained a registry token, valid for %.0f s", key, lifetime)
        return _Token(Credentials(TOKEN_USER, value), started + renew_in)

    def _client(self, key: str, host: str) -> Any:
        oci = oci_sdk(_MISSING_SDK)
        with self._build_lock:
            client = self._clients.get(key)
            if client is None:
                endpoint = self.settings.endpoints.get(key, f"https://{host}")
                factory = oci.container_registry.ContainerRegistryClient
                client = self.signing.client(factory, key, endpoint)
                self._clients[key] = client
            return client

    def _denied(self, failed: str, said: str) -> str:
        return (
            f"{failed}: {said}. The OCI identity may not use OCIR: add the IAM policy "
            f"'{self.signing.policy('manage repos', 'tenancy')}' (or per compartment)"
        )
