"""Parts of the restart benchmark: the spool's disk use, sampled on a thread, and a
process's peak RSS from /proc."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["SpoolSampler", "allocated_bytes", "peak_rss_kib", "spool_files"]

_SAMPLE_SECONDS = 0.5


def allocated_bytes(directory: Path) -> int:
    """Disk blocks allocated under ``directory`` (what ``du`` counts), 0 if it is absent."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_blocks * 512
            except FileNotFoundError:
                continue  # removed while we walked
    return total


def spool_files(directory: Path) -> list[Path]:
    """Every file left under the spool directory (whatever its name)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file())


def peak_rss_kib(pid: int) -> int:
    """``VmHWM`` of a running process: its peak resident set so far, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmHWM":
            return int(value.split()[0])
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


@dataclass
class SpoolSampler:
    """Samples ``allocated_bytes(directory)`` every 0.5 s on its own thread; keeps the peak."""

    directory: Path
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def sample(self) -> int:
        used = allocated_bytes(self.directory)
        with self._lock:
            self.peak = max(self.peak, used)
            self.samples += 1
        return used

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(_SAMPLE_SECONDS)

    def __enter__(self) -> SpoolSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
