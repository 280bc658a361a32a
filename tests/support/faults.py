"""TCP proxies that misbehave on purpose: one drops a connection mid-response, one is slow."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

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
    """Forwards 127.0.0.1:port → upstream; cuts the first response past ``cut_after`` bytes."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
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
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cutting: bool
    ) -> None:
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
