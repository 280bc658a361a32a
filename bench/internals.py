"""What each patched library internal buys: ``.venv/bin/python -m bench.internals``.

The project reaches into two libraries' internals (see tests/test_internals.py
for the tests that fail when those change).  This measures each one against
the same code without it, in the same run, as child processes:

1. ``httpx._main`` stand-in (ecr_ocir_sync/_startup.py): ``ecr-ocir-sync
   --help`` wall time, as shipped vs with httpx imported first (which loads
   httpx's command line, and with it click, rich and pygments).
2. ``httpcore.AsyncHTTP11Connection.READ_NUM_BYTES`` = 1 MiB
   (registry/transport.py): CPU seconds of ``ecr-ocir-sync copy`` of a
   generated image to two fresh local registries, as shipped vs httpcore's
   own 64 KiB reads.

Median of ``--runs`` runs each, variants interleaved so that a busy machine
slows both alike.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bench.images import MIB, ImageSpec, push_image
from bench.measure import Run, median, run_processes
from bench.registries import Lab
from bench.scenarios import child_env

WORK = Path(__file__).resolve().parent / ".work" / "internals"

_MAIN = "import sys; from ecr_ocir_sync.cli.main import main; sys.exit(main())"
# httpx imported before ecr_ocir_sync: _startup finds it loaded and puts no stand-in in.
_WITH_HTTPX_CLI = "import httpx; " + _MAIN
_READ_64_KIB = (
    "import sys, ecr_ocir_sync.registry.transport as t; t._READ_BYTES = 64 * 1024; "
    "from ecr_ocir_sync.cli.main import main; sys.exit(main())"
)


def _child(code: str, *arguments: str) -> list[str]:
    return [sys.executable, "-c", code, *arguments]


def _start_times(runs: int) -> dict[str, float]:
    variants = {"as shipped": _MAIN, "httpx._main loaded": _WITH_HTTPX_CLI}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(runs + 1):  # the first round warms the page cache, unmeasured
        for name, code in variants.items():
            run = run_processes(
                [_child(code, "--help")],
                logs=WORK / "start" / f"{name}-{index}".replace(" ", "_"),
                timeout=60,
                env=child_env(),
            ).check(f"--help ({name})")
            if index:
                seconds[name].append(run.wall)
    return {name: median(values) for name, values in seconds.items()}


def _copies(mib: int, runs: int) -> dict[str, tuple[float, float]]:
    variants = {"1 MiB reads (shipped)": _MAIN, "64 KiB reads (httpcore)": _READ_64_KIB}
    found: dict[str, list[Run]] = {name: [] for name in variants}
    spec = ImageSpec(f"{mib}M", 4, mib * MIB // 4)
    with Lab(WORK / "registries") as lab:
        image = push_image(lab.src.url, spec)
        for index in range(runs):
            for name, code in variants.items():
                dests = lab.fresh_destinations(2)
                copy = ["copy", "--json"]
                for server in [lab.src, *dests]:
                    copy += ["--insecure", server.host]
                copy.append(f"{lab.src.host}/{image.repository}:{image.tag}")
                copy += [f"{d.host}/mirror/internals:{image.tag}" for d in dests]
                run = run_processes(
                    [_child(code, *copy)],
                    logs=WORK / "copy" / f"{index}-{name[:6].strip()}",
                    timeout=600,
                    env=child_env(),
                ).check(f"copy ({name})")
                found[name].append(run)
    return {
        name: (median([r.cpu_seconds for r in runs_]), median([r.wall for r in runs_]))
        for name, runs_ in found.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.internals", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--mib", type=int, default=256, help="image size (default 256 MiB)")
    args = parser.parse_args(argv)
    if not (1 <= args.runs <= 30 and 1 <= args.mib <= 4096):
        raise SystemExit("bench.internals: --runs 1..30, --mib 1..4096")
    shutil.rmtree(WORK, ignore_errors=True)
    try:
        start = _start_times(args.runs * 3)
        shipped = start["as shipped"]
        print(f"ecr-ocir-sync --help, median of {args.runs * 3}:")
        for name, value in start.items():
            print(f"  {name:28} {value * 1000:7.1f} ms  {value / shipped:5.2f}x")
        copies = _copies(args.mib, args.runs)
        cpu_shipped = copies["1 MiB reads (shipped)"][0]
        print(f"copy {args.mib} MiB to 2 destinations, median of {args.runs}:")
        for name, (cpu, wall) in copies.items():
            print(f"  {name:28} CPU {cpu:6.2f} s  {cpu / cpu_shipped:5.2f}x   wall {wall:6.2f} s")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
