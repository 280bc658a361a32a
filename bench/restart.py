"""kill -9 of the service mid-copy, then a restart: ``sudo .venv/bin/python -m bench.restart``.

The real service (``ecr-ocir-sync serve``, one process, its job store and spool
under one SYNC_DATA_DIR) copies one generated single-layer image (8 GiB by
default, ``--size``) from a source registry ("ECR") to two region registries
("mel", "syd"), each registry in its own network namespace behind a
tbf-shaped link (bench/netns.py).  The copy starts from an EventBridge ECR
PUSH event posted to ``POST /sync``.  When the source registry has sent 70 %
of the image (its ``/proc/PID/io`` wchar, so every byte the service read is
counted, whichever process read it), the service is killed with SIGKILL, as a
node failure would; a new process is started on the same SYNC_DATA_DIR and
the job is awaited until it ends ``succeeded``.  Then skopeo reads each
region's manifest digest.

Measured: bytes the source sent across both processes / image size; each
process's peak RSS (``VmHWM`` from /proc, read right before it is killed or
stopped); the spool directory's disk use (allocated blocks, as ``du``
counts, every 0.5 s) against SYNC_SPOOL_MAX_BYTES (set explicitly to the
image size + 1 GiB); what is left in the spool when the job has ended.

Links: 1000 Mbit/s each.  What is measured here is bytes, memory and disk, which
do not depend on the rate; the rate only bounds how long a pass takes.  At 1000
Mbit/s one pass of 8 GiB takes ~70 s, about the pace this 2-core machine
copies to two regions on loopback anyway (CPU-bound), so the links stay the
limit without making the run long (1 to 2 minutes a pass, 3 to 5 in all).  The
image is pushed with the source's link opened up (set-up, not measured).

skopeo is not run: it has no resume, so the original service (skopeo to each
region in turn, the job run again after the node failure) reads the image
again from byte 0 for every region the restarted job copies; the report says
so in words rather than moving 8 GiB twice more.

Needs root (namespaces, tc) and disk for the source, both regions (their
abandoned upload sessions included) and the spool: about 5 x the image.
Everything it creates (namespaces, processes, bench/.work/restart) is removed
when it ends, on error and on Ctrl-C too.  --write puts the report into
bench/RESULTS.md (its ``restart`` section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from tests.support.service import ServiceProcess, ecr_event, service_env

from bench.images import GIB, MIB, ImageSpec, PushedImage, push_image
from bench.measure import proc_written_bytes
from bench.netns import ShapedNet, require_root
from bench.report import machine_lines, update_results_file
from bench.restart_parts import SpoolSampler, peak_rss_kib, spool_files
from bench.restart_report import Outcome, ProcessFigures, render
from bench.scenarios import child_env
from bench.shaped_parts import NsRegistry

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "restart"
RESULTS = BENCH_DIR / "RESULTS.md"
RATE = 1000.0
KILL_AT = 0.70
NAMESPACE = "ns"
_PUSH_RATE = 10_000.0
_POLL = 0.05
_ENDED = ("succeeded", "failed", "superseded")
_SIZE = re.compile(r"^(\d+)([MG])$")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    found = _SIZE.match(text.upper())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size such as 512M or 8G")
    return int(found.group(1)) * (MIB if found.group(2) == "M" else GIB)


def _deadline(size: int) -> float:
    # Generous: at least 10 MB/s, whatever else the machine is doing.
    return 300.0 + size / 10_000_000


_COUNTERS = re.compile(
    r"^ecr_ocir_sync_(source_bytes|spool_reused_bytes|source_resumes|destination_bytes"
    r'|upload_resumes)_total(?:\{destination="([^"]*)"\})? (\S+)$',
    re.MULTILINE,
)


def _counters(service: ServiceProcess) -> dict[str, int] | None:
    """The service's own byte and resume counters, ``name`` or ``name/destination`` ->
    value (None if it does not answer)."""
    try:
        text = httpx.get(f"{service.ops_url}/metrics", timeout=2, trust_env=False).text
    except httpx.HTTPError:
        return None
    return {
        name + (f"/{where}" if where else ""): int(float(value))
        for name, where, value in _COUNTERS.findall(text)
    }


def skopeo_digest(host: str, repository: str, tag: str) -> str:
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repository}:{tag}"],
        capture_output=True,
        check=False,
        timeout=120,
        env=child_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"skopeo inspect {host}/{repository}:{tag}: {done.stderr.decode()}")
    return "sha256:" + hashlib.sha256(done.stdout).hexdigest()


@dataclass
class Lab:
    """The source, the two regions and the service's settings."""

    net: ShapedNet
    source: NsRegistry
    regions: dict[str, NsRegistry]
    data_dir: Path
    budget: int

    def service(self) -> ServiceProcess:
        env = service_env(
            self.source.host,
            {name: server.host for name, server in self.regions.items()},
            namespace=NAMESPACE,
            SYNC_SPOOL_MAX_BYTES=str(self.budget),
            NO_PROXY="127.0.0.1,localhost,10.250.0.0/16",
        )
        return ServiceProcess(self.data_dir, env)

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"


