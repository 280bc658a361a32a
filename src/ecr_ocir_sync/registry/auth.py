"""Answering registry auth challenges: Basic, and Bearer tokens cached per scope.

The first request to a host goes out bare; a 401 names the scheme.  From then
on the right header is sent up front, so each later request costs one round
trip.  Tokens are kept per scope until shortly before they expire.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ecr_ocir_sync.errors import AuthError, ProtocolError
from ecr_ocir_sync.registry.credentials import CredentialProvider, Credentials
from ecr_ocir_sync.registry.transport import raise_for_status, send

__all__ = ["Authenticator", "Challenge", "parse_challenge"]

_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_TOKEN_SLACK = 10.0  # renew this many seconds before a token's stated expiry


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (or ``Basic realm="…"``)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match[1].lower(): (match[2] if match[2] is not None else match[3]).replace('\\"', '"')
        for match in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Auth state for one registry host."""

    def __init__(
        self,
        host: str,
        provider: CredentialProvider,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self._provider = provider
        self._http = http
        self._clock = clock
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = asyncio.Lock()

    async def header(self, scope: str) -> str | None:
        """The Authorization header to send up front for ``scope``, if one is known."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = await self._provider.credentials(self.host)
            return creds.basic_header() if creds else None
        token = self._tokens.get(scope)
        if token is not None and self._clock() < token.expires_at:
            return f"Bearer {token.value}"
        return await self._fetch_token(scope)

    async def answer(self, response: httpx.Response, scope: str, where: str) -> str:
        """Header to retry with after ``response`` (a 401); raise when there is none."""
        header = response.headers.get("WWW-Authenticate", "")
        challenge = parse_challenge(header) if header else Challenge("basic")
        self._challenge = challenge
        if "Authorization" in response.request.headers:
            # Credentials that worked before were refused: let the provider renew them.
            self._provider.invalidate(self.host)
            self._tokens.pop(scope, None)
        if challenge.scheme == "basic":
            creds = await self._provider.credentials(self.host)
            if creds is None:
                raise AuthError(
                    f"{where}: {self.host} requires a login and none is configured; "
                    "pass --authfile or set the registry's credentials",
                    status=401,
                )
            return creds.basic_header()
        if challenge.scheme == "bearer":
            return await self._fetch_token(scope, challenge.params.get("scope"))
        raise ProtocolError(f"{where}: unsupported auth scheme {challenge.scheme!r}")

    async def _fetch_token(self, scope: str, challenged_scope: str | None = None) -> str:
        async with self._lock:
            cached = self._tokens.get(scope)
            if cached is not None and self._clock() < cached.expires_at:
                return f"Bearer {cached.value}"
            challenge = self._challenge
            assert challenge is not None
            realm = challenge.params.get("realm")
            if not realm:
                raise ProtocolError(f"{self.host}: bearer challenge without a realm")
            scopes = scope.split(" ")
            if challenged_scope:
                scopes += [s for s in challenged_scope.split(" ") if s not in scopes]
            params: list[tuple[str, str | int | float | bool | None]] = [
                ("scope", s) for s in scopes if s
            ]
            if "service" in challenge.params:
                params.insert(0, ("service", challenge.params["service"]))
            where = f"getting a token for {self.host} ({scope}) from {realm}"
            response = await self._request_token(realm, params, where)
            raise_for_status(response, where, 200)
            try:
                body = response.json()
                value = body.get("token") or body.get("access_token")
                lifetime = float(body.get("expires_in") or 60)
            except (ValueError, AttributeError, TypeError):
                raise ProtocolError(f"{where}: the answer is not a token document") from None
            if not isinstance(value, str) or not value:
                raise ProtocolError(f"{where}: the answer holds no token")
            expires = self._clock() + max(lifetime - _TOKEN_SLACK, lifetime / 2)
            self._tokens[scope] = _Token(value, expires)
            return f"Bearer {value}"

    async def _request_token(
        self, realm: str, params: list[tuple[str, str | int | float | bool | None]], where: str
    ) -> httpx.Response:
        """The token server's answer; a refused login is renewed by the provider once."""
        creds = await self._provider.credentials(self.host)
        response = await self._send_token_request(realm, params, creds, where)
        if response.status_code == 401 and creds is not None:
            # The login expired or was revoked (a short-lived registry token, say): ask
            # the provider for a new one; static credentials come back the same.
            self._provider.invalidate(self.host)
            renewed = await self._provider.credentials(self.host)
            if renewed is not None and renewed != creds:
                response = await self._send_token_request(realm, params, renewed, where)
        return response

    async def _send_token_request(
        self,
        realm: str,
        params: list[tuple[str, str | int | float | bool | None]],
        creds: Credentials | None,
        where: str,
    ) -> httpx.Response:
        headers = {"Authorization": creds.basic_header()} if creds else {}
        request = self._http.build_request("GET", realm, params=params, headers=headers)
        return await send(self._http, request, where=where)
