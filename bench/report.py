"""Medians, ratios, targets, and the Markdown that goes to stdout and RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.images import MIB, PushedImage
from bench.measure import median
from bench.scenarios import SCENARIOS, Measurement

__all__ = ["Target", "machine_lines", "render", "targets", "update_results_file"]

Results = dict[str, dict[str, list[Measurement]]]

RSS_LIMIT_MIB = 150.0
COLD_START_LIMIT = 0.3


@dataclass(frozen=True, slots=True)
class Target:
    """One goal: ``value`` must be at most ``limit`` (or below it, when ``strict``)."""

    name: str
    value: float
    limit: float
    strict: bool = False
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value < self.limit if self.strict else self.value <= self.limit

    def verdict(self) -> str:
        if self.met:
            under = (1 - self.value / self.limit) * 100 if self.limit else 0.0
            return f"met, {under:.0f} % under the limit"
        over = (self.value / self.limit - 1) * 100 if self.limit else float("inf")
        return f"MISSED by {over:.0f} %"

    def line(self) -> str:
        op = "<" if self.strict else "<="
        return (
            f"{'✅' if self.met else '❌'} {self.name}: {self.value:.3g}{self.unit} "
            f"(target {op} {self.limit:g}{self.unit}) — {self.verdict()}"
        )


def _med(runs: Sequence[Measurement], pick: Callable[[Measurement], float | None]) -> float:
    values = [v for v in (pick(m) for m in runs) if v is not None]
    return median(values)


class _Image:
    """Medians of one image's scenarios."""

    def __init__(self, image: PushedImage, scenarios: dict[str, list[Measurement]]) -> None:
        self.image = image
        self.scenarios = scenarios

    def has(self, key: str) -> bool:
        return bool(self.scenarios.get(key))

    def wall(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.wall)

    def cpu(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.cpu)

    def rss_mib(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.maxrss_kib / 1024)

    def engine(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.engine_seconds)

    def read(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.bytes_read)

    def sent(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.source_sent)

    def registry_cpu(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.registry_cpu)

    def total_cpu(self, key: str) -> float:
        return _med(self.scenarios[key], lambda m: m.cpu + m.registry_cpu)

    def cpu_per_gib(self, key: str) -> float:
        moved = self.image.gib * SCENARIOS[key][1]
        return self.cpu(key) / moved if moved else float("nan")


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN renders as a dash


def _times(value: float, size: int) -> str:
    return "-" if value != value else f"{value / MIB:.1f} MiB ({value / size:.2f}x)"


