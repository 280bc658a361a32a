"""Tripwires for the library internals the project relies on (bench/internals.py says
what each buys). Each test fails when the library changes the internal, where the
patch would otherwise turn into a silent no-op."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpcore
import uvicorn

from ecr_ocir_sync.registry.transport import new_http_client
from ecr_ocir_sync.service.server import _Server

MIB = 1024 * 1024


def test_importing_httpx_after_the_package_leaves_httpx_s_command_line_unloaded():
    code = (
        "import sys, ecr_ocir_sync, httpx; "
        "assert httpx.main is sys.modules['httpx._main'].main, 'httpx no longer binds main'; "
        "print(' '.join(m for m in ('click', 'pygments') if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


class _RecordingStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream, sizes: list[int]) -> None:
        self._stream = stream
        self._sizes = sizes

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._sizes.append(max_bytes)
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, noting the size of every socket read asked for."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(*args, **kwargs)  # type: ignore[arg-type]
        return _RecordingStream(stream, self.sizes)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _serve_body(size: int) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"\0" * size)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def test_http11_connections_read_the_socket_one_mib_at_a_time():
    await new_http_client().aclose()  # sets the read size, as every client does
    server = await _serve_body(4 * MIB)
    port = server.sockets[0].getsockname()[1]
    backend = _RecordingBackend()
    try:
        async with httpcore.AsyncConnectionPool(network_backend=backend) as pool:
            response = await pool.request("GET", f"http://127.0.0.1:{port}/")
    finally:
        server.close()

    assert len(response.content) == 4 * MIB
    assert set(backend.sizes) == {MIB}


@contextlib.contextmanager
def _sigterm_handler_kept() -> Iterator[object]:
    before = signal.getsignal(signal.SIGTERM)
    yield before
    signal.signal(signal.SIGTERM, before)


async def _nothing(scope: object, receive: object, send: object) -> None:
    return None


async def test_the_server_leaves_sigterm_to_the_service_while_it_runs():
    class Probe(_Server):
        entered = False

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            Probe.entered = True
            with super().capture_signals():
                yield

    config = uvicorn.Config(_nothing, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = Probe(config)
    with _sigterm_handler_kept() as before:
        serving = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        during = signal.getsignal(signal.SIGTERM)
        server.should_exit = True
        await asyncio.wait_for(serving, 10)

    assert Probe.entered, "uvicorn no longer calls Server.capture_signals: see service/server.py"
    assert server.started
    assert during is before
