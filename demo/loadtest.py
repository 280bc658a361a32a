"""``make loadtest``: a bounded load run against the demo set-up, all on loopback.

Starts a local "ECR", two local "OCIR regions" and the service; pushes
IMAGES small images to "ECR"; fires EVENTS push events at ``/sync`` from
CONCURRENCY clients (each image's event repeated, as EventBridge retries and
duplicates do); reports the accepted rate and latency percentiles; then
waits until every image is present in both regions and reports how long
that took.  Bounded in events (at most 20,000) and time (at most 300 s).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.registry import RegistryServer
from tests.support.service import API_KEY, ServiceProcess, ecr_event, service_env

MAX_EVENTS, MAX_SECONDS = 20_000, 300.0
ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def fire(url: str, events: list[dict[str, object]], concurrency: int) -> list[float]:
    """POST every event; returns each accepted one's latency. Stops at MAX_SECONDS."""
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    latencies: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": API_KEY}, limits=limits
    ) as http:

        async def client() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                event = queue.get_nowait()
                started = time.perf_counter()
                answer = await http.post("/sync", json=event)
                if answer.status_code == 202:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


def all_present(regions: list[RegistryServer], repositories: list[str]) -> bool:
    with httpx.Client(timeout=10) as http:
        return all(
            http.head(
                f"{server.url}/v2/demo/{name}/manifests/1", headers={"Accept": ACCEPT}
            ).status_code
            == 200
            for server in regions
            for name in repositories
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.loadtest", description=__doc__)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    if not (1 <= args.images <= 500 and args.images <= args.events <= MAX_EVENTS):
        raise SystemExit(f"loadtest: 1..500 images, images..{MAX_EVENTS} events")
    workdir = Path(tempfile.mkdtemp(prefix="ecr-ocir-sync-load-"))
    ecr, mel, syd = (RegistryServer(workdir / name) for name in ("ecr", "mel", "syd"))
    service: ServiceProcess | None = None
    try:
        for server in (ecr, mel, syd):
            server.start()
        pusher = Pusher(ecr.url)
        names = [f"load/app-{index:03d}" for index in range(args.images)]
        digests = [
            pusher.image(name, "1", build_image([layer_bytes(64 * 1024, index)]))
            for index, name in enumerate(names)
        ]
        pusher.close()
        env = service_env(ecr.host, {"mel": mel.host, "syd": syd.host}, namespace="demo")
        service = ServiceProcess(workdir / "data", {**env, "SYNC_LOG_LEVEL": "WARNING"}).start()
        events = [
            ecr_event(names[i % args.images], "1", digest=digests[i % args.images])
            for i in range(args.events)
        ]
        print(
            f"{args.images} images in ECR; firing {len(events)} events, {args.concurrency} at once"
        )
        started = time.monotonic()
        latencies = asyncio.run(fire(service.url, events, args.concurrency))
        firing = time.monotonic() - started
        service.wait_until(lambda: all_present([mel, syd], names), MAX_SECONDS, "every image")
        present = time.monotonic() - started
        p50, p90, p99 = (percentile(latencies, share) * 1000 for share in (0.5, 0.9, 0.99))
        print(
            f"accepted {len(latencies)} of {len(events)} events in {firing:.2f}s "
            f"({len(latencies) / firing:.0f}/s); latency p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
            f"p99 {p99:.1f} ms"
        )
        print(f"every image present in both regions {present:.2f}s after the first event")
        return 0 if len(latencies) == len(events) else 1
    finally:
        if service is not None:
            service.stop()
        for server in (ecr, mel, syd):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
