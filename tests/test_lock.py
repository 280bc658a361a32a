"""The lock files: what the image ships (requirements.lock) is what the tests run on
(requirements-dev.lock, the same pins plus the dev tools), every file hash-checked."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class Pin:
    version: str
    hashes: frozenset[str]


def _lock(name: str) -> dict[str, Pin]:
    """Package → pin; every requirement line of a uv / pip-compile lock."""
    pins: dict[str, Pin] = {}
    for entry in re.split(r"\n(?=\S)", (ROOT / name).read_text()):
        match = _PIN.match(entry)
        if match is not None:
            pins[canonicalize_name(match[1])] = Pin(match[2], frozenset(_HASH.findall(entry)))
    return pins


def _unsatisfied(requirements: list[str], pins: dict[str, Pin], extra: str = "") -> list[str]:
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin.version, prereleases=True):
            missing.append(f"{text} (locked: {pin.version if pin else 'absent'})")
    return missing


def test_the_runtime_lock_satisfies_the_dependencies_and_the_oci_extra():
    pins = _lock("requirements.lock")
    wanted = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["oci"]]

    assert _unsatisfied(wanted, pins) == [], "pyproject.toml changed: run make lock"


def test_the_dev_lock_has_the_runtime_pins_and_the_dev_tools():
    runtime, dev = _lock("requirements.lock"), _lock("requirements-dev.lock")

    assert {name: pin for name, pin in dev.items() if name in runtime} == runtime
    assert _unsatisfied(PROJECT["optional-dependencies"]["dev"], dev) == []


@pytest.mark.parametrize("name", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_package_is_pinned_with_its_hashes(name):
    entries = [line for line in (ROOT / name).read_text().splitlines() if _PIN.match(line)]

    assert all(line.endswith("\\") for line in entries), "a pin without --hash lines"
    assert all(pin.hashes for pin in _lock(name).values())


def test_the_image_and_make_test_install_the_locks_with_hashes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()

    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --no-deps '.[oci]'" in dockerfile
    assert "pip install -q --require-hashes -r requirements-dev.lock" in makefile
    assert "$(BIN)/activate: pyproject.toml requirements-dev.lock" in makefile


def test_the_tests_run_on_exactly_the_dev_lock():
    differing = {
        name: (pin.version, installed)
        for name, pin in _lock("requirements-dev.lock").items()
        if (installed := metadata.version(name)) != pin.version
    }

    assert differing == {}, "the venv is not the lock: make venv (or make test) rebuilds it"
