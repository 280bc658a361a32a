"""The measured runs: our CLI and skopeo, copying one image to fresh destinations.

Before every timed run the page cache's dirty pages are flushed (``os.sync``),
so one run's writeback does not land in the next one's time; skopeo's
blob-info cache is deleted before each skopeo process, and every copy gets
new, empty destination registries, so both tools really move every byte.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.registry import RegistryServer

from bench.images import PushedImage
from bench.measure import Run, run_processes
from bench.registries import Lab, manifest_digest

__all__ = [
    "SCENARIOS",
    "Bench",
    "Measurement",
    "clear_skopeo_cache",
    "cold_start",
    "ours_binary",
]

# key -> (label, destinations the bytes land at; 0 where nothing is moved)
SCENARIOS: dict[str, tuple[str, int]] = {
    "copy2/ours": ("2 dests: ours, one process", 2),
    "copy2/skopeo-seq": ("2 dests: skopeo x2, sequential", 2),
    "copy2/skopeo-par": ("2 dests: skopeo x2, parallel", 2),
    "copy1/ours": ("1 dest: ours", 1),
    "copy1/skopeo": ("1 dest: skopeo", 1),
    "resync2/ours": ("re-sync 2 dests: ours", 0),
    "resync1/ours": ("re-sync 1 dest: ours", 0),
    "resync1/skopeo": ("re-sync 1 dest: skopeo", 0),
}

_SKOPEO_CACHE = "blob-info-cache-v1.boltdb"
_DEST_NAMESPACE = "mirror"


def ours_binary() -> Path:
    """The CLI's console script beside the interpreter running the benchmark (the venv's),
    its package compiled to bytecode first (see :func:`compile_package`)."""
    compile_package()
    candidate = Path(sys.executable).parent / "ecr-ocir-sync"
    if candidate.exists():
        return candidate
    found = shutil.which("ecr-ocir-sync")
    if found is None:
        raise RuntimeError("ecr-ocir-sync is not installed: run `make venv` first")
    return Path(found)


def compile_package() -> None:
    """Write the package's bytecode, as the image does (Dockerfile: compileall): from an
    editable install under PYTHONDONTWRITEBYTECODE=1 every run would otherwise compile
    each module of ours again (~60 ms of each start, measured) and the figures would
    not be the image's."""
    import compileall  # noqa: PLC0415 - once per benchmark
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("ecr_ocir_sync")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ecr_ocir_sync is not importable: run `make venv` first")
    for directory in spec.submodule_search_locations:
        compileall.compile_dir(directory, quiet=1)


def _skopeo_cache_files() -> list[Path]:
    home = Path.home()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share")
    return [
        Path("/var/lib/containers/cache") / _SKOPEO_CACHE,
        data_home / "containers/cache" / _SKOPEO_CACHE,
    ]


def clear_skopeo_cache() -> None:
    """Forget where skopeo has seen blobs, so it copies rather than mounts or skips."""
    for path in _skopeo_cache_files():
        path.unlink(missing_ok=True)


