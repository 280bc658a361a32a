"""A TCP proxy that drops one connection part-way through a response."""

from __future__ import annotations

import asyncio
import contextlib


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
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        upward = asyncio.create_task(self._pipe(client_r, up_w, cutting=False))
        downward = asyncio.create_task(self._pipe(up_r, client_w, cutting=True))
        self._tasks |= {upward, downward}
        await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
        for task in (upward, downward):
            task.cancel()
        for writer in (client_w, up_w):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._tasks -= {upward, downward}

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, cutting: bool
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
