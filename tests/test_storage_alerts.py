"""The OCIR storage alerts: valid Prometheus rules whose promtool unit tests pass, at the
same thresholds as the service's log lines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ecr_ocir_sync.service.usage import CRITICAL_FRACTION, WARNING_FRACTION

RULES = Path(__file__).parent.parent / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *arguments], cwd=RULES, capture_output=True, text=True, check=False, timeout=60
    )


def test_the_storage_rules_are_valid_prometheus_rules():
    done = promtool("check", "rules", "ocir-storage.rules.yaml")

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_storage_alerts_pass_their_promtool_unit_tests():
    done = promtool("test", "rules", "ocir-storage.rules.test.yaml")

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("alert", "fraction"),
    [
        ("OcirStorageAbove80Percent", WARNING_FRACTION),
        ("OcirStorageAbove95Percent", CRITICAL_FRACTION),
    ],
)
def test_each_alert_fires_at_the_threshold_the_service_logs_at(alert, fraction):
    text = (RULES / "ocir-storage.rules.yaml").read_text()
    rule = text[text.index(f"alert: {alert}") :].split("- alert:")[0]

    assert re.search(rf"ocir_storage_used_fraction >= {fraction:.2f}\b", rule), rule
