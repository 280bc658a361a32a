"""Timing, CPU and peak RSS of child processes, from ``os.wait4``'s rusage.

Each measured command runs under bench/spawn.py, a bare interpreter that
spawns it, reaps it with ``os.wait4`` and writes its wall time, ``ru_utime +
ru_stime`` and ``ru_maxrss`` (KiB on Linux): the child's own figures, not the
benchmark's (see spawn.py for why).  Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ProcessStats",
    "Run",
    "launcher_floor_kib",
    "median",
    "proc_cpu_seconds",
    "proc_written_bytes",
    "run_processes",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LAUNCHER = (sys.executable, "-S", "-I", str(Path(__file__).with_name("spawn.py")))


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """One reaped child."""

    command: tuple[str, ...]
    returncode: int
    cpu_seconds: float  # user + system
    maxrss_kib: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class Run:
    """One or more children started together; ``wall`` runs until the last one ended."""

    wall: float
    processes: list[ProcessStats] = field(default_factory=list)

    @property
    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds for p in self.processes)

    @property
    def maxrss_kib(self) -> int:
        return max((p.maxrss_kib for p in self.processes), default=0)

    @property
    def ok(self) -> bool:
        return all(p.returncode == 0 for p in self.processes)

    def check(self, what: str) -> Run:
        """Raise with the children's stderr unless every one exited 0."""
        if not self.ok:
            details = "\n".join(
                f"$ {' '.join(p.command)}\n  exit {p.returncode}\n  {p.stderr.strip()[-1500:]}"
                for p in self.processes
                if p.returncode != 0
            )
            raise RuntimeError(f"{what} failed:\n{details}")
        return self


def run_processes(
    commands: Sequence[Sequence[str]],
    *,
    logs: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> Run:
    """Start every command at once (each under the launcher); wall is first start to last exit.

    stdout and stderr go to files under ``logs`` (no pipe can fill up and stall a
    child).  Each launcher leads its own session, so a command that outlives
    ``timeout`` is killed with its launcher, by process group.
    """
    logs.mkdir(parents=True, exist_ok=True)
    files = []
    launchers: list[subprocess.Popen[bytes]] = []
    try:
        for index, command in enumerate(commands):
            out = (logs / f"{index}.out").open("wb")
            err = (logs / f"{index}.err").open("wb")
            files += [out, err]
            launchers.append(
                subprocess.Popen(
                    [*_LAUNCHER, str(logs / f"{index}.usage"), *command],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        for launcher in launchers:
            launcher.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as expired:
        raise RuntimeError(f"{commands} ran past {timeout:.0f} s; killed") from expired
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait(timeout=30)
        for handle in files:
            handle.close()
    stats = []
    starts, ends = [], []
    for index, (command, launcher) in enumerate(zip(commands, launchers, strict=True)):
        usage_file = logs / f"{index}.usage"
        stderr = (logs / f"{index}.err").read_text(errors="replace")
        if not usage_file.exists():
            raise RuntimeError(
                f"launcher of {command} failed (exit {launcher.returncode}): {stderr}"
            )
        start, end, code, user, system, maxrss = usage_file.read_text().split()
        starts.append(float(start))
        ends.append(float(end))
        stats.append(
            ProcessStats(
                command=tuple(command),
                returncode=int(code),
                cpu_seconds=float(user) + float(system),
                maxrss_kib=int(maxrss),
                stdout=(logs / f"{index}.out").read_text(errors="replace"),
                stderr=stderr,
            )
        )
    return Run(wall=max(ends) - min(starts), processes=stats)


def launcher_floor_kib(logs: Path) -> int:
    """The peak RSS the launcher itself gives a child: figures near it mean \"at most this\"."""
    run = run_processes([["true"]], logs=logs, timeout=30)
    return run.processes[0].maxrss_kib


def proc_cpu_seconds(pid: int) -> float:
    """user + system seconds a running process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the comm field: state is fields[0]; utime and stime are fields 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def proc_written_bytes(pid: int) -> int:
    """``wchar`` of a running process: bytes it wrote, sockets and sendfile included."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "wchar":
            return int(value)
    raise RuntimeError(f"/proc/{pid}/io has no wchar line")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
