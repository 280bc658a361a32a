"""Reconciling a mirror that is already in sync, against ``skopeo sync`` over the same set.

``.venv/bin/python -m bench.reconcile [--repositories 200] [--tags 20] [--write]``

Sets up, on loopback: moto's ECR API (the listings), a registry standing in
for ECR holding REPOSITORIES x TAGS small images, and one OCIR region holding
exactly the same images under ``ns/`` (its storage is a copy of the source's).
Then, each from a cold process:

- ours: ``ecr-ocir-sync reconcile`` (not a dry run: it would enqueue jobs for
  any drift; here it finds none);
- skopeo: ``skopeo sync --src yaml --all`` of every repository into the region.

Requests are counted from the registries' access logs (and, for ours, the
ECR API calls it reports). Bounded: at most 1,000 repositories x 100 tags.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.ports import free_port
from tests.support.registry import RegistryServer

from bench.report import machine_lines, update_results_file

WORK = Path(__file__).resolve().parent / ".work" / "reconcile"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ACCOUNT, REGION, NAMESPACE = "123456789012", "ap-southeast-2", "ns"
CLI = str(Path(sys.executable).parent / "ecr-ocir-sync")


def populate(ecr: RegistryServer, api: object, repositories: int, tags: int) -> None:
    """REPOSITORIES x TAGS images (a shared layer, a config of their own) in ECR and its API."""
    layer = layer_bytes(512, 1)
    pusher = Pusher(ecr.url)
    try:
        for r in range(repositories):
            name = f"team/app-{r:04d}"
            api.create_repository(repositoryName=name)  # type: ignore[attr-defined]
            for t in range(tags):
                image = build_image([layer], label=f"{r}-{t}")
                pusher.image(name, f"1.{t}", image)
                api.put_image(  # type: ignore[attr-defined]
                    repositoryName=name,
                    imageManifest=image.manifest.decode(),
                    imageManifestMediaType=image.media_type,
                    imageTag=f"1.{t}",
                    imageDigest=image.digest,
                )
    finally:
        pusher.close()


def mirror_storage(ecr: RegistryServer, region: RegistryServer) -> None:
    """The region holds exactly what ECR holds, under ``ns/``: copy the storage."""
    source = ecr.storage / "docker/registry/v2"
    target = region.storage / "docker/registry/v2"
    shutil.copytree(source / "blobs", target / "blobs", dirs_exist_ok=True)
    shutil.copytree(
        source / "repositories", target / "repositories" / NAMESPACE, dirs_exist_ok=True
    )


def clear_skopeo_cache() -> None:
    for base in (Path("/var/lib/containers/cache"), Path.home() / ".local/share/containers/cache"):
        (base / "blob-info-cache-v1.boltdb").unlink(missing_ok=True)


def timed(
    command: list[str], env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr[-2000:]}")
    return elapsed, done


def run(repositories: int, tags: int) -> dict[str, float]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    api_url = f"http://{host}:{port}"
    ecr = RegistryServer(WORK / "ecr", access_log=True).start()
    region = RegistryServer(WORK / "mel", access_log=True)
    try:
        api = boto3.client(
            "ecr",
            region_name=REGION,
            endpoint_url=api_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        started = time.monotonic()
        populate(ecr, api, repositories, tags)
        region.root.mkdir(parents=True)
        mirror_storage(ecr, region)
        region.start()
        print(f"set up {repositories} x {tags} images in {time.monotonic() - started:.0f}s")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OCI", "SYNC_"))},
            "OCI_TENANCY": NAMESPACE,
            "OCI_USERNAME": "bench",
            "OCI_AUTH_TOKEN": "bench",
            "OCI_REPO_REGION_KEY": "mel",
            "OCIR_ENDPOINT_MEL": f"http://{region.host}",
            "ECR_ENDPOINT": f"http://{ecr.host}",
            "SYNC_ALLOWED_ACCOUNTS": ACCOUNT,
            "SYNC_ALLOWED_REGIONS": REGION,
            "SYNC_API_KEY": "bench-key-0123456789",
            "SYNC_DATA_DIR": str(WORK / "data"),
            "AWS_ENDPOINT_URL_ECR": api_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        before = (ecr.requests_logged(), region.requests_logged())
        ours_seconds, done = timed([CLI, "reconcile", "--json"], env)
        plan = json.loads(done.stdout[: done.stdout.rindex("]") + 1])[0]
        ours_ecr_registry = ecr.requests_logged() - before[0]
        ours_region = region.requests_logged() - before[1]
        totals = plan["totals"]
        if totals["copy"] or totals["update"] or totals["delete"] or totals["errors"]:
            raise SystemExit(f"the mirror was not in sync: {totals}")

        sync_file = WORK / "sync.yaml"
        names = "".join(f"    team/app-{r:04d}: []\n" for r in range(repositories))
        sync_file.write_text(f"{ecr.host}:\n  tls-verify: false\n  images:\n{names}")
        clear_skopeo_cache()
        before = (ecr.requests_logged(), region.requests_logged())
        skopeo_seconds, _ = timed(
            [
                "skopeo",
                "sync",
                "--all",
                "--src",
                "yaml",
                "--dest",
                "docker",
                "--dest-tls-verify=false",
                str(sync_file),
                f"{region.host}/{NAMESPACE}",
            ],
            env,
        )
        skopeo_ecr = ecr.requests_logged() - before[0]
        skopeo_region = region.requests_logged() - before[1]
    finally:
        region.stop()
        ecr.stop()
        moto.stop()
        shutil.rmtree(WORK, ignore_errors=True)
    return {
        "tags": repositories * tags,
        "repositories": repositories,
        "ours_seconds": ours_seconds,
        "ours_ecr_api": plan["ecr_requests"],
        "ours_ecr_registry": ours_ecr_registry,
        "ours_region": ours_region,
        "in_sync": totals["in_sync"],
        "skopeo_seconds": skopeo_seconds,
        "skopeo_ecr": skopeo_ecr,
        "skopeo_region": skopeo_region,
    }


def render(figures: dict[str, float], command: str, started: dt.datetime) -> str:
    f = figures
    ours_requests = f["ours_ecr_api"] + f["ours_ecr_registry"] + f["ours_region"]
    skopeo_requests = f["skopeo_ecr"] + f["skopeo_region"]
    per_repository = f["tags"] / f["repositories"]
    ours_row = (
        f"| ecr-ocir-sync reconcile | {f['ours_seconds']:.2f} | {f['ours_ecr_api']:.0f} "
        f"| {f['ours_ecr_registry']:.0f} | {f['ours_region']:.0f} | {ours_requests:.0f} |"
    )
    skopeo_row = (
        f"| skopeo sync --all | {f['skopeo_seconds']:.2f} | - | {f['skopeo_ecr']:.0f} "
        f"| {f['skopeo_region']:.0f} | {skopeo_requests:.0f} |"
    )
    ratio = (
        f"- ours / skopeo: time {f['ours_seconds'] / f['skopeo_seconds']:.2f}, requests "
        f"{ours_requests / skopeo_requests:.2f}; ours found {f['in_sync']:.0f} tags in sync "
        "and enqueued nothing, skopeo rewrote every manifest"
    )
    return "\n".join(
        [
            "## `reconcile`: a mirror already in sync",
            "",
            f"- command: `{command}`",
            f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
            *machine_lines(),
            (
                f"- set: {f['repositories']:.0f} repositories x {per_repository:.0f} tags, every "
                "one already in the region; ECR API served by moto on loopback"
            ),
            "- requests counted from each registry's access log, plus ours' ECR API calls",
            "",
            "| | seconds | ECR API | ECR registry | region | all requests |",
            "|---|--:|--:|--:|--:|--:|",
            ours_row,
            skopeo_row,
            "",
            ratio,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args(argv)
    if not (1 <= args.repositories <= 1000 and 1 <= args.tags <= 100):
        raise SystemExit("bench.reconcile: --repositories 1..1000, --tags 1..100")
    started = dt.datetime.now(dt.UTC)
    figures = run(args.repositories, args.tags)
    command = ".venv/bin/python -m bench.reconcile " + " ".join(argv or sys.argv[1:])
    section = render(figures, command.strip(), started)
    print(section)
    if args.write:
        update_results_file(RESULTS, "reconcile", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
