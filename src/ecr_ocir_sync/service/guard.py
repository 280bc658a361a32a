"""Deadlines for slow clients: headers (at the protocol), bodies (an ASGI guard).

uvicorn cuts idle kept-alive connections (``timeout_keep_alive``) and caps
concurrency (``limit_concurrency``) itself, but has no deadline for a request's
headers (each trickled byte re-arms nothing, a silent new socket waits forever)
nor for its body.  The header deadline runs from the connection's start, or a
request's first byte, until its headers are complete; the body deadline from
then until the last body byte.  A client that misses either gets 408 and the
connection is closed.  A client that leaves mid-body is counted, not logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["BodyDeadline", "header_deadline_protocol"]

_TIMEOUT_TEXT = b"request not received in time; send it without pausing\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TIMEOUT_TEXT), _TIMEOUT_TEXT)
)


def header_deadline_protocol(seconds: float, on_cut: Callable[[], None]) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol with a deadline for each request's headers."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(seconds, self._cut)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _cut(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                on_cut()
                self.transport.write(_TIMEOUT_RESPONSE)
                self.transport.close()

    return HeaderDeadlineProtocol


class BodyDeadline:
    """ASGI guard: the request body must be complete within ``seconds`` of its headers."""

    def __init__(
        self,
        app: ASGIApp,
        seconds: float,
        *,
        on_timeout: Callable[[], None],
        on_disconnect: Callable[[], None],
    ) -> None:
        self.app = app
        self.seconds = seconds
        self.on_timeout = on_timeout
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_done = False
        timed_out = False

        async def guarded_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                body_done = timed_out = True
                self.on_timeout()
                # The app sees a client that left; the 408 below is what is sent.
                return {"type": "http.disconnect"}
            if message["type"] == "http.disconnect":
                body_done = True
                self.on_disconnect()
            elif not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            if not timed_out:
                await send(message)

        await self.app(scope, guarded_receive, guarded_send)
        if timed_out:
            await send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _TIMEOUT_TEXT})