def _table(stats: _Image) -> list[str]:
    lines = [
        (
            "| scenario | runs | wall s | engine s | CPU s | CPU s/GiB moved | peak RSS MiB "
            "| read (JSON) | source sent | registries' CPU s |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, (label, _) in SCENARIOS.items():
        if not stats.has(key):
            continue
        lines.append(
            f"| {label} | {len(stats.scenarios[key])} | {_fmt(stats.wall(key))} "
            f"| {_fmt(stats.engine(key))} | {_fmt(stats.cpu(key))} "
            f"| {_fmt(stats.cpu_per_gib(key))} | {_fmt(stats.rss_mib(key), 1)} "
            f"| {_times(stats.read(key), stats.image.size)} "
            f"| {_times(stats.sent(key), stats.image.size)} | {_fmt(stats.registry_cpu(key))} |"
        )
    return lines


def _ratios(stats: _Image) -> list[str]:
    if not stats.has("copy1/skopeo"):
        return []
    s = stats
    return [
        (
            f"- wall, 2 dests: ours / skopeo sequential = "
            f"{s.wall('copy2/ours') / s.wall('copy2/skopeo-seq'):.2f}, "
            f"ours / skopeo parallel = {s.wall('copy2/ours') / s.wall('copy2/skopeo-par'):.2f}"
        ),
        f"- wall, 1 dest: ours / skopeo = {s.wall('copy1/ours') / s.wall('copy1/skopeo'):.2f}",
        (
            f"- read from the source, 2 dests: ours {s.read('copy2/ours') / s.image.size:.3f}x "
            f"the image (JSON bytes_read); source registry sent "
            f"{s.sent('copy2/ours') / s.image.size:.2f}x for ours, "
            f"{s.sent('copy2/skopeo-seq') / s.image.size:.2f}x for skopeo sequential, "
            f"{s.sent('copy2/skopeo-par') / s.image.size:.2f}x for skopeo parallel"
        ),
        (
            f"- re-sync, 1 dest: ours engine {s.engine('resync1/ours'):.3f} s, ours process "
            f"{s.wall('resync1/ours'):.3f} s, skopeo process {s.wall('resync1/skopeo'):.3f} s "
            f"(engine / skopeo = {s.engine('resync1/ours') / s.wall('resync1/skopeo'):.2f}, "
            f"process / skopeo = {s.wall('resync1/ours') / s.wall('resync1/skopeo'):.2f})"
        ),
        (
            f"- CPU s per GiB moved: 2 dests ours {s.cpu_per_gib('copy2/ours'):.2f} vs skopeo "
            f"{s.cpu_per_gib('copy2/skopeo-seq'):.2f} (seq) / "
            f"{s.cpu_per_gib('copy2/skopeo-par'):.2f} (par); 1 dest ours "
            f"{s.cpu_per_gib('copy1/ours'):.2f} vs skopeo {s.cpu_per_gib('copy1/skopeo'):.2f}"
        ),
        (
            f"- CPU s of the tool plus every registry (the machine's whole work): 2 dests ours "
            f"{s.total_cpu('copy2/ours'):.2f} vs skopeo {s.total_cpu('copy2/skopeo-seq'):.2f} "
            f"(seq) / {s.total_cpu('copy2/skopeo-par'):.2f} (par); 1 dest ours "
            f"{s.total_cpu('copy1/ours'):.2f} vs skopeo {s.total_cpu('copy1/skopeo'):.2f}"
        ),
    ]


def targets(
    results: Results, images: Sequence[PushedImage], cold_start: Sequence[float]
) -> list[Target]:
    checks: list[Target] = []
    rss_by_label: dict[str, float] = {}
    for image in images:
        stats = _Image(image, results.get(image.spec.label, {}))
        label = image.spec.label
        if stats.has("copy1/skopeo"):
            checks += [
                Target(
                    f"[{label}] 2 dests, wall ours / skopeo sequential",
                    stats.wall("copy2/ours") / stats.wall("copy2/skopeo-seq"),
                    0.6,
                ),
                Target(
                    f"[{label}] 2 dests, wall ours / skopeo parallel",
                    stats.wall("copy2/ours") / stats.wall("copy2/skopeo-par"),
                    1.0,
                ),
                Target(
                    f"[{label}] 2 dests, bytes read from the source / image size",
                    stats.read("copy2/ours") / image.size,
                    1.05,
                ),
                Target(
                    f"[{label}] 1 dest, wall ours / skopeo",
                    stats.wall("copy1/ours") / stats.wall("copy1/skopeo"),
                    1.0,
                ),
                Target(
                    f"[{label}] re-sync, engine time / skopeo process time",
                    stats.engine("resync1/ours") / stats.wall("resync1/skopeo"),
                    0.5,
                ),
            ]
        if stats.has("copy2/ours"):
            rss = stats.rss_mib("copy2/ours")
            rss_by_label[label] = rss
            checks.append(
                Target(f"[{label}] peak RSS, 2 dests", rss, RSS_LIMIT_MIB, strict=True, unit=" MiB")
            )
    if "1G" in rss_by_label and "4G" in rss_by_label:
        base = rss_by_label["1G"]
        checks.append(
            Target(
                "peak RSS 4 GiB vs 1 GiB, relative difference",
                abs(rss_by_label["4G"] - base) / base,
                0.10,
            )
        )
    if cold_start:
        checks.append(
            Target(
                "cold start, `ecr-ocir-sync --help` wall (median)",
                median(cold_start),
                COLD_START_LIMIT,
                strict=True,
                unit=" s",
            )
        )
    return checks


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def machine_lines() -> list[str]:
    meminfo = Path("/proc/meminfo").read_text()
    found = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    memory = f"{int(found.group(1)) / 1024 / 1024:.1f} GiB" if found else "?"
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = _version(["git", "rev-parse", "--short", "HEAD"])
    return [
        (
            f"- machine: nproc {len(os.sched_getaffinity(0))}, memory {memory}, CPU {cpu}, "
            f"Linux {platform.release()}; load average at start {load}"
        ),
        (
            f"- software: Python {platform.python_version()}, {_version(['skopeo', '--version'])}, "
            f"{_version(['docker-registry', '--version'])}, tree at {commit} (uncommitted changes "
            "may be included)"
        ),
    ]


def render(
    *,
    title: str,
    command: str,
    started: dt.datetime,
    machine: Sequence[str],
    results: Results,
    images: Sequence[PushedImage],
    cold_start: Sequence[float],
    notes: Sequence[str] = (),
) -> str:
    lines = [
        f"## {title}",
        "",
        f"- command: `{command}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        *machine,
        *notes,
        "",
    ]
    for image in images:
        stats = _Image(image, results.get(image.spec.label, {}))
        lines += [
            (
                f"### {image.spec.label}: {image.size / MIB:.1f} MiB in {image.spec.layers} layers "
                f"(+ config)"
            ),
            "",
            *_table(stats),
            "",
            *_ratios(stats),
            "",
        ]
    if cold_start:
        lines += [
            (
                f"Cold start (`ecr-ocir-sync --help`, {len(cold_start)} runs after a warm-up): "
                f"median {median(cold_start):.3f} s, min {min(cold_start):.3f} s, "
                f"max {max(cold_start):.3f} s"
            ),
            "",
        ]
    checks = targets(results, images, cold_start)
    met = sum(check.met for check in checks)
    lines += [f"### Targets: {met} of {len(checks)} met", ""]
    lines += [f"- {check.line()}" for check in checks]
    lines.append("")
    return "\n".join(lines)


_HEADER = """\
# Benchmark results

Written by `python -m bench.run --write` (see bench/run.py for what each scenario does;
`python -m bench.cpuprofile` shows where our process spends its CPU) and, for the service's
intake and event-to-present time, `python -m bench.intake --write` (see bench/intake.py).
Each mode has one section, replaced when that mode is run again.  Figures are medians.
"""


def update_results_file(path: Path, mode: str, section: str) -> None:
    """Replace this mode's section of ``path`` (between markers), or append it."""
    begin, end = f"<!-- bench:{mode} -->", f"<!-- /bench:{mode} -->"
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _match: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
