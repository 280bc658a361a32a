"""Running the service under uvicorn, with a shutdown that loses nothing.

On SIGTERM (or SIGINT): readiness fails at once, no new job starts, running
jobs get ``SYNC_DRAIN_SECONDS``, then the HTTP server stops.  Intake keeps
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

from ecr_ocir_sync.observability.logs import configure_logging
from ecr_ocir_sync.service.app import create_app
from ecr_ocir_sync.service.wiring import Service
from ecr_ocir_sync.settings import ServiceSettings

__all__ = ["serve"]

log = logging.getLogger("ecr_ocir_sync.service.server")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Signals are ours (see serve): uvicorn must not exit before the drain."""
        yield


async def _serve(settings: ServiceSettings, host: str, port: int) -> None:
    service = Service(settings)
    await service.start()
    # Everything loaded so far lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stall the loop ~35 ms each (bench/intake).
    gc.freeze()
    config = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    draining: asyncio.Task[None] | None = None

    async def drain_then_exit() -> None:
        await service.drain()
        server.should_exit = True

    def on_signal(name: str) -> None:
        nonlocal draining
        if draining is None:
            log.info("%s received: draining", name)
            draining = asyncio.create_task(drain_then_exit())
        else:
            log.warning("%s received again: stopping now", name)
            server.force_exit = True
            server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum.name)
    log.info(
        "serving on %s:%d with %d worker(s), regions %s",
        host,
        port,
        settings.workers,
        ",".join(settings.region_keys),
    )
    try:
        await server.serve()
    finally:
        if draining is not None and not draining.done():
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
        await service.stop()
        log.info("stopped")


def serve(settings: ServiceSettings, host: str, port: int) -> None:
    configure_logging(settings.log_level)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, present with uvicorn[standard]
    except ImportError:
        asyncio.run(_serve(settings, host, port))
    else:
        uvloop.run(_serve(settings, host, port))