@dataclass(frozen=True, slots=True)
class Killed:
    """The first process, up to its kill."""

    job_id: str
    sent_before: int  # the source's wchar before the POST
    seconds: float  # from the POST to the kill
    sent_at_kill: int
    spool_at_kill: int
    figures: ProcessFigures


def _first_process(lab: Lab, image: PushedImage, sampler: SpoolSampler) -> Killed:
    """Start the service, post the event, kill -9 at KILL_AT of the image sent."""
    service = lab.service().start()
    try:
        sent_before = proc_written_bytes(lab.source.pid)
        began = time.monotonic()
        answer = service.post(ecr_event(image.repository, image.tag, digest=image.digest))
        if answer.status_code != 202:
            raise RuntimeError(f"POST /sync: {answer.status_code} {answer.text[:300]}")
        job_id = str(answer.json()["job_id"])
        cut = sent_before + int(KILL_AT * image.size)
        deadline = began + _deadline(image.size)
        while proc_written_bytes(lab.source.pid) < cut:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the source had not sent {KILL_AT:.0%} in time")
            assert service.process is not None
            if service.process.poll() is not None:
                raise RuntimeError(f"the service exited before the kill: {service.log()}")
            time.sleep(_POLL)
        counted = _counters(service)
        assert service.process is not None
        hwm = peak_rss_kib(service.process.pid)
        service.kill()  # SIGKILL, then reaped
        killed = time.monotonic()
        spool = sampler.sample()
        at_kill = proc_written_bytes(lab.source.pid) - sent_before
        _log(f"bench.restart: killed after {killed - began:.1f} s, the source had sent "
             f"{at_kill / image.size:.3f}x; spool {spool / MIB:.0f} MiB")  # fmt: skip
        return Killed(
            job_id=job_id,
            sent_before=sent_before,
            seconds=killed - began,
            sent_at_kill=at_kill,
            spool_at_kill=spool,
            figures=ProcessFigures(peak_rss_kib=hwm, counters=counted),
        )
    finally:
        service.stop()


def _second_process(
    lab: Lab, image: PushedImage, job_id: str, sampler: SpoolSampler
) -> tuple[ProcessFigures, dict[str, Any], float, list[str]]:
    """Restart on the same SYNC_DATA_DIR; await the job; stop it (SIGTERM)."""
    service = lab.service()
    started = time.monotonic()
    service.start()
    try:
        # Every end state is awaited: one other than succeeded is reported, not raised.
        job = service.wait_for_job(job_id, *_ENDED, timeout=_deadline(image.size))
        ended = time.monotonic() - started
        sampler.sample()
        left = [p.name for p in spool_files(lab.spool)]
        counted = _counters(service)
        assert service.process is not None
        hwm = peak_rss_kib(service.process.pid)
        service.terminate(timeout=60)
        return ProcessFigures(peak_rss_kib=hwm, counters=counted), job, ended, left
    finally:
        service.stop()


