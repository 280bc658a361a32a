#!/usr/bin/env python3
"""Write the Kubernetes wrappers of the monitoring files from their one source.

  deploy/grafana/ecr-ocir-sync.json  -> deploy/kubernetes/grafana-dashboard.yaml (ConfigMap
                                        for the Grafana sidecar: label grafana_dashboard=1)
  deploy/prometheus/alerts.yaml      -> deploy/kubernetes/prometheusrule.yaml (PrometheusRule)

Kustomize may not read files outside deploy/kubernetes/, hence the copies.
``--check`` writes nothing and fails when a copy differs (tests/test_monitoring.py runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "ecr-ocir-sync.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
KUBE = ROOT / "deploy" / "kubernetes"
LABELS = {"app.kubernetes.io/name": "ecr-ocir-sync", "app.kubernetes.io/instance": "ecr-ocir-sync"}
HEADER = "# Written by scripts/render-monitoring.py from {source}; edit that file, then re-run.\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the JSON, long expressions) as literal blocks, readable."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def _dump(source: Path, document: dict[str, Any]) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return HEADER.format(source=source.relative_to(ROOT)) + body


def rendered() -> dict[Path, str]:
    dashboard = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "ecr-ocir-sync-dashboard",
            # The kube-prometheus-stack / Grafana chart sidecar loads ConfigMaps with this label.
            "labels": {**LABELS, "grafana_dashboard": "1"},
        },
        "data": {"ecr-ocir-sync.json": DASHBOARD.read_text()},
    }
    rules = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ecr-ocir-sync", "labels": dict(LABELS)},
        "spec": yaml.safe_load(ALERTS.read_text()),
    }
    return {
        KUBE / "grafana-dashboard.yaml": _dump(DASHBOARD, dashboard),
        KUBE / "prometheusrule.yaml": _dump(ALERTS, rules),
    }


def main(argv: list[str]) -> int:
    documents = rendered()
    stale = [p for p, text in documents.items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for path in stale:
            sys.stderr.write(f"{path.relative_to(ROOT)} is out of date: re-run this script\n")
        return 1 if stale else 0
    for path, text in documents.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
