"""A small kustomize for the deploy/ tree: resources, JSON 6902 patches, labels, images.

Enough to render deploy/overlays/shared-store without kubectl; where kubectl
is installed the tests check that both renderings agree.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["render"]


def _documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def _step(node: Any, part: str) -> Any:
    return node[int(part)] if isinstance(node, list) else node[part]


def _apply(document: dict[str, Any], operation: dict[str, Any]) -> None:
    *parents, last = operation["path"].lstrip("/").split("/")
    node: Any = document
    for part in parents:
        node = _step(node, part)
    op = operation["op"]
    if op == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, operation["value"])
        else:
            node[index] = operation["value"]
    else:
        assert op in ("add", "replace"), f"unsupported patch operation {op}"
        if op == "replace":
            assert last in node, f"replace of missing {operation['path']}"
        node[last] = copy.deepcopy(operation["value"])


def _label(document: dict[str, Any], pairs: dict[str, str], templates: bool) -> None:
    document["metadata"].setdefault("labels", {}).update(pairs)
    if not templates:
        return
    spec = document.get("spec", {})
    templated = [spec["template"]] if "template" in spec else []
    for template in [*templated, *spec.get("volumeClaimTemplates", [])]:
        template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_images(document: dict[str, Any], images: list[dict[str, str]]) -> None:
    pod = document.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []):
        name = container["image"].rsplit(":", 1)[0]
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl kustomize directory`` would print (in the same order)."""
    kustomization = _documents(directory / "kustomization.yaml")[0]
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        documents += render(path) if path.is_dir() else _documents(path)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        matching = [
            doc
            for doc in documents
            if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]
        ]
        assert len(matching) == 1, f"patch target {target} matches {len(matching)} documents"
        for operation in yaml.safe_load(patch["patch"]):
            _apply(matching[0], operation)
    for entry in kustomization.get("labels", []):
        for document in documents:
            _label(document, entry["pairs"], entry.get("includeTemplates", False))
    for document in documents:
        _set_images(document, kustomization.get("images", []))
    return documents
