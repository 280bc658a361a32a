"""Shaped links for benchmarks: each registry in its own network namespace.

A client namespace (where the tools run) is joined to one namespace per registry
by a veth pair; both ends of every pair are shaped with ``tc qdisc … tbf`` to
the link's rate (``netem`` is not available, so there is no added delay: the
links are rate-limited, not long).  Every address lives inside these namespaces
(``10.250.N.1`` the client's end, ``10.250.N.2`` the registry's), nothing is
added to the host's own network, and :meth:`ShapedNet.close` removes all of it
— the processes still inside included.  Namespaces left by an interrupted run
(same prefix) are removed first.  Needs root, ``ip`` and ``tc``.

The benchmark process itself enters the client namespace (``setns`` on the
calling thread, via libc): threads and children it starts afterwards are there
too, so the tools, the pushes and the pollers all cross the shaped links.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["PREFIX", "Link", "ShapedNet", "require_root"]

PREFIX = "eosbench-"
CLIENT = f"{PREFIX}client"
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/run/netns")


def require_root(who: str = "bench.shaped") -> None:
    """Stop with what is missing: root, ``ip`` and ``tc``."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        raise SystemExit(
            f"{who}: needs root (network namespaces, veth pairs, tc)"
            + (f" and {', '.join(missing)} on PATH" if missing else "")
            + "; run it as root, e.g. `sudo make bench`"
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _burst(mbit: float) -> int:
    # 10 ms of the rate, at least 32 KiB: tbf needs a bucket of a few packets (GSO
    # super-packets included) to reach its rate; a larger one lets bursts through.
    return max(32 * 1024, int(mbit * 1_000_000 / 8 / 100))


def _setns(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    with path.open("rb") as handle:
        if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({path}): {os.strerror(error)}")


@dataclass(slots=True)
class Link:
    """One registry's namespace and its link to the client (``index`` picks the subnet)."""

    name: str
    index: int
    mbit: float

    @property
    def namespace(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def address(self) -> str:
        return f"10.250.{self.index}.2"

    @property
    def client_device(self) -> str:
        return f"to-{self.name}"[:15]


@dataclass
class ShapedNet:
    """The client namespace and one shaped link per name of ``rates`` (Mbit/s)."""

    rates: dict[str, float]
    links: dict[str, Link] = field(default_factory=dict)
    _home: int | None = None

    def __enter__(self) -> ShapedNet:
        remove_leftovers()
        try:
            _ip("netns", "add", CLIENT)
            _ip("-n", CLIENT, "link", "set", "lo", "up")
            for index, (name, mbit) in enumerate(self.rates.items(), start=1):
                self._add_link(Link(name, index, mbit))
            self._enter_client()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _add_link(self, link: Link) -> None:
        self.links[link.name] = link
        _ip("netns", "add", link.namespace)
        _ip("-n", link.namespace, "link", "set", "lo", "up")
        # Created directly inside the two namespaces: nothing ever exists in the host's.
        _ip(
            "link", "add", link.client_device, "netns", CLIENT, "type", "veth",
            "peer", "name", "uplink", "netns", link.namespace,
        )  # fmt: skip
        _ip("-n", CLIENT, "addr", "add", f"10.250.{link.index}.1/24", "dev", link.client_device)
        _ip("-n", link.namespace, "addr", "add", f"{link.address}/24", "dev", "uplink")
        _ip("-n", CLIENT, "link", "set", link.client_device, "up")
        _ip("-n", link.namespace, "link", "set", "uplink", "up")
        self._shape(link, "add")

    def _shape(self, link: Link, verb: str) -> None:
        for namespace, device in ((CLIENT, link.client_device), (link.namespace, "uplink")):
            _ip(
                "netns", "exec", namespace, "tc", "qdisc", verb, "dev", device, "root", "tbf",
                "rate", f"{link.mbit:g}mbit", "burst", str(_burst(link.mbit)), "latency", "50ms",
            )  # fmt: skip

    def set_rate(self, name: str, mbit: float) -> None:
        """Reshape one link, both directions (``tc qdisc change``)."""
        link = self.links[name]
        link.mbit = mbit
        self._shape(link, "change")

    def _enter_client(self) -> None:
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        _setns(_NETNS_DIR / CLIENT)

    def close(self) -> None:
        """Back to the host's namespace; every process in ours killed, every namespace
        (and with it every veth, address and qdisc) deleted."""
        if self._home is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(self._home, _CLONE_NEWNET)
            os.close(self._home)
            self._home = None
        remove_leftovers()
        self.links.clear()


def _namespaces() -> list[str]:
    if not _NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in _NETNS_DIR.iterdir() if p.name.startswith(PREFIX))


def remove_leftovers() -> None:
    """Delete every namespace of ours, first killing what still runs in it (only
    processes this benchmark started can be there)."""
    for namespace in _namespaces():
        pids = subprocess.run(
            ["ip", "netns", "pids", namespace],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(
            ["ip", "netns", "del", namespace], capture_output=True, timeout=30, check=False
        )
