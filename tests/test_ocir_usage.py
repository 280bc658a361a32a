"""How full each OCIR region is: the Artifacts API's repository sizes and image counts and
the Limits API's limit, read by the real ``oci`` SDK from a scripted OCI API on loopback
that verifies every request's signature; exported as metrics, logged at 80 % and 95 %."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ecr_ocir_sync.cli.main import main
from ecr_ocir_sync.cloud.ocir_repositories import OcirRepositories, OcirRepositorySettings
from ecr_ocir_sync.cloud.ocir_usage import OcirUsage, RegionUsage, storage_limit_bytes
from ecr_ocir_sync.errors import AuthError
from ecr_ocir_sync.observability.metrics import Metrics
from ecr_ocir_sync.service.usage import CRITICAL_FRACTION, WARNING_FRACTION, UsageLoop
from tests.support.oci_api import (
    COMPARTMENT,
    LIMIT_VALUES,
    NAMESPACE,
    REPOSITORIES,
    TENANCY,
    ApiKeyConfig,
    OciApiServer,
    error,
    limit_values,
    listing,
    summary,
)
from tests.support.service import service_env

GB = 10**9
PAGE_ONE = {"compartmentId": COMPARTMENT}
PAGE_TWO = {"compartmentId": COMPARTMENT, "page": "next-1"}
LIMITS_QUERY = {
    "compartmentId": TENANCY,
    "serviceName": "container-registry",
    "scopeType": "REGION",
}


@pytest.fixture
def usage(oci_api: OciApiServer, api_key: ApiKeyConfig) -> Iterator[OcirUsage]:
    settings = OcirRepositorySettings(
        compartment_id=COMPARTMENT,
        config_file=api_key.path,
        profile=api_key.profile,
        endpoints={"mel": oci_api.url},
        limits_endpoints={"mel": oci_api.url},
    )
    repositories = OcirRepositories(settings, namespace=NAMESPACE)
    yield OcirUsage(repositories)
    repositories.close()


def expect_usage(api: OciApiServer, used: list[int], limit_gb: int | None = 500) -> None:
    """Two pages of repositories of the given sizes, then the limits."""
    half = len(used) // 2
    items = [summary(f"app{i}", size=size, images=2) for i, size in enumerate(used)]
    api.expect("GET", REPOSITORIES, listing(*items[:half], next_page="next-1"), query=PAGE_ONE)
    api.expect("GET", REPOSITORIES, listing(*items[half:]), query=PAGE_TWO)
    limits = {"storage_gb": limit_gb} if limit_gb is not None else {}
    api.expect(
        "GET", LIMIT_VALUES, limit_values(**limits, repository_count=500), query=LIMITS_QUERY
    )


async def test_usage_sums_every_page_of_repositories_and_reads_the_storage_limit(
    oci_api, usage, api_key
):
    expect_usage(oci_api, [100 * GB, 150 * GB, 10 * GB])

    figures = await usage.read("mel")

    assert figures == RegionUsage("mel", 260 * GB, 0, 3, 6, 500 * GB, 500)
    assert figures.storage_fraction == pytest.approx(0.52)
    assert {seen.key_id for seen in oci_api.requests()} == {api_key.key_id}
    assert all(seen.signature_valid for seen in oci_api.requests())


async def test_a_repository_being_deleted_is_not_counted(oci_api, usage):
    oci_api.expect(
        "GET",
        REPOSITORIES,
        listing(summary("kept", size=5), summary("going", state="DELETING", size=7)),
        query=PAGE_ONE,
    )
    oci_api.expect("GET", LIMIT_VALUES, limit_values(storage_gb=500), query=LIMITS_QUERY)

    figures = await usage.read("mel")

    assert (figures.used_bytes, figures.repositories) == (5, 1)


async def test_a_limits_api_refusal_leaves_the_limit_unknown_and_says_why(oci_api, usage):
    oci_api.expect("GET", REPOSITORIES, listing(summary("app", size=5)), query=PAGE_ONE)
    oci_api.expect(
        "GET", LIMIT_VALUES, error(404, "NotAuthorizedOrNotFound", "no"), query=LIMITS_QUERY
    )

    figures = await usage.read("mel")

    assert figures.used_bytes == 5
    assert figures.storage_limit_bytes is None
    assert figures.storage_fraction is None
    assert "404 NotAuthorizedOrNotFound" in (figures.limit_note or "")


async def test_a_storage_limit_without_a_unit_in_its_name_is_not_guessed(oci_api, usage):
    oci_api.expect("GET", REPOSITORIES, listing(summary("app")), query=PAGE_ONE)
    oci_api.expect("GET", LIMIT_VALUES, limit_values(registry_storage=500), query=LIMITS_QUERY)

    figures = await usage.read("mel")

    assert figures.storage_limit_bytes is None
    assert "registry-storage" in (figures.limit_note or "")


async def test_a_refused_repository_listing_names_the_policy(oci_api, usage):
    oci_api.expect("GET", REPOSITORIES, error(404, "NotAuthorizedOrNotFound", "no"), query=PAGE_ONE)

    with pytest.raises(AuthError, match="manage repos in compartment"):
        await usage.read("mel")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("storage-gb", 500, 500 * GB), ("storage-tb", 2, 2 * 10**12), ("storage-size", 5, None)],
)
def test_a_storage_limit_is_read_in_the_unit_its_name_gives(name, value, expected):
    assert storage_limit_bytes(name, value) == expected


def metric(metrics: Metrics, name: str, region: str = "mel") -> float | None:
    return metrics.registry.get_sample_value(f"ecr_ocir_sync_{name}", {"region": region})


async def test_a_read_sets_the_gauges_per_region(oci_api, usage):
    expect_usage(oci_api, [100 * GB, 150 * GB])
    metrics = Metrics()

    await UsageLoop(usage, ["mel"], metrics, interval_seconds=60).read_all()

    assert metric(metrics, "ocir_storage_used_bytes") == 250 * GB
    assert metric(metrics, "ocir_storage_limit_bytes") == 500 * GB
    assert metric(metrics, "ocir_repositories") == 2
    assert metric(metrics, "ocir_repository_limit") == 500
    assert metric(metrics, "ocir_images") == 4


async def test_an_unknown_limit_exports_no_limit_series(oci_api, usage):
    expect_usage(oci_api, [1 * GB, 2 * GB], limit_gb=None)
    metrics = Metrics()

    await UsageLoop(usage, ["mel"], metrics, interval_seconds=60).read_all()

    assert metric(metrics, "ocir_storage_used_bytes") == 3 * GB
    assert metric(metrics, "ocir_storage_limit_bytes") is None


async def test_passing_80_and_95_percent_logs_a_warning_then_an_error_once_each(
    oci_api, usage, caplog
):
    for used in ([200 * GB, 200 * GB], [200 * GB, 210 * GB], [240 * GB, 240 * GB]):
        expect_usage(oci_api, used)
    loop = UsageLoop(usage, ["mel"], Metrics(), interval_seconds=60)

    with caplog.at_level(logging.INFO, logger="ecr_ocir_sync.service.usage"):
        for _ in range(3):  # 80 %, 82 %, 96 %
            await loop.read_all()

    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == [logging.WARNING, logging.ERROR]
    assert "OCIR mel storage at 80% of its limit" in lines[0][1]
    assert "past 95 %" in lines[1][1]


def test_the_usage_command_says_the_figures_are_unavailable_without_the_oci_api(
    monkeypatch, capsys
):
    monkeypatch.delenv("OCI_COMPARTMENT_ID", raising=False)

    assert main(["usage"]) == 0

    assert "OCIR usage figures are unavailable" in capsys.readouterr().out


def test_the_usage_command_prints_each_regions_figures(oci_api, api_key, monkeypatch, capsys):
    expect_usage(oci_api, [100 * GB, 300 * GB])
    for name, value in {
        "OCI_COMPARTMENT_ID": COMPARTMENT,
        "OCI_CONFIG_FILE": str(api_key.path),
        "OCI_CONFIG_PROFILE": api_key.profile,
        "OCI_REPO_REGION_KEY": "mel",
        "OCI_TENANCY": NAMESPACE,
        "OCI_ARTIFACTS_ENDPOINT_MEL": oci_api.url,
        "OCI_LIMITS_ENDPOINT_MEL": oci_api.url,
    }.items():
        monkeypatch.setenv(name, value)

    assert main(["usage", "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["available"] is True
    (mel,) = document["regions"]
    assert mel["used_bytes"] == 400 * GB
    assert mel["storage_fraction"] == pytest.approx(0.8)


def test_the_service_exports_each_regions_usage_and_logs_past_80_percent(
    start_registry, start_service_process, oci_api, api_key
):
    ecr, mel, syd = start_registry("ecr"), start_registry("mel"), start_registry("syd")
    expect_usage(oci_api, [200 * GB, 210 * GB])  # mel: 82 %
    expect_usage(oci_api, [10 * GB, 20 * GB])  # syd: 6 %
    service = start_service_process(
        service_env(
            ecr.host,
            {"mel": mel.host, "syd": syd.host},
            namespace=NAMESPACE,
            OCI_COMPARTMENT_ID=COMPARTMENT,
            OCI_CONFIG_FILE=str(api_key.path),
            OCI_CONFIG_PROFILE=api_key.profile,
            OCI_ARTIFACTS_ENDPOINT_MEL=oci_api.url,
            OCI_ARTIFACTS_ENDPOINT_SYD=oci_api.url,
            OCI_LIMITS_ENDPOINT_MEL=oci_api.url,
            OCI_LIMITS_ENDPOINT_SYD=oci_api.url,
            SYNC_USAGE_INTERVAL_SECONDS="3600",
        )
    )

    def both_read() -> str | None:
        text = service.metrics()
        return text if 'ecr_ocir_sync_ocir_images{region="syd"}' in text else None

    text = service.wait_until(both_read, timeout=30, what="both regions' usage in /metrics")

    assert 'ecr_ocir_sync_ocir_storage_used_bytes{region="mel"} 4.1e+11' in text
    assert 'ecr_ocir_sync_ocir_storage_limit_bytes{region="syd"} 5e+11' in text
    assert "OCIR mel storage at 82% of its limit" in service.log()


ALERTS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yaml"


@pytest.mark.parametrize(
    ("alert", "fraction"),
    [
        ("EcrOcirSyncOcirStorageAbove80Percent", WARNING_FRACTION),
        ("EcrOcirSyncOcirStorageAbove95Percent", CRITICAL_FRACTION),
    ],
)
def test_each_storage_alert_fires_at_the_threshold_the_service_logs_at(alert, fraction):
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    (rule,) = [rule for rule in rules if rule.get("alert") == alert]

    assert f">= {fraction:.2f}" in rule["expr"]
