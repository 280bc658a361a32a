"""Proxies that misbehave on purpose: TCP relays (one drops a connection mid-response, one
is slow), an HTTP proxy that stalls or fails chosen requests, and an HTTP front that answers
chosen requests itself (a registry's refusal)."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Pipe = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bool], Awaitable[None]]


async def relay(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, upstream_port: int, pipe: Pipe
) -> None:
    """Connect to the upstream and run ``pipe`` both ways (``True`` = the response side)
    until either side ends; every socket is closed however it ends."""
    writers = [client_w]
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        writers.append(up_w)
        upward = asyncio.create_task(pipe(client_r, up_w, False))
        downward = asyncio.create_task(pipe(up_r, client_w, True))
        try:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upward, downward):
                task.cancel()
            await asyncio.gather(upward, downward, return_exceptions=True)
    except OSError:
        pass
    finally:
        for writer in writers:
            writer.transport.abort()


class CuttingProxy:
    """Forwards 127.0.0.1:port → upstream; resets the first connection whose response
    (or, with ``requests=True``, whose request) passes ``cut_after`` bytes."""

    def __init__(self, upstream_port: int, cut_after: int, *, requests: bool = False) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.requests = requests
        self.cuts = 0
        self._armed = True
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await relay(client_r, client_w, self.upstream_port, self._pipe)
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: bool
    ) -> None:
        cutting = response != self.requests
        sent = 0
        while data := await reader.read(65536):
            if cutting and self._armed and sent + len(data) > self.cut_after:
                writer.write(data[: self.cut_after - sent])
                await writer.drain()
                self._armed = False
                self.cuts += 1
                writer.transport.abort()  # a reset, not a clean close
                return
            writer.write(data)
            await writer.drain()
            sent += len(data)


class SlowProxy:
    """Forwards 127.0.0.1:port → upstream at a bounded rate, on its own thread.

    Makes a copy last long enough to interrupt it; ``forwarded`` counts the
    bytes sent back to clients so a test can wait until a copy is under way.
    """

    def __init__(self, upstream_port: int, bytes_per_second: int) -> None:
        self.upstream_port = upstream_port
        self.rate = bytes_per_second
        self.forwarded = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SlowProxy:
        self._thread.start()
        self._started.wait()
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

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
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await relay(client_r, client_w, self.upstream_port, self._pipe)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool
    ) -> None:
        chunk = 16384
        while data := await reader.read(chunk):
            writer.write(data)
            await writer.drain()
            if slow:
                self.forwarded += len(data)
                await asyncio.sleep(len(data) / self.rate)  # the throttle itself


class Fault:
    """What :class:`HttpFaultProxy` does to the ``nth`` request with ``method``."""

    def __init__(
        self, method: str, nth: int = 1, *, status: int | None = None, stall: bool = False
    ) -> None:
        self.method = method
        self.nth = nth
        self.status = status  # answer this (after swallowing the body) instead of forwarding
        self.stall = stall  # read nothing more, answer nothing, until released or stopped


class HttpFaultProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 that forwards one request per connection and
    misbehaves on the requests its faults name; it records every request line.

    A fault with ``status`` swallows the request body (the registry never sees
    the request) and answers that status; a ``stall`` fault stops reading after
    the request head and holds the connection until :meth:`release` or stop.
    """

    def __init__(self, upstream_port: int, *faults: Fault) -> None:
        self.upstream_port = upstream_port
        self.faults = list(faults)
        self.requests: list[str] = []  # "METHOD /path?query"
        self.heads: list[dict[str, str]] = []  # each request's headers, lowercase names
        self.released = asyncio.Event()
        self._seen: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def count(self, method: str) -> int:
        return sum(1 for line in self.requests if line.startswith(f"{method} "))

    def release(self) -> None:
        self.released.set()

    async def start(self) -> HttpFaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _fault_for(self, method: str) -> Fault | None:
        self._seen[method] = self._seen.get(method, 0) + 1
        for fault in self.faults:
            if fault.method == method and fault.nth == self._seen[method]:
                return fault
        return None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._one_request(client_r, client_w)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            client_w.transport.abort()

    async def _one_request(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        head = await client_r.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        self.requests.append(f"{method} {target}")
        headers = [
            line for line in lines[1:] if line and not line.lower().startswith("connection:")
        ]
        fields = [line.partition(":") for line in headers]
        self.heads.append({name.strip().lower(): value.strip() for name, _, value in fields})
        length = next(
            (int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")), 0
        )
        fault = self._fault_for(method)
        if fault is not None and fault.stall:
            await self.released.wait()
            return
        if fault is not None and fault.status is not None:
            await client_r.readexactly(length)
            client_w.write(
                f"HTTP/1.1 {fault.status} Injected\r\nContent-Length: 0\r\nRetry-After: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await client_w.drain()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            forwarded = "\r\n".join([lines[0], *headers, "Connection: close", "", ""])
            up_w.write(forwarded.encode("latin-1"))
            remaining = length
            while remaining:
                data = await client_r.read(min(remaining, 65536))
                if not data:
                    return
                up_w.write(data)
                await up_w.drain()
                remaining -= len(data)
            while data := await up_r.read(65536):
                client_w.write(data)
                await client_w.drain()
        finally:
            up_w.transport.abort()


# -- an HTTP front that refuses chosen requests ------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """The answer a :class:`RefusingFront` gives instead of forwarding."""

    status: int
    body: dict[str, object]
    reason: str = ""


Refuse = Callable[[str, str], Refusal | None]
"""(method, path) → the refusal to answer with, or None to forward the request."""


class RefusingFront:
    """An HTTP reverse proxy on 127.0.0.1 in front of a real registry, on its own threads.

    Every request is forwarded as it is (the ``Host`` header too, so the registry's
    ``Location`` URLs point back here) unless ``refuse`` returns a :class:`Refusal`
    for it; ``refused`` lists ``(method, path)`` of each request answered that way.
    """

    def __init__(self, upstream_port: int, refuse: Refuse) -> None:
        self.upstream_port = upstream_port
        self.refuse = refuse
        self.refused: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _front_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="refusing-front", daemon=True
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RefusingFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def _front_handler(front: RefusingFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            body = self._body()
            path = urlsplit(self.path).path
            refusal = front.refuse(self.command, path)
            if refusal is not None:
                front.refused.append((self.command, path))
                payload = json.dumps(refusal.body).encode()
                self.send_response(refusal.status, refusal.reason or None)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            upstream = http.client.HTTPConnection("127.0.0.1", front.upstream_port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
            finally:
                upstream.close()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_HEADERS:
                    self.send_header(name, value)
            length = answer.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
            """Quiet: tests read ``refused``."""

    return Handler
