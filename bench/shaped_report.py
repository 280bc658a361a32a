"""The shaped-link benchmark's report: one table, the ratios beside skopeo, the targets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.images import MIB, PushedImage
from bench.measure import median

__all__ = ["Outcome", "render"]

# At MTU 1500 a TCP segment (timestamps on) carries 1448 bytes in a 1514-byte frame;
# tbf on a veth counts the frame.
_MSS, _FRAME = 1448, 1514


@dataclass(slots=True)
class Outcome:
    """One tool's run: wall, when the image appeared in each region, what moved."""

    size: int  # the copied image's bytes (every blob)
    wall: float
    present: dict[str, float]  # region -> seconds after the start
    source_sent: int  # bytes the source registry wrote (its /proc/PID/io wchar)
    bytes_read: int | None  # ours: the JSON's bytes_read
    cpu: float
    rss_kib: int
    forwarded: int | None = None  # request bytes the reset proxy passed to its region
    cuts: int | None = None
    reruns: int = 0  # skopeo processes run again after a failure


_ROWS = {
    "equal2/ours": ("200 / 200 / 200", "ours, one process, 2 regions"),
    "equal2/skopeo": ("200 / 200 / 200", "skopeo, mel then syd"),
    "equal3/ours": ("200 / 200 / 200 / 200", "ours, one process, 3 regions"),
    "equal3/skopeo": ("200 / 200 / 200 / 200", "skopeo, mel, syd, then per"),
    "slow/ours-mel-alone": ("200 / 200", "ours, mel alone"),
    "slow/ours": ("200 / 200 / 50", "ours, one process, 2 regions"),
    "slow/skopeo": ("200 / 200 / 50", "skopeo, mel then syd"),
    "reset/ours": ("200 / 200 / 200, 1 GiB layer, syd reset", "ours, one process, 2 regions"),
    "reset/skopeo": (
        "200 / 200 / 200, 1 GiB layer, syd reset",
        "skopeo, mel then syd (run again)",
    ),
}


class _Figures:
    """Medians over the repetitions of each scenario."""

    def __init__(self, outcomes: dict[str, list[Outcome]]) -> None:
        self.outcomes = outcomes

    def get(self, key: str, pick: Callable[[Outcome], float | None]) -> float:
        values = [v for v in (pick(o) for o in self.outcomes.get(key, [])) if v is not None]
        return median(values)

    def wall(self, key: str) -> float:
        return self.get(key, lambda o: o.wall)

    def present(self, key: str, region: str) -> float:
        return self.get(key, lambda o: o.present.get(region))


