"""The service under load: ``.venv/bin/python -m bench.intake [--seconds N] [--write]``.

Everything runs on this machine, on 127.0.0.1 only, against the real
``ecr-ocir-sync serve`` process (tests/support/service.py) and Debian's
docker-registry as "ECR" and the two "OCIR regions" (mel, syd).

1. Intake.  ``wrk`` (one thread) POSTs full EventBridge "ECR Image Action"
   PUSH events to /sync for ``--seconds``: closed loop (each connection sends
   its next request when the answer to the last arrives) at each of
   ``--connections``, then paced at ``--rate`` events/s (the target's 1,000 by
   default) on the most connections; every event has its own tag
   (bench/intake_post.lua), so each one is a new job.  Two worker situations,
   each load on a fresh process and data directory:

   - *workers busy*: ECR_ENDPOINT is a loopback listener that accepts
     connections and never answers, so the 4 workers sit on their first jobs
     (read timeout, no CPU), like workers tied up in long copies: the queue
     only grows.  The realistic case.
   - *workers failing fast*: ECR_ENDPOINT is an empty registry, so every job
     ends at once (404) and the workers lease, end and log jobs as fast as
     they can, competing with intake for the cores and the store.  The worst
     case for CPU.

   Durability: after the run the service is stopped (SIGTERM) and the rows
   of ``<data_dir>/jobs.sqlite3`` are counted; they must equal the accepted
   events (/metrics, read before stopping) and be at least the 202 answers wrk
   counted (wrk stops with up to one request per connection in flight: the
   service commits those, wrk never reads the answer).

2. Event to present.  A 20 MiB image (4 layers) is pushed to a local "ECR";
   per repetition the service starts with fresh, empty destinations, its event
   is POSTed and both destinations are polled (HEAD manifest, every 10 ms)
   until both answer 200.  The original service's way, in the same run:
   ``skopeo copy`` to mel, then to syd, to fresh destinations, with skopeo's
   blob-info cache deleted first.

Target (from the issue): at least 1,000 events/s sustained with p99 under
25 ms on this 2-core machine; the paced rows test exactly that, the closed-loop
rows show the ceiling and the latency at saturation.  ``--write`` replaces the ``intake`` section of
bench/RESULTS.md.  ``--py-spy`` also samples the service during every load run
and prints where it spends its time (the figures then include py-spy's cost).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from tests.support.registry import RegistryServer
from tests.support.service import ACCOUNT, API_KEY, REGION, ServiceProcess, ecr_event

from bench.images import MIB, ImageSpec, PushedImage, push_image
from bench.measure import median, proc_cpu_seconds
from bench.registries import Lab, manifest_digest
from bench.report import machine_lines, update_results_file
from bench.scenarios import child_env, clear_skopeo_cache

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "intake"
RESULTS = BENCH_DIR / "RESULTS.md"
LUA = BENCH_DIR / "intake_post.lua"
PY_SPY = Path(sys.executable).parent / "py-spy"

MODE = "intake"
NAMESPACE = "ns"
REPOSITORY = "bench/intake"
WORKERS = 4
WARM_UP_EVENTS = 20
THROUGHPUT_TARGET = 1000.0  # events/s, at least
KEPT_UP = 0.98  # a paced run keeps up when it answers this share of the offered rate
P99_TARGET_MS = 25.0  # below
PRESENT_IMAGE = ImageSpec("20M", layers=4, layer_payload=5 * MIB)
PRESENT_TIMEOUT = 120.0
POLL_SECONDS = 0.01

BUSY = "workers busy"
FAILING = "workers failing fast"

_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the parts of the setup ----------------------------------------------------------


class Blackhole:
    """A loopback listener that accepts connections and never answers.

    Holds at most ``limit`` connections (later ones are closed at once), so it
    stays bounded whatever the service does.
    """

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self.accepted = 0

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()
        return f"http://{host}:{port}"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if len(self._held) < self._limit:
                self._held.append(connection)
            else:
                connection.close()

    def __enter__(self) -> Blackhole:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._socket.close()
        for connection in self._held:
            connection.close()


def service_env(ecr_url: str, mel: RegistryServer, syd: RegistryServer) -> dict[str, str]:
    """What tests/test_service.py gives the service, with quiet logs and a short drain."""
    return {
        "OCI_TENANCY": NAMESPACE,
        "OCI_USERNAME": "mirror",
        "OCI_AUTH_TOKEN": "ocir-token-bench-only",
        "OCI_REPO_REGION_KEY": "mel,syd",
        "ECR_ENDPOINT": ecr_url,
        "OCIR_ENDPOINT_MEL": mel.url,
        "OCIR_ENDPOINT_SYD": syd.url,
        "SYNC_ALLOWED_ACCOUNTS": ACCOUNT,
        "SYNC_ALLOWED_REGIONS": REGION,
        "SYNC_API_KEY": API_KEY,
        "SYNC_LOG_LEVEL": "WARNING",
        "SYNC_WORKERS": str(WORKERS),
        # Jobs stuck on the listener would otherwise hold the stop for 25 s.
        "SYNC_DRAIN_SECONDS": "1",
        # Every event is a new job that never finishes here: measure intake, not the cap.
        "SYNC_MAX_PENDING_JOBS": "10000000",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = "^" + re.escape(f"{name}{{{selector}}}" if labels else name) + r" (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def metric_sum(text: str, name: str) -> float:
    pattern = "^" + re.escape(name) + r"\{[^}]*\} (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


def _events(http: httpx.Client, service: ServiceProcess) -> dict[str, float]:
    text = http.get(f"{service.ops_url}/metrics").text
    results = ("accepted", "coalesced", "ignored", "rejected", "unavailable")
    counts = {r: metric(text, "ecr_ocir_sync_events_total", result=r) for r in results}
    counts["jobs ended"] = metric_sum(text, "ecr_ocir_sync_jobs_total")
    return counts


def _stop(service: ServiceProcess) -> tuple[int, float]:
    """SIGTERM, bounded wait; the exit code and how long the stop took."""
    began = time.monotonic()
    try:
        code = service.terminate(timeout=60)
    except subprocess.TimeoutExpired:
        service.kill()
        code = -9
    return code, time.monotonic() - began


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """All CPUs so far, from /proc/stat: (busy seconds, steal seconds)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS, steal / _CLOCK_TICKS


