"""The one place where httpx meets the error tree.

Every request to a registry goes through :func:`send`, which turns httpx's
exceptions into :mod:`ecr_ocir_sync.errors` classes, and every answer is
judged by :func:`raise_for_status`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from time import time
from typing import Protocol

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

# Over a rate-limited link a blob arrives a few tens of KiB per wake-up, and each
# wake-up costs a read, an h11 event, two timeout scopes and the engine's per-chunk
# work (a quarter of a shaped copy's CPU). SO_RCVLOWAT (Linux) has the kernel wake the
# reader only once this much is waiting. It is set for the body of a large blob only,
# back to 1 byte for the body's last 2 x this (so the end never waits for bytes that
# will not come, TLS records' overhead included) and when the body ends, whatever the
# outcome (the connection goes back to the pool for small answers).
_LOW_WATER = 256 * 1024


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
    low_water = _LowWater.of(response)
    try:
        async for chunk in response.aiter_raw():
            if low_water is not None:
                low_water.took(len(chunk))
            yield chunk
    except httpx.TimeoutException as exc:
        raise UnavailableError(f"{where}: timed out mid-body ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        raise UnavailableError(f"{where}: connection lost mid-body: {detail}") from exc
    finally:
        if low_water is not None:
            low_water.lower()


class _Socket(Protocol):
    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


class _LowWater:
    """SO_RCVLOWAT on a large body's socket while more than 2 x _LOW_WATER remain."""

    def __init__(self, sock: _Socket, remaining: int) -> None:
        self._socket: _Socket | None = sock
        self._remaining = remaining

    @classmethod
    def of(cls, response: httpx.Response) -> _LowWater | None:
        option = getattr(socket, "SO_RCVLOWAT", None)
        stream = response.extensions.get("network_stream")
        length = response.headers.get("Content-Length", "")
        if option is None or stream is None or not length.isdigit():
            return None
        if int(length) < 4 * _LOW_WATER:
            return None
        sock = stream.get_extra_info("socket")  # asyncio hands out a TransportSocket
        if not callable(getattr(sock, "setsockopt", None)):
            return None
        low_water = cls(sock, int(length))
        low_water._set(_LOW_WATER)
        return low_water

    def took(self, count: int) -> None:
        self._remaining -= count
        if self._remaining < 2 * _LOW_WATER:
            self.lower()

    def lower(self) -> None:
        """Back to the default: wake the reader for any byte."""
        self._set(1)
        self._socket = None

    def _set(self, value: int) -> None:
        if self._socket is None:
            return
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, value)
        except OSError:
            self._socket = None  # not this socket's option: read as before


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
