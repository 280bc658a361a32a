"""The one place where httpx meets the error tree.

Every request to a registry goes through :func:`send`, which turns httpx's
exceptions into :mod:`ecr_ocir_sync.errors` classes, and every answer is
judged by :func:`raise_for_status`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from time import time

import httpcore
import httpx

from ecr_ocir_sync.errors import (
    AuthError,
    NotFoundError,
    ProtocolError,
    QuotaExceededError,
    RateLimitedError,
    RegistryError,
    UnavailableError,
)
from ecr_ocir_sync.registry.quota import advice, quota_limit

__all__ = ["iter_body", "new_http_client", "raise_for_status", "retry_after_seconds", "send"]

# A read or write that moves nothing for 120 s fails; a transfer that merely waits (for
# bytes another stream has not fetched yet) is judged by the engine's no-progress watchdog.
_CONNECT, _READ, _WRITE = 15.0, 120.0, 120.0


# httpcore reads sockets 64 KiB at a time; every read costs two timeout scopes,
# an h11 event and, in the engine, a queue hop and a send per destination.
# Reading up to 1 MiB cuts the copy's CPU (bench/internals.py, bench/RESULTS.md).
# READ_NUM_BYTES is an httpcore internal with no public switch, so it is set on
# the class: process-wide, for every HTTP/1.1 connection (only this client's:
# boto3 and the OCI SDK speak through urllib3). tests/test_internals.py fails
# when httpcore stops reading it; pyproject.toml bounds httpcore below 1.1.
_READ_BYTES = 1024 * 1024


class _LazyTransport(httpx.AsyncBaseTransport):
    """Builds its transport on first use: a TLS context loads the CA bundle (tens of
    milliseconds), which a run that only speaks plain HTTP never needs."""

    def __init__(self, *, verify: bool, limits: httpx.Limits) -> None:
        self._verify = verify
        self._limits = limits
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


def new_http_client(*, max_connections: int = 20, pool_timeout: float = 60.0) -> httpx.AsyncClient:
    """One host's connection pool. Redirects are followed by hand (see client).

    Waiting for a free connection is bounded by ``pool_timeout`` (a retryable
    failure), so no request can wait for ever on a pool that never frees up.
    """
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = _READ_BYTES
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=_CONNECT, read=_READ, write=_WRITE, pool=pool_timeout),
        follow_redirects=False,
        transport=_LazyTransport(verify=True, limits=limits),
        # Plain HTTP goes only to hosts marked insecure; it needs no CA bundle.
        mounts={"http://": _LazyTransport(verify=False, limits=limits)},
        headers={"User-Agent": "ecr-ocir-sync"},
        trust_env=False,
    )


async def send(
    http: httpx.AsyncClient, request: httpx.Request, *, where: str, stream: bool = False
) -> httpx.Response:
    """Send ``request``; connection-level failures become retryable errors."""
    try:
        return await http.send(request, stream=stream)
    except httpx.TimeoutException as exc:
        raise UnavailableError(f"{where}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        raise UnavailableError(f"{where}: {detail}") from exc


async def iter_body(response: httpx.Response, where: str) -> AsyncIterator[bytes]:
    """The raw body of a streamed response; a connection lost midway is retryable."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TimeoutException as exc:
        raise UnavailableError(f"{where}: timed out mid-body ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        raise UnavailableError(f"{where}: connection lost mid-body: {detail}") from exc


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds, whether given as a number or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def _registry_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a distribution error body's first error, or of an OCI error
    document (``{"code": …, "message": …}``); empty strings when there is neither."""
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, httpx.ResponseNotRead):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else body
    if not isinstance(first, dict):
        return "", ""
    return str(first.get("code") or ""), str(first.get("message") or "")


def raise_for_status(response: httpx.Response, where: str, *expected: int) -> None:
    """Raise the error class that ``response``'s status means unless it is ``expected``."""
    status = response.status_code
    if status in expected:
        return
    code, message = _registry_error(response)
    detail = f" ({code}: {message})" if code or message else ""
    text = f"{where}: {status} {response.reason_phrase}{detail}"
    limit = quota_limit(status, code, message)
    if limit is not None:
        raise QuotaExceededError(f"{text}; {advice(limit)}", limit=limit, status=status)
    error: type[RegistryError]
    if status in (401, 403):
        error = AuthError
        text += "; check the credentials for this registry and their permissions"
    elif status == 404:
        error = NotFoundError
    elif status == 429:
        error = RateLimitedError
    elif status >= 500 or status == 408:
        error = UnavailableError
    else:
        error = ProtocolError
    raise error(text, status=status, retry_after=retry_after_seconds(response))