def _cell(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN: not measured


def _table(fig: _Figures) -> list[str]:
    lines = [
        (
            "| links Mbit/s (ECR / mel / syd / per) | tool | wall s | mel present s "
            "| syd present s | per present s | source sent | read (JSON) | CPU s | peak RSS MiB |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, (links, tool) in _ROWS.items():
        if key not in fig.outcomes:
            continue
        runs = len(fig.outcomes[key])
        read = fig.get(key, lambda o: None if o.bytes_read is None else o.bytes_read / o.size)
        lines.append(
            f"| {links} | {tool} ({runs}) | {_cell(fig.wall(key))} "
            + " ".join(f"| {_cell(fig.present(key, r))}" for r in ("mel", "syd", "per"))
            + f" | {fig.get(key, lambda o: o.source_sent / o.size):.2f}x"
            + f" | {'-' if read != read else f'{read:.3f}x'}"
            + f" | {_cell(fig.get(key, lambda o: o.cpu))}"
            + f" | {_cell(fig.get(key, lambda o: o.rss_kib) / 1024, 1)} |"
        )
    return lines


@dataclass(frozen=True, slots=True)
class _Target:
    what: str
    value: float
    limit: float

    def line(self) -> str:
        met = self.value <= self.limit
        mark = "✅" if met else "❌"
        return f"- {mark} {self.what}: {self.value:.3f} (target <= {self.limit:g})"


def _findings(
    fig: _Figures, images: tuple[PushedImage, PushedImage], slow: float, reset_at: float
) -> list[str]:
    size, reset_size = images[0].size, images[1].size
    limit = size * 8 / (slow * 1_000_000)
    wire = limit * _FRAME / _MSS
    alone = fig.present("slow/ours-mel-alone", "mel")
    ours_re = fig.get("reset/ours", lambda o: o.forwarded) - reset_size
    skopeo_re = fig.get("reset/skopeo", lambda o: o.forwarded) - reset_size
    mel_slow, syd_slow = fig.present("slow/ours", "mel"), fig.present("slow/ours", "syd")
    mel_skopeo, syd_skopeo = fig.present("slow/skopeo", "mel"), fig.present("slow/skopeo", "syd")
    read = fig.get("reset/ours", lambda o: o.bytes_read) / reset_size
    sent = fig.get("reset/ours", lambda o: o.source_sent) / reset_size
    skopeo_sent = fig.get("reset/skopeo", lambda o: o.source_sent) / reset_size
    reruns = fig.get("reset/skopeo", lambda o: o.reruns)
    lines = [
        (
            f"- equal links, 2 regions: ours {fig.wall('equal2/ours'):.2f} s, "
            f"skopeo's two copies {fig.wall('equal2/skopeo'):.2f} s"
        ),
        (
            f"- one region (mel): ours alone {fig.wall('slow/ours-mel-alone'):.2f} s, skopeo's "
            f"copy to mel {fig.present('equal2/skopeo', 'mel'):.2f} s (its first, in equal links)"
        ),
        (
            f"- equal links, 3 regions: ours {fig.wall('equal3/ours'):.2f} s, "
            f"skopeo's three copies {fig.wall('equal3/skopeo'):.2f} s"
        ),
        (
            f"- syd at {slow:g} Mbit/s: ours has the image in mel at {mel_slow:.2f} s (mel alone: "
            f"{alone:.2f} s) and in syd at {syd_slow:.2f} s; syd's link limit (image bytes at "
            f"{slow:g} Mbit/s, headers not counted) is {limit:.2f} s, {wire:.2f} s counting the "
            f"headers tbf sees ({_FRAME}-byte frames per {_MSS} bytes of TCP payload): "
            f"{syd_slow / wire:.3f}x that; skopeo: mel at {mel_skopeo:.2f} s, syd at "
            f"{syd_skopeo:.2f} s ({syd_skopeo - mel_skopeo:.2f} s for syd alone)"
        ),
        (
            f"- reset at {reset_at:.0%} of syd's upload of the {reset_size / MIB:.1f} MiB image "
            f"(one layer): ours read {read:.3f}x the image (JSON; "
            f"the source sent {sent:.3f}x) and sent syd {ours_re / MIB:.1f} MiB beyond the image "
            f"(headers included) after {reset_at * reset_size / MIB:.1f} MiB had reached it; "
            f"{ours_re / (reset_at * reset_size):.3f}x of what it had received; skopeo "
            f"(failed, run again {reruns:g} time(s); both regions) had the source send "
            f"{skopeo_sent:.3f}x and sent syd {skopeo_re / MIB:.1f} MiB beyond the image "
            f"({skopeo_re / (reset_at * reset_size):.3f}x of what it had received)"
        ),
    ]
    targets = [
        _Target(
            "equal links, 2 regions, wall ours / skopeo's sequential copies",
            fig.wall("equal2/ours") / fig.wall("equal2/skopeo"),
            0.55,
        ),
        _Target(
            "equal links, 3 regions, wall ours / skopeo's sequential copies",
            fig.wall("equal3/ours") / fig.wall("equal3/skopeo"),
            0.40,
        ),
        _Target(
            "slow syd, mel present (ours, with syd) / mel present (ours, mel alone)",
            mel_slow / alone,
            1.15,
        ),
        _Target(
            f"slow syd, syd present / its link's limit ({limit:.2f} s)",
            syd_slow / limit,
            1.05,
        ),
        _Target(
            "reset, bytes read from the source (JSON) / image size",
            read,
            1.05,
        ),
    ]
    met = sum(t.value <= t.limit for t in targets)
    return [
        *lines,
        "",
        f"### Targets (issue 11): {met} of {len(targets)} met",
        "",
        *(t.line() for t in targets),
    ]


def render(
    *,
    command: str,
    started: dt.datetime,
    machine: Sequence[str],
    images: tuple[PushedImage, PushedImage],
    outcomes: dict[str, list[Outcome]],
    rates: tuple[float, float],
    reset_at: float,
    seconds: float,
) -> str:
    fast, slow = rates
    fig = _Figures(outcomes)
    image, reset_image = images
    lines = [
        "## `shaped` run: registries in network namespaces behind tbf-shaped links",
        "",
        f"- command: `sudo {command}` (as root; `make bench` runs it)",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        *machine,
        (
            f"- images: {image.size / MIB:.1f} MiB in {image.spec.layers} layers (+ config) for "
            f"the equal and slow cases, {reset_image.size / MIB:.1f} MiB in "
            f"{reset_image.spec.layers} layer (+ config) for the reset; links {fast:g} Mbit/s, "
            f"syd {slow:g} in the slow case; tbf only, no added delay"
        ),
        (
            "- present = first HEAD of the manifest (polled every 50 ms) answering its digest, "
            "from the start; for skopeo the end of that region's copy"
        ),
        f"- total run time {seconds:.0f} s; figures are medians of (runs)",
        "",
        *_table(fig),
        "",
        *_findings(fig, images, slow, reset_at),
    ]
    return "\n".join(lines) + "\n"
