"""Run one command and write its own wall time and rusage: ``python -S -I spawn.py OUT CMD...``.

Why a launcher: on Linux a child's ``ru_maxrss`` starts from the RSS of the
process that spawned it (exec keeps the replaced address space's high-water
mark), so children of the benchmark itself would all report at least the
benchmark's own ~40 MiB.  This launcher is a bare interpreter (``-S -I``, only
``os``/``sys``/``time``) of ~8 MiB, which is then the floor.  It also times the
child from spawn to reaping, so interpreter start-up is not in the figures.

OUT gets one line: ``start end exit_code user_seconds system_seconds maxrss_kib``
(start and end on CLOCK_MONOTONIC, comparable between processes).  Imported by
nothing: keep it free of the bench package so it stays small.
"""

import os
import sys
import time


def main() -> int:
    out, command = sys.argv[1], sys.argv[2:]
    start = time.monotonic()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _pid, status, usage = os.wait4(pid, 0)
    end = time.monotonic()
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as handle:  # noqa: PTH123 - pathlib costs the launcher memory
        handle.write(
            f"{start!r} {end!r} {code} {usage.ru_utime!r} {usage.ru_stime!r} {usage.ru_maxrss}\n"
        )
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
