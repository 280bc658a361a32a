"""The package layout is the architecture: layers import downward only, and no cycle.

Every ``from ecr_ocir_sync…`` import is read from the source (at any depth, lazy
imports and TYPE_CHECKING blocks included), so a shortcut cannot hide in a function.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "ecr_ocir_sync"

# What each unit must never import (DESIGN.md's module map: "must not").
FORBIDDEN = {
    "oci": {
        "registry",
        "cloud",
        "engine",
        "rules",
        "jobs",
        "reconcile",
        "service",
        "cli",
        "settings",
        "observability",
    },
    "errors": {
        "oci",
        "registry",
        "cloud",
        "engine",
        "rules",
        "jobs",
        "reconcile",
        "service",
        "cli",
        "settings",
        "observability",
    },
    "registry": {
        "cloud",
        "engine",
        "rules",
        "jobs",
        "reconcile",
        "service",
        "cli",
        "observability",
    },
    "cloud": {"engine", "jobs", "reconcile", "service", "cli"},
    "engine": {"cloud", "rules", "jobs", "reconcile", "service", "cli", "settings"},
    "rules": {"registry", "cloud", "engine", "jobs", "reconcile", "service", "cli", "settings"},
    "jobs": {"registry", "cloud", "engine", "rules", "reconcile", "service", "cli"},
    "reconcile": {"service", "cli"},
    "observability": {"service", "cli", "jobs", "reconcile"},
    "settings": {"registry", "cloud", "engine", "jobs", "reconcile", "service", "cli"},
    "service": {"cli"},
}


def _unit(module: str) -> str:
    """``ecr_ocir_sync.engine.tee`` → ``engine``; ``ecr_ocir_sync.settings`` → ``settings``."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    # settings_values and settings_sources belong to settings
    return name.removesuffix("_values").removesuffix("_sources")


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        unit = _unit(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("ecr_ocir_sync.") and _unit(target) != unit:
                    graph[unit].add(_unit(target))
    return graph


def test_no_layer_imports_what_the_module_map_forbids():
    graph = import_graph()
    breaches = {
        unit: sorted(graph[unit] & forbidden)
        for unit, forbidden in FORBIDDEN.items()
        if graph[unit] & forbidden
    }
    assert breaches == {}


def test_the_packages_import_each_other_without_a_cycle():
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle between packages: {error.args[1]}") from None
    assert "oci" in order


def test_every_unit_of_the_package_is_classified():
    """A new top-level package must take its place in the map above, not slip past it."""
    units = {_unit(f"ecr_ocir_sync.{p.stem}") for p in PACKAGE.iterdir() if p.suffix == ".py"}
    units |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    known = set(FORBIDDEN) | {"cli", "outcome", "__init__", "_startup"}
    assert units - known == set()