def _registries_cpu(servers: Sequence[RegistryServer]) -> float:
    total = 0.0
    for server in servers:
        if server.process is not None:
            with contextlib.suppress(OSError):
                total += proc_cpu_seconds(server.process.pid)
    return total


def _store_rows(data_dir: Path) -> tuple[int, dict[str, int]]:
    with contextlib.closing(sqlite3.connect(data_dir / "jobs.sqlite3")) as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    return sum(states.values()), states


# -- 1. intake -----------------------------------------------------------------------


@dataclass(slots=True)
class WrkResult:
    seconds: float
    requests: int
    non_2xx: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_seconds: float  # wrk's own

    @property
    def answered_2xx(self) -> int:
        return self.requests - self.non_2xx


def run_wrk(
    url: str, connections: int, seconds: int, run_id: str, log: Path, rate: float | None = None
) -> WrkResult:
    """One wrk run, closed loop, or paced at ``rate`` requests a second when given."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(LUA),
        f"{url}/sync",
        "--",
        API_KEY,
        run_id,
        ACCOUNT,
        REGION,
        REPOSITORY,
    ]
    with log.open("wb") as out:
        env = {k: v for k, v in os.environ.items() if k != "BENCH_RATE"}
        if rate:
            env["BENCH_RATE"] = f"{rate:g}"
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    deadline = time.monotonic() + seconds + 30
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"wrk ran past {seconds + 30} s; killed (see {log})")
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    text = log.read_text(errors="replace")
    found = re.search(r"^BENCH-JSON (\{.*\})$", text, re.MULTILINE)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"wrk exited {process.returncode}:\n{text[-3000:]}")
    figures = json.loads(found.group(1))
    errors = ("connect_errors", "read_errors", "write_errors", "timeouts")
    return WrkResult(
        seconds=figures["duration_us"] / 1e6,
        requests=figures["requests"],
        non_2xx=figures["non_2xx"],
        socket_errors=sum(figures[e] for e in errors),
        timeouts=figures["timeouts"],
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["latency_max_us"] / 1000,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


@dataclass(slots=True)
class IntakeRun:
    situation: str
    connections: int
    rate: float | None  # offered events/s when paced; None: closed loop
    wrk: WrkResult
    accepted: int  # /metrics, during the wrk run (warm-up excluded)
    refused: int  # /metrics: rejected + unavailable during the run
    rows: int  # in the store after the stop (warm-up excluded)
    states: dict[str, int]
    jobs_ended: int  # job attempts the workers concluded while wrk ran
    service_cpu: float  # seconds, while wrk ran
    registries_cpu: float  # seconds, every registry, while wrk ran
    machine_cpu: float  # seconds, every process on the machine, while wrk ran
    steal: float  # seconds the hypervisor took from this machine's CPUs, while wrk ran
    source_connections: int  # the connections the "ECR" listener took (workers busy only)
    stop_seconds: float
    exit_code: int
    profile: Path | None = None

    @property
    def other_cpu(self) -> float:
        """CPU seconds every other process used while wrk ran (not ours, wrk, registries)."""
        return max(
            0.0, self.machine_cpu - self.service_cpu - self.registries_cpu - self.wrk.cpu_seconds
        )

    @property
    def events_per_second(self) -> float:
        return self.wrk.answered_2xx / self.wrk.seconds

    @property
    def durable(self) -> bool:
        in_flight = self.accepted - self.wrk.answered_2xx
        return self.rows == self.accepted and 0 <= in_flight <= self.connections

    @property
    def throughput_met(self) -> bool:
        if self.rate:  # paced: the service must keep up with what is offered
            return self.rate >= THROUGHPUT_TARGET and self.events_per_second >= KEPT_UP * self.rate
        return self.events_per_second >= THROUGHPUT_TARGET

    @property
    def p99_met(self) -> bool:
        return self.wrk.p99_ms < P99_TARGET_MS


def _warm_up(http: httpx.Client, service: ServiceProcess) -> None:
    for index in range(WARM_UP_EVENTS):
        answer = http.post(
            f"{service.url}/sync",
            json=ecr_event(REPOSITORY, f"warm-up-{index}"),
            headers={"X-API-Key": API_KEY},
        )
        if answer.status_code != 202:
            raise RuntimeError(f"warm-up event: {answer.status_code} {answer.text[:300]}")


def _py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    command = [str(PY_SPY), "record", "-f", "raw", "--threads", "--nonblocking", "-r", "100"]
    command += ["-p", str(pid), "-d", str(seconds), "-o", str(out)]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )


def intake_run(
    situation: str,
    source: Blackhole | RegistryServer,
    mel: RegistryServer,
    syd: RegistryServer,
    connections: int,
    seconds: int,
    *,
    rate: float | None = None,
    profile: bool,
) -> IntakeRun:
    ecr_url = source.url
    registries = [mel, syd] if isinstance(source, Blackhole) else [source, mel, syd]
    held_before = source.accepted if isinstance(source, Blackhole) else 0
    slug = f"{'busy' if situation == BUSY else 'failing'}-c{connections}"
    if rate:
        slug += f"-r{rate:g}"
    data_dir = WORK / "data" / slug
    service = ServiceProcess(data_dir, service_env(ecr_url, mel, syd))
    http = httpx.Client(trust_env=False, timeout=10)
    try:
        service.start()
        assert service.process is not None
        pid = service.process.pid
        _warm_up(http, service)
        before = _events(http, service)
        cpu_before = proc_cpu_seconds(pid)
        registries_before = _registries_cpu(registries)
        machine_before, steal_before = machine_cpu_seconds()
        spy = None
        profile_path = WORK / "profiles" / f"{slug}.txt" if profile else None
        if profile_path is not None:
            profile_path.parent.mkdir(parents=True, exist_ok=True)
            spy = _py_spy(pid, seconds, profile_path)
        result = run_wrk(service.url, connections, seconds, slug, WORK / f"wrk-{slug}.log", rate)
        cpu = proc_cpu_seconds(pid) - cpu_before
        machine_after, steal_after = machine_cpu_seconds()
        registries_cpu = _registries_cpu(registries) - registries_before
        if spy is not None:
            spy.wait(timeout=60)
        time.sleep(0.3)  # requests wrk left in flight finish committing
        after = _events(http, service)
        code, stop_seconds = _stop(service)
    finally:
        http.close()
        service.stop()
    rows, states = _store_rows(data_dir)
    for store_file in data_dir.glob("jobs.sqlite3*"):
        store_file.unlink()  # counted; tens of MiB per run otherwise (the logs stay)
    warm = int(before["accepted"])
    return IntakeRun(
        situation=situation,
        connections=connections,
        rate=rate,
        wrk=result,
        accepted=int(after["accepted"] - before["accepted"]),
        refused=int(
            after["rejected"] - before["rejected"] + after["unavailable"] - before["unavailable"]
        ),
        rows=rows - warm,
        states=states,
        jobs_ended=int(after["jobs ended"] - before["jobs ended"]),
        service_cpu=cpu,
        registries_cpu=registries_cpu,
        machine_cpu=machine_after - machine_before,
        steal=steal_after - steal_before,
        source_connections=(source.accepted - held_before) if isinstance(source, Blackhole) else 0,
        stop_seconds=stop_seconds,
        exit_code=code,
        profile=profile_path,
    )


DISTURBED_CORES = 0.25  # other work beyond this while wrk ran marks the row


def _disturbed(run: IntakeRun) -> bool:
    return run.other_cpu / run.wrk.seconds > DISTURBED_CORES


def _load(run: IntakeRun) -> str:
    if run.rate:
        return f"paced {run.rate:,.0f}/s, {run.connections} conns"
    return f"closed loop, {run.connections} conns"


def _describe(run: IntakeRun) -> str:
    w = run.wrk
    return (
        f"  {run.situation:<20} {_load(run):<22} {run.events_per_second:7.0f} events/s, "
        f"p50 {w.p50_ms:6.2f} ms, p99 {w.p99_ms:6.2f} ms, non-2xx {w.non_2xx}, "
        f"errors {w.socket_errors}; 202s {w.answered_2xx}, accepted {run.accepted}, "
        f"rows {run.rows} ({'durable' if run.durable else 'NOT DURABLE'}); "
        f"service CPU {run.service_cpu / w.seconds:.2f} cores, rest of the machine "
        f"{run.other_cpu / w.seconds:.2f}; stopped in "
        f"{run.stop_seconds:.1f} s, exit {run.exit_code}; jobs by state {run.states}"
    )


# -- 2. event to present -------------------------------------------------------------


@dataclass(slots=True)
class PresentRun:
    """One repetition: ours (event to both regions present) and the original way."""

    ours: float
    accepted: float  # POST until its 202
    first: float  # POST until the first region answers 200
    pickup: float  # the job's created -> started (the service's clock)
    job: float  # the job's started -> finished
    original: float


def _manifest_url(server: RegistryServer, image: PushedImage) -> str:
    return f"{server.url}/v2/{NAMESPACE}/{image.repository}/manifests/{image.tag}"


def _await_present(
    http: httpx.Client, dests: Sequence[RegistryServer], image: PushedImage, began: float
) -> list[float]:
    """Seconds from ``began`` until each destination answers 200 (polled every 10 ms)."""
    landed: dict[int, float] = {}
    deadline = began + PRESENT_TIMEOUT
    while len(landed) < len(dests):
        for index, server in enumerate(dests):
            if index in landed:
                continue
            answer = http.head(_manifest_url(server, image), headers={"Accept": _ACCEPT})
            if answer.status_code == 200:
                landed[index] = time.monotonic() - began
        if len(landed) == len(dests):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the image was not present everywhere after {PRESENT_TIMEOUT} s")
        time.sleep(POLL_SECONDS)
    return [landed[i] for i in range(len(dests))]


def _verify(dests: Sequence[RegistryServer], image: PushedImage, who: str) -> None:
    for server in dests:
        found = manifest_digest(server, f"{NAMESPACE}/{image.repository}", image.tag)
        if found != image.digest:
            raise RuntimeError(f"{who}: {server.host} holds {found}, expected {image.digest}")


def ours_present(
    lab: Lab, image: PushedImage, index: int
) -> tuple[float, float, float, dict[str, Any]]:
    mel, syd = lab.fresh_destinations(2)
    service = ServiceProcess(WORK / "data" / f"present-{index}", service_env(lab.src.url, mel, syd))
    http = httpx.Client(trust_env=False, timeout=10)
    try:
        service.start()
        event = ecr_event(image.repository, image.tag, digest=image.digest)
        os.sync()
        began = time.monotonic()
        answer = http.post(f"{service.url}/sync", json=event, headers={"X-API-Key": API_KEY})
        accepted = time.monotonic() - began
        if answer.status_code != 202:
            raise RuntimeError(f"POST /sync: {answer.status_code} {answer.text[:300]}")
        landed = _await_present(http, [mel, syd], image, began)
        job = service.wait_for_job(answer.json()["job_id"], timeout=30)
        _stop(service)
    finally:
        http.close()
        service.stop()
    _verify([mel, syd], image, "ours")
    return max(landed), accepted, min(landed), job


def original_present(lab: Lab, image: PushedImage) -> float:
    dests = lab.fresh_destinations(2)
    clear_skopeo_cache()
    os.sync()
    began = time.monotonic()
    for server in dests:
        command = [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{lab.src.host}/{image.repository}:{image.tag}",
            f"docker://{server.host}/{NAMESPACE}/{image.repository}:{image.tag}",
        ]
        left = began + PRESENT_TIMEOUT - time.monotonic()
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=max(left, 1),
            env=child_env(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"skopeo exited {done.returncode}: {done.stderr[-1500:]}")
    wall = time.monotonic() - began
    _verify(dests, image, "skopeo")
    return wall


def present_runs(lab: Lab, image: PushedImage, repeat: int) -> list[PresentRun]:
    runs = []
    for index in range(repeat):
        ours, accepted, first, job = ours_present(lab, image, index)
        original = original_present(lab, image)
        run = PresentRun(
            ours=ours,
            accepted=accepted,
            first=first,
            pickup=job["started"] - job["created"],
            job=job["finished"] - job["started"],
            original=original,
        )
        _log(
            f"  event to present: ours {run.ours:.3f} s (202 after {run.accepted * 1000:.1f} ms, "
            f"job ran {run.job:.3f} s), skopeo mel then syd {run.original:.3f} s"
        )
        runs.append(run)
    lab.drop_destinations()
    return runs


# -- the report ----------------------------------------------------------------------


def _target_line(run: IntakeRun) -> str:
    rate, p99 = run.events_per_second, run.wrk.p99_ms
    met = run.throughput_met and run.p99_met and run.durable
    if run.rate:
        rate_text = (
            f"{rate:,.0f} of {run.rate:,.0f} events/s offered answered 202 "
            f"({rate / run.rate:.1%}; kept up: {'yes' if run.throughput_met else 'NO'}, "
            f"the bar is {KEPT_UP:.0%})"
        )
    else:
        rate_text = (
            f"{rate:,.0f} events/s ({abs(rate / THROUGHPUT_TARGET - 1) * 100:.0f} % "
            f"{'above' if run.throughput_met else 'short of'} {THROUGHPUT_TARGET:,.0f})"
        )
    p99_text = (
        f"p99 {p99:.1f} ms ({abs(1 - p99 / P99_TARGET_MS) * 100:.0f} % "
        f"{'under' if run.p99_met else 'over'} {P99_TARGET_MS:g} ms)"
    )
    verdict = "met" if met else "MISSED"
    if _disturbed(run):
        verdict += f" ⚠ (other work took {run.other_cpu / run.wrk.seconds:.2f} cores meanwhile)"
    if not run.durable:
        verdict += " (store does not match the accepted count)"
    return (
        f"- {'✅' if met else '❌'} {run.situation}, {_load(run)}: "
        f"{rate_text}, {p99_text} — {verdict}"
    )


def _intake_table(runs: Sequence[IntakeRun]) -> list[str]:
    lines = [
        (
            "| workers | load | events/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx "
            "| socket errors | 202s (wrk) | accepted (/metrics) | rows in store | durable "
            "| job attempts ended | service CPU, cores | CPU ms/event | wrk CPU, cores "
            "| registries CPU, cores | rest of the machine, cores |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        w = run.wrk
        per_event = run.service_cpu / run.accepted * 1000 if run.accepted else float("nan")
        lines.append(
            f"| {run.situation} | {_load(run)} | {run.events_per_second:,.0f} "
            f"| {w.p50_ms:.2f} | {w.p90_ms:.2f} | {w.p99_ms:.2f} | {w.max_ms:.1f} "
            f"| {w.non_2xx} | {w.socket_errors} | {w.answered_2xx:,} | {run.accepted:,} "
            f"| {run.rows:,} | {'yes' if run.durable else '**NO**'} | {run.jobs_ended:,} "
            f"| {run.service_cpu / w.seconds:.2f} | {per_event:.2f} "
            f"| {w.cpu_seconds / w.seconds:.2f} | {run.registries_cpu / w.seconds:.2f} "
            f"| {run.other_cpu / w.seconds:.2f}{' ⚠' if _disturbed(run) else ''} |"
        )
    return lines


def _present_table(runs: Sequence[PresentRun]) -> list[str]:
    rows = [
        ("ours: POST /sync → both regions answer HEAD 200", [r.ours for r in runs]),
        ("  ours: POST → 202", [r.accepted for r in runs]),
        ("  ours: POST → first region answers 200", [r.first for r in runs]),
        ("  ours: job queued → started (service clock)", [r.pickup for r in runs]),
        ("  ours: job started → finished (service clock)", [r.job for r in runs]),
        ("original: `skopeo copy` to mel, then to syd", [r.original for r in runs]),
    ]
    lines = ["| way | runs | median s | min s | max s |", "|---|--:|--:|--:|--:|"]
    for label, values in rows:
        lines.append(
            f"| {label} | {len(values)} | {median(values):.3f} | {min(values):.3f} "
            f"| {max(values):.3f} |"
        )
    return lines


def _wrk_version() -> str:
    try:
        done = subprocess.run(
            ["wrk", "-v"], check=False, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "wrk ?"
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk ?"


def render(
    *,
    command: str,
    started: dt.datetime,
    machine: Sequence[str],
    seconds: int,
    intake: Sequence[IntakeRun],
    present: Sequence[PresentRun],
    image: PushedImage,
    notes: Sequence[str],
) -> str:
    lines = [
        f"## `{MODE}` run",
        "",
        f"- command: `{command}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        *machine,
        *notes,
        "",
        (
            f"### Intake: POST /sync, {seconds} s per row, full EventBridge PUSH events, "
            "each with its own tag"
        ),
        "",
        *_intake_table(intake),
        "",
        (
            f"### Event to present: {image.size / MIB:.1f} MiB in {image.spec.layers} layers "
            "(+ config), 2 regions"
        ),
        "",
        *_present_table(present),
        "",
    ]
    ours = median([r.ours for r in present])
    original = median([r.original for r in present])
    lines += [
        (
            f"- ours / original (medians): {ours / original:.2f} "
            f"({ours:.3f} s against {original:.3f} s)"
        ),
        "",
    ]
    met = sum(r.throughput_met and r.p99_met and r.durable for r in intake)
    paced = [run for run in intake if run.rate]
    closed = [run for run in intake if not run.rate]
    lines += [
        (
            f"### Targets: {met} of {len(intake)} met (≥ {THROUGHPUT_TARGET:,.0f} events/s "
            f"sustained with p99 < {P99_TARGET_MS:g} ms, and every 202 in the store)"
        ),
        "",
    ]
    if paced:
        lines += [
            (
                "At the target's own load (paced: the events/s of the target offered, whatever "
                "the latency):"
            ),
            "",
            *(_target_line(run) for run in paced),
            "",
        ]
    if closed:
        lines += [
            (
                "At saturation (closed loop: every connection sends again as soon as it is "
                "answered, so p99 includes queueing behind the other connections):"
            ),
            "",
            *(_target_line(run) for run in closed),
            "",
        ]
    return "\n".join(lines)


def _notes(total: float, intake: Sequence[IntakeRun]) -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    stops = [run.stop_seconds for run in intake]
    codes = sorted({run.exit_code for run in intake})
    held = sorted({run.source_connections for run in intake if run.situation == BUSY})
    steal = max(run.steal / run.wrk.seconds for run in intake)
    return [
        f"- total run time {total:.0f} s; load average at the end {load}",
        (
            "- load: wrk, 1 thread. Closed loop: each connection sends its next event when the "
            "last one is answered, so the row shows the ceiling, and its latency includes "
            "waiting behind the other connections (p99 grows with the connection count at the "
            "same throughput). Paced: events are sent on a fixed schedule of that many a "
            "second whatever the latency (only a free connection can send, and the connection "
            "count leaves room for stalls), so the row is the target's own condition. Each "
            f"row is a fresh service process and data directory, {WARM_UP_EVENTS} warm-up "
            "events first (not counted)"
        ),
        (
            "- the service (uvicorn, one process, SQLite WAL with synchronous=FULL and group "
            "commit), wrk and the registries share the machine's cores with each other and "
            "with any other work on the machine: 'rest of the machine' is the CPU every other "
            "process used while wrk ran (/proc/stat less the service, wrk and the registries); "
            f"hypervisor steal peaked at {steal:.2f} cores; ⚠ marks a row during which other "
            f"work took more than {DISTURBED_CORES:g} cores (its figures understate the service)"
        ),
        (
            f"- {BUSY}: ECR_ENDPOINT is a loopback listener that accepts and never answers "
            f"(it took {' or '.join(map(str, held))} connection(s) per run): the {WORKERS} "
            "workers each wait "
            "on one job (120 s read timeout, no CPU) as if busy with long copies, and the "
            "queue only grows"
        ),
        (
            f"- {FAILING}: ECR_ENDPOINT is an empty registry, so every job ends at once (the "
            "source answers 404; nothing is retried): the workers lease, end, record and log "
            "jobs as fast as they can beside intake ('job attempts ended' counts them)"
        ),
        (
            "- durable: after the run the service is stopped with SIGTERM and the rows of "
            "jobs.sqlite3 counted; they must equal /metrics' accepted events (read before the "
            "stop), which may exceed wrk's 202s by at most one per connection (wrk stops with "
            "those in flight and does not count their answers); the stops took "
            f"{min(stops):.1f} to {max(stops):.1f} s (SYNC_DRAIN_SECONDS=1), exit code(s) "
            f"{', '.join(map(str, codes))}"
        ),
        (
            f"- event to present: fresh empty destinations for every measurement; ours is "
            f"polled every {POLL_SECONDS * 1000:.0f} ms (HEAD manifest on both), so it is up "
            "to that much late; ours starts when the POST is sent (the service is already "
            "running); the original is two `skopeo copy --all --preserve-digests` processes, "
            "mel then syd, skopeo's blob-info cache deleted first"
        ),
    ]


# -- profiles --------------------------------------------------------------------------


def summarize_profile(path: Path, top: int = 10) -> list[str]:
    """Per thread: share of the samples, own time by function, and the service's frames
    by inclusive time (py-spy's raw format with --threads: one stack and count a line)."""
    per_thread: Counter[str] = Counter()
    own: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        thread = thread.partition(": ")[2] or thread
        per_thread[thread] += count
        if frames:
            own.setdefault(thread, Counter())[frames[-1]] += count
        for frame in set(frames):
            if "ecr_ocir_sync" in frame:
                inclusive.setdefault(thread, Counter())[frame] += count
    total = sum(per_thread.values())
    if not total:
        return [f"{path}: no samples"]
    lines = [f"{path.name}: {total} samples (100 a second per busy thread)"]
    for thread, samples in per_thread.most_common():
        lines.append(f"  thread {thread}: {samples / total:.0%} of the samples")
        lines += [
            f"    own  {n / samples:6.1%}  {frame}"
            for frame, n in own.get(thread, Counter()).most_common(top)
        ]
        lines += [
            f"    incl {n / samples:6.1%}  {frame}"
            for frame, n in inclusive.get(thread, Counter()).most_common(top)
        ]
    return lines


# -- main ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake",
        description="Intake throughput and event-to-present time of the service, on loopback.",
    )
    parser.add_argument(
        "--seconds", type=int, default=10, metavar="N", help="seconds per load run (default 10)"
    )
    parser.add_argument(
        "--connections",
        default="8,16,32",
        metavar="LIST",
        help="comma-separated concurrencies (default 8,16,32)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=THROUGHPUT_TARGET,
        metavar="N",
        help="also a paced run offering N events/s on the most connections given "
        f"(default {THROUGHPUT_TARGET:g}, the target; 0: none)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="event-to-present repetitions, figures are medians (default 3)",
    )
    parser.add_argument(
        "--py-spy", action="store_true", help="sample the service with py-spy during each load"
    )
    parser.add_argument("--write", action="store_true", help=f"put the report into {RESULTS.name}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        connections = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        raise SystemExit("bench.intake: --connections takes numbers, e.g. 8,16,32") from None
    if not connections or not all(1 <= c <= 256 for c in connections):
        raise SystemExit("bench.intake: --connections: 1 to 256 each")
    if not 1 <= args.seconds <= 120:
        raise SystemExit("bench.intake: --seconds must be between 1 and 120")
    if not 0 <= args.rate <= 20000:
        raise SystemExit("bench.intake: --rate must be between 0 and 20000")
    if not 1 <= args.repeat <= 10:
        raise SystemExit("bench.intake: --repeat must be between 1 and 10")
    for tool in ("wrk", "skopeo"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.intake: {tool} is not installed (make bench installs it)")
    if args.py_spy and not PY_SPY.exists():
        raise SystemExit(f"bench.intake: no py-spy at {PY_SPY}")

    command = shlex.join([".venv/bin/python", "-m", "bench.intake", *sys.argv[1:]])
    started = dt.datetime.now(dt.UTC)
    machine = machine_lines()
    machine[-1] += f", {_wrk_version()}"
    began = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    intake: list[IntakeRun] = []
    _log(f"bench.intake: logs and stores under {WORK}")
    with Lab(WORK / "registries") as lab:
        ecr_empty, mel, syd = lab.fresh_destinations(3)
        with Blackhole() as blackhole:
            sources: list[tuple[str, Blackhole | RegistryServer]] = [
                (BUSY, blackhole),
                (FAILING, ecr_empty),
            ]
            for situation, source in sources:
                _log(f"bench.intake: {situation}")
                loads: list[tuple[int, float | None]] = [(count, None) for count in connections]
                if args.rate:
                    loads.append((max(connections), args.rate))
                for count, rate in loads:
                    run = intake_run(
                        situation,
                        source,
                        mel,
                        syd,
                        count,
                        args.seconds,
                        rate=rate,
                        profile=args.py_spy,
                    )
                    intake.append(run)
                    _log(_describe(run))
        lab.drop_destinations()
        pushing = time.monotonic()
        image = push_image(lab.src.url, PRESENT_IMAGE)
        _log(
            f"bench.intake: pushed {image.size / MIB:.1f} MiB in "
            f"{time.monotonic() - pushing:.1f} s; event to present, {args.repeat} repetition(s)"
        )
        present = present_runs(lab, image, args.repeat)

    report = render(
        command=command,
        started=started,
        machine=machine,
        seconds=args.seconds,
        intake=intake,
        present=present,
        image=image,
        notes=_notes(time.monotonic() - began, intake),
    )
    print(report)
    if args.py_spy:
        for run in intake:
            if run.profile is not None and run.profile.exists():
                print("\n".join(summarize_profile(run.profile)))
    if args.write:
        update_results_file(RESULTS, MODE, report)
        _log(f"bench.intake: wrote the {MODE} section of {RESULTS}")
    for run in intake:
        if not run.durable:
            _log(f"bench.intake: NOT DURABLE: {run.situation}, {run.connections} connections")
    return 0 if all(run.durable for run in intake) else 1


if __name__ == "__main__":
    sys.exit(main())
