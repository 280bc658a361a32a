"""Benchmark ecr-ocir-sync against skopeo: ``.venv/bin/python -m bench.run [options]``.

Everything runs on this machine: Debian's docker-registry on free 127.0.0.1
ports (plain HTTP) as the source ("ECR") and the destinations ("OCIR
regions"), storing under bench/.work (deleted afterwards).  Generated images
(random, incompressible layers) are pushed to the source once; then, per
image and repetition:

1. 2 destinations: ours (one process, two DESTs) vs two skopeo copies run one
   after the other, and vs two skopeo processes at once.  Wall time, and the
   bytes read from the source (ours: the JSON's bytes_read; both: what the
   source registry wrote, from its /proc/PID/io).
2. 1 destination: ours vs one skopeo copy.
3. re-sync when the destination already holds the image: ours (process wall,
   and the JSON's ``seconds``: the engine's own time) vs a skopeo process; plus
   the CLI's cold start (``ecr-ocir-sync --help``).
4. peak RSS of our process (``wait4``'s ru_maxrss) for each image; with
   --large also for a 4 GiB image, to see that memory does not grow with size.
5. CPU seconds (user + sys, ``wait4``) per GiB landed at the destinations.

Every copy gets new, empty destination registries and skopeo's blob-info cache
is deleted before each skopeo process, so neither tool can skip or mount.

Modes: --quick (20 MiB image, one repetition, well under a minute), default
(20 MiB and 1 GiB), --large (default plus a 4 GiB image, our copy only).
--write puts the report into bench/RESULTS.md (this mode's section replaced).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
import time
from pathlib import Path

from bench.images import GIB, MIB, ImageSpec, PushedImage, push_image
from bench.measure import launcher_floor_kib, median
from bench.registries import Lab
from bench.report import machine_lines, render, targets, update_results_file
from bench.scenarios import Bench, cold_start

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work"
RESULTS = BENCH_DIR / "RESULTS.md"

SMALL = ImageSpec("20M", layers=4, layer_payload=5 * MIB)
ONE_GIB = ImageSpec("1G", layers=8, layer_payload=GIB // 8)
FOUR_GIB = ImageSpec("4G", layers=8, layer_payload=4 * GIB // 8)

SMALL_IMAGE_MIN_REPEAT = 3  # seconds-long runs: three of them cost little and steady the median
COLD_START_RUNS = 7


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark ecr-ocir-sync against skopeo on local registries.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="the 20 MiB image only, one repetition (< 1 min)"
    )
    size.add_argument(
        "--large",
        action="store_true",
        help="also a 4 GiB image (our copy only: peak RSS against the 1 GiB one); "
        "needs ~14 GiB of disk and a few minutes",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="repetitions of every scenario, figures are medians (default 1; the 20 MiB "
        f"image runs at least {SMALL_IMAGE_MIN_REPEAT} times except with --quick)",
    )
    parser.add_argument("--write", action="store_true", help=f"put the report into {RESULTS.name}")
    return parser


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _check_disk(specs: list[ImageSpec]) -> None:
    # The source keeps every image; two destinations hold the largest one at a time.
    needed = sum(s.payload for s in specs) + 2 * max(s.payload for s in specs) + GIB
    WORK.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(WORK).free
    if free < needed:
        raise SystemExit(
            f"bench: {needed / GIB:.1f} GiB of free disk needed under {WORK}, "
            f"{free / GIB:.1f} GiB available"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 1 <= args.repeat <= 20:
        raise SystemExit("bench: --repeat must be between 1 and 20")
    mode = "quick" if args.quick else "large" if args.large else "default"
    plan: list[tuple[ImageSpec, int, bool]] = []  # spec, repetitions, every scenario?
    if args.quick:
        plan.append((SMALL, 1, True))
    else:
        plan += [
            (SMALL, max(args.repeat, SMALL_IMAGE_MIN_REPEAT), True),
            (ONE_GIB, args.repeat, True),
        ]
        if args.large:
            plan.append((FOUR_GIB, args.repeat, False))
    _check_disk([spec for spec, _, _ in plan])

    command = shlex.join([".venv/bin/python", "-m", "bench.run", *sys.argv[1:]])
    started = dt.datetime.now(dt.UTC)
    machine = machine_lines()
    began = time.monotonic()
    logs = WORK / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    images: list[PushedImage] = []

    _log(f"bench: {mode} run; logs of every process under {logs}")
    with Lab(WORK / "registries") as lab:
        _log("bench: cold start of the CLI")
        starts = cold_start(logs / "cold-start", COLD_START_RUNS)
        floor = launcher_floor_kib(logs / "launcher-floor")
        _log(f"  --help: median {median(starts):.3f} s")
        bench = Bench(lab, logs)
        for spec, repeat, everything in plan:
            pushing = time.monotonic()
            image = push_image(lab.src.url, spec)
            images.append(image)
            _log(
                f"bench: pushed {spec.label} ({image.size / MIB:.1f} MiB, {spec.layers} layers) "
                f"in {time.monotonic() - pushing:.1f} s; {repeat} repetition(s)"
            )
            for _ in range(repeat):
                if everything:
                    bench.full(image)
                else:
                    bench.memory_only(image)

    notes = [
        f"- total run time {time.monotonic() - began:.0f} s (pushing the images included)",
        (
            "- the machine's cores are shared with the registries (and any other work on it): "
            "wall times include their contention"
        ),
        (
            f"- peak RSS is each process's own ru_maxrss, measured under a launcher whose floor is "
            f"{floor / 1024:.1f} MiB (bench/spawn.py); wall and CPU exclude the launcher"
        ),
        (
            "- the 20 MiB image's figures are dominated by process start-up (Python's ~0.1 s "
            "against Go's few ms), the 1 GiB image's by moving bytes"
        ),
    ]
    report = render(
        title=f"`{mode}` run",
        command=command,
        started=started,
        machine=machine,
        results=bench.results,
        images=images,
        cold_start=starts,
        notes=notes,
    )
    print(report)
    if args.write:
        update_results_file(RESULTS, mode, report)
        _log(f"bench: wrote the {mode} section of {RESULTS}")
    missed = [t for t in targets(bench.results, images, starts) if not t.met]
    _log(f"bench: {len(missed)} target(s) missed" if missed else "bench: every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
