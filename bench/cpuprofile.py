"""Where our process spends its CPU: ``.venv/bin/python -m bench.cpuprofile [options]``.

Sets up the same local registries as bench.run, pushes one generated image,
and runs ``ecr-ocir-sync copy`` to fresh destinations under cProfile (or
py-spy, when ``--py-spy`` names its binary), then prints the top functions by
own time.  The profile file stays under bench/.work/profile for snakeviz,
pstats or ``py-spy``'s own viewers.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import sys
from pathlib import Path

from bench.images import MIB, ImageSpec, push_image
from bench.measure import run_processes
from bench.registries import Lab
from bench.scenarios import child_env, ours_binary

WORK = Path(__file__).resolve().parent / ".work" / "profile"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpuprofile", description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="image size in MiB (default 256)")
    parser.add_argument("--layers", type=int, default=4, help="layers (default 4)")
    parser.add_argument("--dests", type=int, default=2, help="destinations (default 2)")
    parser.add_argument("--top", type=int, default=30, help="functions to list (default 30)")
    parser.add_argument(
        "--py-spy", metavar="PATH", help="sample with this py-spy binary instead of cProfile"
    )
    args = parser.parse_args(argv)
    if not (1 <= args.mib <= 8192 and 1 <= args.layers <= 64 and 1 <= args.dests <= 8):
        raise SystemExit("bench.cpuprofile: --mib 1..8192, --layers 1..64, --dests 1..8")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    output = WORK / ("profile.svg" if args.py_spy else "profile.pstats")
    spec = ImageSpec(f"{args.mib}M", args.layers, args.mib * MIB // args.layers)
    with Lab(WORK / "registries") as lab:
        image = push_image(lab.src.url, spec)
        dests = lab.fresh_destinations(args.dests)
        copy = ["copy", "--json"]
        for server in [lab.src, *dests]:
            copy += ["--insecure", server.host]
        copy.append(f"{lab.src.host}/{image.repository}:{image.tag}")
        copy += [f"{d.host}/mirror/profiled:{image.tag}" for d in dests]
        if args.py_spy:
            command = [args.py_spy, "record", "--rate", "250", "-o", str(output), "--"]
            command += [str(ours_binary()), *copy]
        else:
            command = [sys.executable, "-m", "cProfile", "-o", str(output)]
            command += ["-m", "ecr_ocir_sync.cli.main", *copy]
        run = run_processes([command], logs=WORK / "logs", timeout=600, env=child_env())
        run.check("profiled copy")
    print(
        f"{image.size / MIB:.0f} MiB to {args.dests} destination(s): wall {run.wall:.2f} s, "
        f"CPU {run.cpu_seconds:.2f} s (profiler overhead included); profile in {output}"
    )
    if not args.py_spy:
        stats = pstats.Stats(str(output))
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
