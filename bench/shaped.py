"""Benchmark over shaped links, beside skopeo: ``sudo .venv/bin/python -m bench.shaped``.

The source ("ECR") and each region ("mel", "syd", "per") is a docker-registry in
its own network namespace behind a veth link shaped with ``tc … tbf`` (see
bench/netns.py); the tools run in a client namespace, so every byte crosses a
link at its rate.  Two generated images are pushed to the source once (over
an unshaped-rate link: the push is set-up, not measured): 128 MiB in 4 layers
for cases 1 and 2, one 1 GiB layer for case 3; then each copy goes to new,
empty region registries:

1. equal links (200 Mbit/s each), 2 regions and 3 regions: our one process vs
   skopeo copying to each region in turn;
2. one slow region (mel 200, syd 50): when the image is present in mel (a HEAD
   poll every 50 ms) against our copy to mel alone, and syd against its link's
   limit (image bytes / 50 Mbit/s); skopeo mel then syd;
3. a reset at 60 % of syd's upload of the 1 GiB layer (a proxy in the client
   namespace forwards to syd, counts the request bytes and resets the
   connection carrying byte 0.6 x image): bytes read from the source, bytes
   sent to syd; skopeo through the same proxy, run again after it fails (as the
   original service retried).

No delay is added (netem is unavailable; tbf shapes rate only).  Needs root.
Everything it creates (namespaces, links, processes, bench/.work/shaped) is
removed when it ends, on error and on Ctrl-C too.  --write puts the report
into bench/RESULTS.md (its ``shaped`` section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench.images import GIB, MIB, ImageSpec, PushedImage, push_image
from bench.measure import proc_written_bytes, run_processes
from bench.netns import ShapedNet, require_root
from bench.report import machine_lines, update_results_file
from bench.scenarios import child_env, clear_skopeo_cache, ours_binary
from bench.shaped_parts import NsRegistry, PresencePoller, ResetProxy, fresh_registry
from bench.shaped_report import Outcome, render

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "shaped"
RESULTS = BENCH_DIR / "RESULTS.md"
IMAGE = ImageSpec("128M", layers=4, layer_payload=32 * MIB)
RESET_IMAGE = ImageSpec("1G-single", layers=1, layer_payload=GIB)
FAST, SLOW = 200.0, 50.0
_PUSH_RATE = 10_000.0  # Mbit/s on the ECR link while the images are pushed (set-up)
RESET_AT = 0.60
_DEST_REPOSITORY = "mirror/img"
_TIMEOUT = 600.0
_SKOPEO_ATTEMPTS = 3
# What --only picks from; "alone" is ours to mel alone (the slow case's yardstick).
CASES = ("equal2", "equal3", "alone", "slow", "reset")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Runner:
    """Runs one tool to fresh region registries and collects an :class:`Outcome`."""

    net: ShapedNet
    source: NsRegistry
    image: PushedImage
    reset_image: PushedImage
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    _serial: int = 0
    _regions: list[NsRegistry] = field(default_factory=list)

    def _fresh(self, names: list[str]) -> dict[str, NsRegistry]:
        self.drop()
        self._serial += 1
        made = {
            n: fresh_registry(WORK / f"{self._serial:03d}-{n}", self.net.links[n]) for n in names
        }
        self._regions = list(made.values())
        return made

    def drop(self) -> None:
        for server in self._regions:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
        self._regions = []

    def _source_ref(self, image: PushedImage) -> str:
        return f"{self.source.host}/{image.repository}:{image.tag}"

    def _record(self, key: str, outcome: Outcome) -> None:
        self.outcomes.setdefault(key, []).append(outcome)
        present = ", ".join(f"{n} {s:.2f} s" for n, s in outcome.present.items())
        _log(f"  {key:<22} wall {outcome.wall:6.2f} s; present: {present}; "
             f"source sent {outcome.source_sent / outcome.size:.2f}x")  # fmt: skip

    def _poller(self, servers: dict[str, NsRegistry], image: PushedImage) -> PresencePoller:
        path = f"/v2/{_DEST_REPOSITORY}/manifests/{image.tag}"
        return PresencePoller({n: (s.url, path) for n, s in servers.items()}, image.digest)

    def _check(self, key: str, poller: PresencePoller, servers: dict[str, NsRegistry]) -> None:
        missing = sorted(set(servers) - set(poller.present))
        if missing:
            raise RuntimeError(f"{key}: the image never appeared in {', '.join(missing)}")

    def ours(self, key: str, names: list[str], *, reset: str | None = None) -> None:
        image = self.image if reset is None else self.reset_image
        servers = self._fresh(names)
        with ExitStack() as stack:
            hosts = {n: s.host for n, s in servers.items()}
            proxy = None
            if reset is not None:
                cut = int(RESET_AT * image.size)
                upstream = servers[reset]
                proxy = stack.enter_context(ResetProxy(upstream.address, upstream.port, cut))
                hosts[reset] = proxy.host
            command = [str(ours_binary()), "copy", "--json", "--insecure", self.source.host]
            for host in hosts.values():
                command += ["--insecure", host]
            command += [
                self._source_ref(image),
                *(f"{h}/{_DEST_REPOSITORY}:{image.tag}" for h in hosts.values()),
            ]
            sent_before = proc_written_bytes(self.source.pid)
            poller = stack.enter_context(self._poller(servers, image))
            began = time.monotonic()
            run = run_processes([command], logs=WORK / "logs" / f"{self._serial:03d}-{key}",
                                timeout=_TIMEOUT, env=child_env()).check(key)  # fmt: skip
            deadline = time.monotonic() + 10
            while len(poller.present) < len(servers) and time.monotonic() < deadline:
                time.sleep(0.05)  # the poller's last round; it polls every 50 ms
        self._check(key, poller, servers)
        document = json.loads(run.processes[0].stdout)
        self._record(key, Outcome(
            size=image.size,
            wall=run.wall,
            present={n: poller.present[n] - began for n in names},
            source_sent=proc_written_bytes(self.source.pid) - sent_before,
            bytes_read=int(document["bytes_read"]),
            cpu=run.cpu_seconds,
            rss_kib=run.maxrss_kib,
            forwarded=proxy.forwarded if proxy else None,
            cuts=proxy.cuts if proxy else None,
        ))  # fmt: skip

    def skopeo(self, key: str, names: list[str], *, reset: str | None = None) -> None:
        """skopeo copying to each region in turn (as the original service's jobs did)."""
        image = self.image if reset is None else self.reset_image
        servers = self._fresh(names)
        present: dict[str, float] = {}
        wall = cpu = 0.0
        rss = runs = 0
        sent_before = proc_written_bytes(self.source.pid)
        with ExitStack() as stack:
            proxy = None
            for name, server in servers.items():
                host = server.host
                if name == reset:
                    cut = int(RESET_AT * image.size)
                    proxy = stack.enter_context(ResetProxy(server.address, server.port, cut))
                    host = proxy.host
                command = ["skopeo", "copy", "--all", "--preserve-digests",
                           "--src-tls-verify=false", "--dest-tls-verify=false",
                           f"docker://{self._source_ref(image)}",
                           f"docker://{host}/{_DEST_REPOSITORY}:{image.tag}"]  # fmt: skip
                # skopeo gives up on a reset mid-PATCH (its --retry-times does not take it
                # for transient); the copy is run again, as the original service's job
                # retry did. skopeo then skips the blobs already there.
                for attempt in range(1, _SKOPEO_ATTEMPTS + 1):
                    clear_skopeo_cache()
                    logs = WORK / "logs" / f"{self._serial:03d}-{key}-{name}-{attempt}"
                    run = run_processes([command], logs=logs, timeout=_TIMEOUT, env=child_env())
                    wall += run.wall
                    cpu += run.cpu_seconds
                    rss = max(rss, run.maxrss_kib)
                    if run.ok or attempt == _SKOPEO_ATTEMPTS:
                        break
                    runs += 1
                run.check(key)
                present[name] = wall
        self._record(key, Outcome(
            size=image.size, wall=wall, present=present,
            source_sent=proc_written_bytes(self.source.pid) - sent_before,
            bytes_read=None, cpu=cpu, rss_kib=rss,
            forwarded=proxy.forwarded if proxy else None,
            cuts=proxy.cuts if proxy else None,
            reruns=runs,
        ))  # fmt: skip

    def repetition(self, only: frozenset[str]) -> None:
        def wanted(case: str) -> bool:
            return not only or case in only

        for name in ("ecr", "mel", "syd", "per"):
            self.net.set_rate(name, FAST)
        _log("bench.shaped: equal links, 2 and 3 regions")
        if wanted("equal2"):
            self.ours("equal2/ours", ["mel", "syd"])
            self.skopeo("equal2/skopeo", ["mel", "syd"])
        if wanted("equal3"):
            self.ours("equal3/ours", ["mel", "syd", "per"])
            self.skopeo("equal3/skopeo", ["mel", "syd", "per"])
        if wanted("alone"):
            self.ours("slow/ours-mel-alone", ["mel"])  # syd's rate plays no part
        if wanted("slow"):
            _log("bench.shaped: syd slow")
            self.net.set_rate("syd", SLOW)
            self.ours("slow/ours", ["mel", "syd"])
            self.skopeo("slow/skopeo", ["mel", "syd"])
            self.net.set_rate("syd", FAST)
        if wanted("reset"):
            _log(f"bench.shaped: a reset at {RESET_AT:.0%} of syd's upload of one 1 GiB layer")
            self.ours("reset/ours", ["mel", "syd"], reset="syd")
            self.skopeo("reset/skopeo", ["mel", "syd"], reset="syd")
        self.drop()


def _push(net: ShapedNet, source: NsRegistry) -> tuple[PushedImage, PushedImage]:
    """Both images into the source, the ECR link opened up meanwhile (set-up, not measured)."""
    net.set_rate("ecr", _PUSH_RATE)
    try:
        pushed = []
        for spec in (IMAGE, RESET_IMAGE):
            pushing = time.monotonic()
            pushed.append(push_image(source.url, spec))
            _log(f"bench.shaped: pushed {pushed[-1].size / MIB:.1f} MiB in {spec.layers} "
                 f"layer(s) in {time.monotonic() - pushing:.1f} s")  # fmt: skip
    finally:
        net.set_rate("ecr", FAST)
    return pushed[0], pushed[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shaped", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="repetitions; figures are medians (default 1)",
    )
    parser.add_argument("--write", action="store_true", help=f"put the report into {RESULTS.name}")
    parser.add_argument(
        "--only",
        type=_cases,
        default=frozenset(),
        metavar="CASE,...",
        help=f"run only these cases ({', '.join(CASES)}), to iterate faster; "
        "default: all (--write needs all)",
    )
    return parser


def _cases(text: str) -> frozenset[str]:
    cases = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(cases - set(CASES))
    if unknown or not cases:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown) or 'nothing'}: not a case; choose from {', '.join(CASES)}"
        )
    return cases


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so every with-block below cleans up


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 1 <= args.repeat <= 10:
        raise SystemExit("bench.shaped: --repeat must be between 1 and 10")
    if args.write and args.only:
        raise SystemExit("bench.shaped: --write records every case; drop --only")
    require_root()
    signal.signal(signal.SIGTERM, _interrupted)
    command = shlex.join([".venv/bin/python", "-m", "bench.shaped", *sys.argv[1:]])
    started, machine, began = dt.datetime.now(dt.UTC), machine_lines(), time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    try:
        with ShapedNet({"ecr": FAST, "mel": FAST, "syd": FAST, "per": FAST}) as net:
            source = NsRegistry(WORK / "ecr", link=net.links["ecr"]).start()
            try:
                image, reset_image = _push(net, source)
                runner = Runner(net, source, image, reset_image)
                try:
                    for _ in range(args.repeat):
                        runner.repetition(args.only)
                finally:
                    runner.drop()
            finally:
                source.stop()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    report = render(
        command=command,
        started=started,
        machine=machine,
        images=(image, reset_image),
        outcomes=runner.outcomes,
        rates=(FAST, SLOW),
        reset_at=RESET_AT,
        seconds=time.monotonic() - began,
    )
    print(report)
    if args.write:
        update_results_file(RESULTS, "shaped", report)
        _log(f"bench.shaped: wrote the shaped section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