def measure(lab: Lab, image: PushedImage) -> Outcome:
    with SpoolSampler(lab.spool) as sampler:
        first = _first_process(lab, image, sampler)
        second, job, resumed, left = _second_process(lab, image, first.job_id, sampler)
    sent = proc_written_bytes(lab.source.pid) - first.sent_before
    digests = {
        name: skopeo_digest(server.host, f"{NAMESPACE}/{image.repository}", image.tag)
        for name, server in lab.regions.items()
    }
    _log(f"bench.restart: job {job['state']} {resumed:.1f} s after the restart; the source "
         f"sent {sent / image.size:.3f}x; spool peak {sampler.peak / MIB:.0f} MiB")  # fmt: skip
    return Outcome(
        size=image.size,
        budget=lab.budget,
        state=str(job["state"]),
        attempts=job.get("attempts"),
        killed_after=first.seconds,
        sent_at_kill=first.sent_at_kill,
        spool_at_kill=first.spool_at_kill,
        resumed_in=resumed,
        source_sent=sent,
        processes=(first.figures, second),
        spool_peak=sampler.peak,
        spool_left=left,
        spool_left_after_stop=[p.name for p in spool_files(lab.spool)],
        digests=digests,
        expected_digest=image.digest,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.restart", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=8 * GIB,
        metavar="SIZE",
        help="the layer's payload, e.g. 512M or 8G (default 8G)",
    )
    parser.add_argument("--write", action="store_true", help=f"put the report into {RESULTS.name}")
    return parser


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so every with-block below cleans up


def _check_disk(size: int) -> None:
    WORK.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(WORK.parent).free
    if free < 5 * size + 2 * GIB:
        raise SystemExit(
            f"bench.restart: {free / GIB:.1f} GiB free under {WORK.parent}, about "
            f"{(5 * size + 2 * GIB) / GIB:.1f} GiB needed for --size {size / GIB:g}G; "
            "free some space or pass a smaller --size"
        )


def _push(net: ShapedNet, source: NsRegistry, spec: ImageSpec) -> PushedImage:
    net.set_rate("ecr", _PUSH_RATE)
    try:
        pushing = time.monotonic()
        image = push_image(source.url, spec)
        _log(f"bench.restart: pushed {image.size / MIB:.1f} MiB in one layer "
             f"in {time.monotonic() - pushing:.1f} s")  # fmt: skip
        return image
    finally:
        net.set_rate("ecr", RATE)


def run(size: int) -> tuple[PushedImage, Outcome]:
    shutil.rmtree(WORK, ignore_errors=True)
    servers: list[NsRegistry] = []
    try:
        with ShapedNet({"ecr": RATE, "mel": RATE, "syd": RATE}) as net:
            try:
                for name, link in net.links.items():
                    servers.append(NsRegistry(WORK / name, link=link).start())
                source, *regions = servers
                spec = ImageSpec(f"{size // MIB}m-single", layers=1, layer_payload=size)
                image = _push(net, source, spec)
                lab = Lab(
                    net=net,
                    source=source,
                    regions={"mel": regions[0], "syd": regions[1]},
                    data_dir=WORK / "data",
                    budget=image.size + GIB,
                )
                return image, measure(lab, image)
            finally:
                for server in servers:
                    server.stop()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_root("bench.restart")
    _check_disk(args.size)
    signal.signal(signal.SIGTERM, _interrupted)
    command = shlex.join([".venv/bin/python", "-m", "bench.restart", *sys.argv[1:]])
    started, machine, began = dt.datetime.now(dt.UTC), machine_lines(), time.monotonic()
    os.sync()
    image, outcome = run(args.size)
    report = render(
        command=command,
        started=started,
        machine=machine,
        image=image,
        outcome=outcome,
        rate=RATE,
        kill_at=KILL_AT,
        seconds=time.monotonic() - began,
    )
    print(report)
    if args.write:
        update_results_file(RESULTS, "restart", report)
        _log(f"bench.restart: wrote the restart section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