def child_env() -> dict[str, str]:
    """The environment for both tools: no proxies (everything is on loopback)."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def cold_start(logs: Path, runs: int) -> list[float]:
    """Wall seconds of ``ecr-ocir-sync --help``, after one unmeasured warm-up run."""
    command = [str(ours_binary()), "--help"]
    run_processes([command], logs=logs / "warmup", timeout=60, env=child_env()).check("--help")
    return [
        run_processes([command], logs=logs / str(i), timeout=60, env=child_env())
        .check("--help")
        .wall
        for i in range(runs)
    ]


@dataclass(slots=True)
class Measurement:
    """One timed run of one scenario."""

    scenario: str
    wall: float
    cpu: float  # the tool's processes, user + system
    maxrss_kib: int  # the largest of the tool's processes
    source_sent: int  # bytes the source registry wrote while the run lasted
    registry_cpu: float  # CPU every registry spent while the run lasted
    bytes_read: int | None = None  # ours: the JSON's bytes_read
    engine_seconds: float | None = None  # ours: the JSON's seconds (the copy itself)


@dataclass
class Bench:
    """Runs the scenarios for images in ``lab``'s source registry."""

    lab: Lab
    logs: Path
    results: dict[str, dict[str, list[Measurement]]] = field(default_factory=dict)
    _serial: int = 0

    def _timeout(self, image: PushedImage) -> float:
        return 120.0 + 240.0 * image.gib

    def _log_dir(self, name: str) -> Path:
        self._serial += 1
        return self.logs / f"{self._serial:03d}-{name.replace('/', '-')}"

    def _record(self, image: PushedImage, measurement: Measurement) -> Measurement:
        per_image = self.results.setdefault(image.spec.label, {})
        per_image.setdefault(measurement.scenario, []).append(measurement)
        m = measurement
        engine = "" if m.engine_seconds is None else f", engine {m.engine_seconds:.2f} s"
        print(
            f"  {image.spec.label:>4} {m.scenario:<17} wall {m.wall:7.2f} s{engine}, "
            f"CPU {m.cpu:6.2f} s, RSS {m.maxrss_kib / 1024:6.1f} MiB, "
            f"source sent {m.source_sent / image.size:.2f}x",
            file=sys.stderr,
            flush=True,
        )
        return measurement

    def _timed(self, scenario: str, runs: list[list[list[str]]], image: PushedImage) -> list[Run]:
        """Each item of ``runs`` is a batch of commands started together; batches in turn."""
        done: list[Run] = []
        for index, batch in enumerate(runs):
            if "skopeo" in scenario:
                clear_skopeo_cache()
            os.sync()
            done.append(
                run_processes(
                    batch,
                    logs=self._log_dir(f"{scenario}-{index}"),
                    timeout=self._timeout(image),
                    env=child_env(),
                ).check(scenario)
            )
        return done

    def _measure(
        self, scenario: str, runs: list[list[list[str]]], image: PushedImage
    ) -> tuple[Measurement, list[Run]]:
        sent_before = self.lab.source_bytes_served()
        cpu_before = self.lab.registry_cpu_seconds()
        done = self._timed(scenario, runs, image)
        measurement = Measurement(
            scenario=scenario,
            wall=sum(run.wall for run in done),
            cpu=sum(run.cpu_seconds for run in done),
            maxrss_kib=max(run.maxrss_kib for run in done),
            source_sent=self.lab.source_bytes_served() - sent_before,
            registry_cpu=self.lab.registry_cpu_seconds() - cpu_before,
        )
        return measurement, done

    # -- the two tools ------------------------------------------------------

    def _source_ref(self, image: PushedImage) -> str:
        return f"{self.lab.src.host}/{image.repository}:{image.tag}"

    def _dest_repository(self, image: PushedImage) -> str:
        return f"{_DEST_NAMESPACE}/{image.repository.rpartition('/')[2]}"

    def _dest_ref(self, server: RegistryServer, image: PushedImage) -> str:
        return f"{server.host}/{self._dest_repository(image)}:{image.tag}"

    def _ours_command(self, image: PushedImage, dests: list[RegistryServer]) -> list[str]:
        command = [str(ours_binary()), "copy"]
        for server in [self.lab.src, *dests]:
            command += ["--insecure", server.host]
        return [
            *command,
            "--json",
            self._source_ref(image),
            *(self._dest_ref(d, image) for d in dests),
        ]

    def _skopeo_command(self, image: PushedImage, dest: RegistryServer) -> list[str]:
        return [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{self._source_ref(image)}",
            f"docker://{self._dest_ref(dest, image)}",
        ]

    def _verify(self, image: PushedImage, dests: list[RegistryServer], who: str) -> None:
        for server in dests:
            found = manifest_digest(server, self._dest_repository(image), image.tag)
            if found != image.digest:
                raise RuntimeError(
                    f"{who}: {server.host} holds {found} for {image.repository}, "
                    f"expected {image.digest}"
                )

    def ours(self, scenario: str, image: PushedImage, dests: list[RegistryServer]) -> Measurement:
        measurement, done = self._measure(scenario, [[self._ours_command(image, dests)]], image)
        document: dict[str, Any] = json.loads(done[0].processes[0].stdout)
        if not document.get("ok"):
            raise RuntimeError(f"{scenario}: ecr-ocir-sync reported failure: {document}")
        measurement.bytes_read = int(document["bytes_read"])
        measurement.engine_seconds = float(document["seconds"])
        self._verify(image, dests, scenario)
        return self._record(image, measurement)

    def skopeo(
        self,
        scenario: str,
        image: PushedImage,
        dests: list[RegistryServer],
        *,
        parallel: bool = False,
    ) -> Measurement:
        commands = [self._skopeo_command(image, dest) for dest in dests]
        batches = [commands] if parallel else [[command] for command in commands]
        measurement, _ = self._measure(scenario, batches, image)
        self._verify(image, dests, scenario)
        return self._record(image, measurement)

    # -- one repetition of every scenario for one image ---------------------

    def full(self, image: PushedImage) -> None:
        dests = self.lab.fresh_destinations(2)
        self.ours("copy2/ours", image, dests)
        self.ours("resync2/ours", image, dests)
        self.skopeo("copy2/skopeo-seq", image, self.lab.fresh_destinations(2))
        self.skopeo("copy2/skopeo-par", image, self.lab.fresh_destinations(2), parallel=True)
        dests = self.lab.fresh_destinations(1)
        self.ours("copy1/ours", image, dests)
        self.ours("resync1/ours", image, dests)
        dests = self.lab.fresh_destinations(1)
        self.skopeo("copy1/skopeo", image, dests)
        self.skopeo("resync1/skopeo", image, dests)
        self.lab.drop_destinations()

    def memory_only(self, image: PushedImage) -> None:
        """The large image: only our two-destination copy (peak RSS, CPU, wall)."""
        self.ours("copy2/ours", image, self.lab.fresh_destinations(2))
        self.lab.drop_destinations()
