"""``make demo``: the service end to end on this machine, then everything stopped.

A local "ECR" and two local "OCIR regions" (the "syd" one demands a login,
as OCIR does) start on loopback ports; ``ecr-ocir-sync serve`` runs on its
SQLite store; a generated multi-platform image is pushed to "ECR"; the ECR
push event is posted to ``/sync``; the image arrives in both regions with
the same digest (skopeo says so); the job record and a few metrics are
shown; a second event for the same image sends nothing.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.support import skopeo
from tests.support.images import Pusher, build_image, build_index, layer_bytes
from tests.support.registry import RegistryServer
from tests.support.service import ServiceProcess, ecr_event, service_env

TOKEN = "demo-token-not-a-secret"  # noqa: S105 - a throwaway login for a loopback registry
SHOWN_METRICS = (
    "ecr_ocir_sync_events_total",
    "ecr_ocir_sync_jobs_total",
    "ecr_ocir_sync_source_bytes_total",
    "ecr_ocir_sync_destination_bytes_total",
    "ecr_ocir_sync_blobs_total",
)


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def post_and_wait(service: ServiceProcess, event: dict[str, object]) -> dict[str, object]:
    answer = service.post(event)
    print(f"POST /sync -> {answer.status_code} {answer.text}")
    answer.raise_for_status()
    return service.wait_for_job(answer.json()["job_id"], timeout=120)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ecr-ocir-sync-demo-"))
    ecr = RegistryServer(workdir / "ecr")
    mel = RegistryServer(workdir / "mel")
    syd = RegistryServer(workdir / "syd", username="demo/mirror", password=TOKEN)
    service: ServiceProcess | None = None
    try:
        for server in (ecr, mel, syd):
            server.start()
        banner(f'registries on loopback: "ECR" {ecr.host}, "mel" {mel.host}, "syd" {syd.host}')
        shared = layer_bytes(8 * 1024 * 1024, 1)
        index = build_index(
            [
                (build_image([shared, layer_bytes(6 * 1024 * 1024, 2)], oci=True), "amd64"),
                (build_image([shared, layer_bytes(6 * 1024 * 1024, 3)], oci=True), "arm64"),
            ]
        )
        pusher = Pusher(ecr.url)
        pusher.index("team/web", "1.0", index)
        pusher.close()
        print(f"pushed team/web:1.0 to ECR: 2 platforms sharing a base layer, {index.digest}")

        env = service_env(
            ecr.host, {"mel": mel.host, "syd": syd.host}, namespace="demo", token=TOKEN
        )
        service = ServiceProcess(workdir / "data", env).start()
        banner(f"ecr-ocir-sync serve on {service.url} (job store {workdir / 'data'})")

        banner("the ECR push event arrives (as EventBridge would send it)")
        job = post_and_wait(service, ecr_event("team/web", "1.0", digest=index.digest))
        print(
            json.dumps({k: job[k] for k in ("id", "state", "attempts", "destinations")}, indent=2)
        )

        banner("what landed, according to skopeo")
        for server, creds in ((mel, None), (syd, f"demo/mirror:{TOKEN}")):
            digest = skopeo.manifest_digest(f"{server.host}/demo/team/web:1.0", creds)
            same = "same digest as ECR" if digest == index.digest else "DIFFERENT DIGEST"
            print(f"{server.host}/demo/team/web:1.0  {digest}  ({same})")

        banner("the same event again: nothing is sent twice")
        again = post_and_wait(service, ecr_event("team/web", "1.0", digest=index.digest))
        for key, record in dict(again["destinations"]).items():  # type: ignore[call-overload]
            print(f"{key}: {record['bytes_sent']} bytes sent, {record['detail']}")

        banner("a few metrics from /metrics")
        for line in service.metrics().splitlines():
            if line.startswith(SHOWN_METRICS):
                print(line)
        banner("stopping: SIGTERM drains the service")
        print(f"service exited with status {service.terminate()}")
        return 0
    finally:
        if service is not None:
            service.stop()
        for server in (ecr, mel, syd):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
