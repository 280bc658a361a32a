"""The restart benchmark's report: what the kill and the restart cost, against issue 11's
targets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from bench.images import GIB, MIB, PushedImage
from bench.report import RSS_LIMIT_MIB, Target

__all__ = ["Outcome", "ProcessFigures", "render"]

SOURCE_LIMIT = 1.35


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """One service process."""

    peak_rss_kib: int  # VmHWM right before it was killed or stopped
    # Its own counters read at that moment (source_bytes, spool_reused_bytes,
    # source_resumes, destination_bytes/<region>, upload_resumes/<region>); None if unread.
    counters: dict[str, int] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    size: int  # the image's bytes (layer + config)
    budget: int  # SYNC_SPOOL_MAX_BYTES
    state: str  # the job's end state
    attempts: object  # the job's attempt count, as the API reports it
    killed_after: float  # seconds from the POST to the kill
    sent_at_kill: int  # bytes the source had sent when the service was killed
    spool_at_kill: int  # allocated bytes in the spool right after the kill
    resumed_in: float  # seconds from the restart to the job's end
    source_sent: int  # bytes the source sent across both processes
    processes: tuple[ProcessFigures, ProcessFigures]
    spool_peak: int  # allocated bytes under SYNC_DATA_DIR/spool, peak of the samples
    spool_left: list[str]  # files in the spool when the job had ended
    spool_left_after_stop: list[str]
    digests: dict[str, str]  # region -> manifest digest skopeo read
    expected_digest: str


def _mib(value: float) -> str:
    return f"{value / MIB:,.1f} MiB"


def _facts(o: Outcome) -> list[str]:
    first, second = o.processes
    counted = ""
    if first.counters is not None and second.counters is not None:
        counted = (
            "; the service's own ecr_ocir_sync_source_bytes_total: "
            f"{_mib(first.counters.get('source_bytes', 0))} in the first process (read just "
            f"before the kill), {_mib(second.counters.get('source_bytes', 0))} in the second"
        )
    wrong = {n: d for n, d in o.digests.items() if d != o.expected_digest}
    digests = ", ".join(f"{n} {wrong.get(n, 'matches')}" for n in o.digests)
    job = (
        f"- job: ended `{o.state}` (attempts {o.attempts}); killed {o.killed_after:.1f} s after "
        f"the POST, when the source had sent {_mib(o.sent_at_kill)} "
        f"({o.sent_at_kill / o.size:.3f}x); the restarted process finished it "
        f"{o.resumed_in:.1f} s after its start"
    )
    source = (
        f"- read from the source, both processes (the source registry's /proc/PID/io wchar): "
        f"{_mib(o.source_sent)}, {o.source_sent / o.size:.3f}x the image{counted}"
    )
    rss = (
        f"- peak RSS (VmHWM): first process {first.peak_rss_kib / 1024:.1f} MiB, "
        f"second {second.peak_rss_kib / 1024:.1f} MiB"
    )
    spool = (
        f"- spool (SYNC_DATA_DIR/spool, allocated blocks sampled every 0.5 s): peak "
        f"{_mib(o.spool_peak)} against a budget (SYNC_SPOOL_MAX_BYTES) of {_mib(o.budget)} "
        f"({_mib(o.spool_at_kill)} right after the kill); "
        f"files left when the job had ended: {len(o.spool_left)}, after the stop: "
        f"{len(o.spool_left_after_stop)}"
    )
    skopeo = (
        "- skopeo (not run, derived): it has no resume, so the original service (skopeo to mel, "
        "then to syd; the job run again after the node failure) would have the source send "
        f"what it had sent before the kill ({o.sent_at_kill / o.size:.2f}x, within mel's copy) "
        f"plus the whole image again for each region: {2 + o.sent_at_kill / o.size:.2f}x"
    )
    return [
        job,
        source,
        *_resumed(o),
        rss,
        spool,
        f"- manifest digest in each region (skopeo inspect --raw): {digests}",
        skopeo,
    ]


def _per_region(counters: dict[str, int], name: str, unit: str) -> str:
    found = {k.partition("/")[2]: v for k, v in counters.items() if k.startswith(name + "/")}
    if not found:
        return "none"
    return ", ".join(f"{region} {_mib(v) if unit == 'bytes' else v}" for region, v in found.items())


def _resumed(o: Outcome) -> list[str]:
    """What each process sent to the regions and what the second one took up again."""
    first, second = o.processes
    if first.counters is None or second.counters is None:
        return []
    return [
        (
            "- sent to the regions (the service's ecr_ocir_sync_destination_bytes_total): first "
            f"process {_per_region(first.counters, 'destination_bytes', 'bytes')}; second "
            f"{_per_region(second.counters, 'destination_bytes', 'bytes')}"
        ),
        (
            "- the second process took up: "
            f"{_mib(second.counters.get('spool_reused_bytes', 0))} from the spool (re-hashed), "
            "the source read continued after them with a Range; "
            f"{second.counters.get('source_resumes', 0)} read(s) dropped and resumed, "
            "upload sessions continued: "
            f"{_per_region(second.counters, 'upload_resumes', 'count')}"
        ),
    ]


def _targets(o: Outcome) -> list[Target]:
    first, second = o.processes
    return [
        Target(
            "bytes read from the source, both processes / image size",
            o.source_sent / o.size,
            SOURCE_LIMIT,
        ),
        Target("peak RSS, first process", first.peak_rss_kib / 1024, RSS_LIMIT_MIB, True, " MiB"),
        Target("peak RSS, second process", second.peak_rss_kib / 1024, RSS_LIMIT_MIB, True, " MiB"),
        Target("spool peak disk / budget", o.spool_peak / o.budget, 1.0),
    ]


def _checks(o: Outcome) -> list[tuple[bool, str]]:
    wrong = sorted(n for n, d in o.digests.items() if d != o.expected_digest)
    return [
        (o.state == "succeeded", f"the job completes after the restart (it ended `{o.state}`)"),
        (
            not o.spool_left,
            f"nothing left in the spool when the job has ended ({len(o.spool_left)} file(s))",
        ),
        (
            not wrong,
            "both regions hold the image's manifest digest (skopeo)"
            + (f"; not: {', '.join(wrong)}" if wrong else ""),
        ),
    ]


def render(
    *,
    command: str,
    started: dt.datetime,
    machine: Sequence[str],
    image: PushedImage,
    outcome: Outcome,
    rate: float,
    kill_at: float,
    seconds: float,
) -> str:
    targets = _targets(outcome)
    checks = _checks(outcome)
    met = sum(t.met for t in targets) + sum(ok for ok, _ in checks)
    lines = [
        "## `restart` run: kill -9 of the service mid-copy, then a restart",
        "",
        f"- command: `sudo {command}` (as root; `make bench` runs it)",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        *machine,
        (
            f"- image: {image.size / GIB:.2f} GiB in one layer (+ config), to 2 regions; links "
            f"{rate:g} Mbit/s (tbf, registries in network namespaces); the service killed with "
            f"SIGKILL when the source had sent {kill_at:.0%} of the image, restarted on the same "
            "SYNC_DATA_DIR"
        ),
        f"- total run time {seconds:.0f} s (pushing the image included); one run",
        "",
        *_facts(outcome),
        "",
        f"### Targets (issue 11): {met} of {len(targets) + len(checks)} met",
        "",
        *(f"- {'✅' if ok else '❌'} {what}" for ok, what in checks),
        *(f"- {t.line()}" for t in targets),
    ]
    return "\n".join(lines) + "\n"
