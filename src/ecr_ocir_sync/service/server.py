"""Running the service under uvicorn, with a shutdown that loses nothing.

Two listeners share the process: the API port (``/sync``, ``/jobs``) and the
operations port (``SYNC_OPS_PORT``: health, readiness, metrics), each with the
same deadlines for slow clients and the same concurrency limit (see guard).

On SIGTERM (or SIGINT): readiness fails at once, no new job starts, running
jobs get ``SYNC_DRAIN_SECONDS``, then the HTTP servers stop.  Intake keeps
committing events during the drain; they run after the restart.  A second
signal stops immediately; unfinished jobs resume on restart either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from ecr_ocir_sync.observability.logs import configure_logging
from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.guard import BodyDeadline, header_deadline_protocol
from ecr_ocir_sync.service.ops import create_ops_app
from ecr_ocir_sync.service.wiring import Service
from ecr_ocir_sync.settings import Settings

__all__ = ["serve"]

log = logging.getLogger("ecr_ocir_sync.service.server")


class _Server(uvicorn.Server):
    # capture_signals is an internal of uvicorn.Server (no public switch turns its signal
    # handling off); tests/test_internals.py fails if uvicorn stops calling it.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Signals are ours (see serve): uvicorn must not exit before the drain."""
        yield


def _server(service: Service, app: ASGIApp, host: str, port: int) -> _Server:
    """One listener with the slow-client deadlines and the concurrency limit."""
    settings = service.settings
    cut = service.metrics.connections_cut
    guarded = BodyDeadline(
        app,
        settings.body_timeout_seconds,
        on_timeout=cut.labels("body").inc,
        on_disconnect=service.metrics.client_disconnects.inc,
    )
    config = uvicorn.Config(
        guarded,
        host=host,
        port=port,
        http=header_deadline_protocol(settings.header_timeout_seconds, cut.labels("header").inc),
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_concurrency,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    return _Server(config)


async def _serve(settings: Settings, host: str, port: int) -> None:
    service = Service(settings)
    await service.start()
    # Everything loaded so far lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stall the loop ~35 ms each (bench/intake).
    gc.freeze()
    servers = [_server(service, create_app(service), host, port)]
    if settings.ops_port:
        servers.append(_server(service, create_ops_app(service), host, settings.ops_port))
    loop = asyncio.get_running_loop()
    draining: asyncio.Task[None] | None = None

    async def drain_then_exit() -> None:
        await service.drain()
        for server in servers:
            server.should_exit = True

    def on_signal(name: str) -> None:
        nonlocal draining
        if draining is None:
            log.info("%s received: draining", name)
            draining = asyncio.create_task(drain_then_exit())
        else:
            log.warning("%s received again: stopping now", name)
            for server in servers:
                server.force_exit = True
                server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum.name)
    log.info(
        "serving on %s:%d (operations on %s) with %d worker(s), regions %s",
        host,
        port,
        settings.ops_port or "the same port",
        settings.workers,
        ",".join(settings.region_keys),
    )
    try:
        await _run(servers)
    finally:
        if draining is not None and not draining.done():
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
        await service.stop()
        log.info("stopped")


async def _run(servers: list[_Server]) -> None:
    """Serve on every listener; when one stops (or fails to start), stop the others."""
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)


def serve(settings: Settings, host: str, port: int) -> None:
    configure_logging(settings.log_level)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, present with uvicorn[standard]
    except ImportError:
        asyncio.run(_serve(settings, host, port))
    else:
        uvloop.run(_serve(settings, host, port))
