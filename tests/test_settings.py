"""The one settings model: read once, every bad variable named at once, one flag grammar."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.settings import FLAG_WORDS, Endpoint, Settings
from tests.support.service import service_env

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ecr_ocir_sync"
README = ROOT / "README.md"
# The only modules that may read the process environment: the CLI's entry point, which
# builds the settings once for every command (serve included).
ENTRY_POINTS = {"cli/main.py"}
FLAGS = (
    "SYNC_ALLOW_UNAUTHENTICATED",
    "SYNC_RECONCILE_LEADER",
    "OCI_REPO_IMMUTABLE",
    "SYNC_API_DOCS",
)
FLAG_FIELDS = {
    "SYNC_ALLOW_UNAUTHENTICATED": "allow_unauthenticated",
    "SYNC_RECONCILE_LEADER": "reconcile_leader",
    "OCI_REPO_IMMUTABLE": "repository_immutable",
    "SYNC_API_DOCS": "api_docs",
}
GOOD = service_env("ecr.internal", {"mel": "127.0.0.1:5001"})


def service(**overrides: str) -> Settings:
    return Settings.from_environ({**GOOD, **overrides}).require_service()


def service_error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ(environ).require_service()
    return caught.value.message


# --- one error naming everything ------------------------------------------------------------


def test_every_bad_variable_is_named_in_one_start_up_error():
    bad = {
        "SYNC_WORKERS": "many",
        "SYNC_LEASE_SECONDS": "0",
        "SYNC_LOG_LEVEL": "loud",
        "SYNC_DELETE_POLICY": "sometimes",
        "SYNC_ALLOWED_ACCOUNTS": "12345",
        "ECR_ENDPOINT": "ecr.internal",
        "OCIR_ENDPOINT_SYD": "ftp://syd",
        "SYNC_RECONCILE_LEADER": "maybe",
        "OCI_COMPARTMENT_ID": "compartment-prod",
        "OCI_API_AUTH": "password",
        "OCI_API_REGION_MEL": "melbourne",
    }

    message = service_error({**GOOD, **bad})

    assert message.startswith("cannot start, fix these settings:\n  - ")
    for name, value in bad.items():
        assert f"{name}={value!r}" in message
    assert len(message.splitlines()) == 1 + len(bad)


def test_every_missing_required_variable_is_named():
    message = service_error({})

    for name in (
        "OCI_TENANCY",
        "OCI_USERNAME",
        "OCI_AUTH_TOKEN",
        "OCI_REPO_REGION_KEY",
        "SYNC_ALLOWED_ACCOUNTS",
        "SYNC_ALLOWED_REGIONS",
        "SYNC_API_KEY",
    ):
        assert f"{name} is required" in message


def test_a_blank_variable_counts_as_unset():
    message = service_error({**GOOD, "OCI_TENANCY": "  ", "SYNC_WORKERS": ""})

    assert "OCI_TENANCY is required" in message
    assert "SYNC_WORKERS" not in message


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OCI_REPO_REGION_KEY", "mel,mel", "OCI_REPO_REGION_KEY='mel,mel': names a region twice"),
        ("OCI_TENANCY", "a/b", "OCI_TENANCY='a/b': is not an OCIR namespace"),
        ("OCI_TENANCY", "NS", "OCI_TENANCY='NS': is not an OCIR namespace"),
        ("SYNC_DELETE_POLICY", "sometimes", "SYNC_DELETE_POLICY='sometimes': expected mirror or"),
        ("SYNC_WORKERS", "x", "SYNC_WORKERS='x': is not a number"),
        ("SYNC_MAX_BODY_BYTES", "10", "SYNC_MAX_BODY_BYTES='10': must be at least 1024"),
        ("SYNC_ALLOWED_REGIONS", "sydney", "SYNC_ALLOWED_REGIONS='sydney': 'sydney' is not"),
    ],
)
def test_a_bad_value_is_named_with_what_was_expected(name, value, says):
    assert says in service_error({**GOOD, name: value})


def test_the_api_key_may_be_waived_only_explicitly():
    without = {k: v for k, v in GOOD.items() if k != "SYNC_API_KEY"}

    assert "SYNC_API_KEY is required" in service_error(without)
    assert service_error({**GOOD, "SYNC_API_KEY": "short"}).endswith(
        "SYNC_API_KEY: must be at least 16 characters"
    )
    assert Settings.from_environ({**without, "SYNC_ALLOW_UNAUTHENTICATED": "yes"}).api_key is None


def test_allowed_regions_default_to_aws_default_region():
    environ = {k: v for k, v in GOOD.items() if k != "SYNC_ALLOWED_REGIONS"}

    settings = Settings.from_environ({**environ, "AWS_DEFAULT_REGION": "eu-west-1"})

    assert settings.require_service().allowed_regions == {"eu-west-1"}


def test_a_command_is_refused_only_for_the_variables_it_reads():
    settings = Settings.from_environ({"SYNC_WORKERS": "x", "OCIR_ENDPOINT_MEL": "mel"})

    assert settings.require(["SYNC_DATA_DIR"]) is settings
    with pytest.raises(ConfigError, match="OCIR_ENDPOINT_MEL='mel'"):
        settings.require(["OCIR_ENDPOINT_<KEY>"], header="fix these settings:")


# --- one flag grammar -----------------------------------------------------------------------


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize(
    ("word", "value"),
    [(w, True) for w in ("true", "TRUE", "1", "yes", "On")]
    + [(w, False) for w in ("false", "False", "0", "no", "OFF")],
)
def test_every_flag_accepts_the_same_words(name, word, value):
    settings = service(**{name: word})

    assert getattr(settings, FLAG_FIELDS[name]) is value


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize("word", ["y", "enabled", "2", "truthy"])
def test_every_flag_refuses_other_words_naming_the_accepted_ones(name, word):
    message = service_error({**GOOD, name: word})

    assert f"{name}={word!r}: expected one of {', '.join(FLAG_WORDS)}" in message


def test_the_flag_words_are_documented_once_in_the_readme():
    text = " ".join(README.read_text().split())
    on, off = ("`" + "`, `".join(words) + "`" for words in (FLAG_WORDS[:4], FLAG_WORDS[4:]))

    assert text.count(f"takes {on} or {off}, in any case") == 1


@pytest.mark.parametrize(("hostname", "leader"), [("sync-0", True), ("sync-2", False), ("", True)])
def test_the_reconcile_leader_defaults_to_the_statefulset_ordinal_zero(hostname, leader):
    assert service(HOSTNAME=hostname).reconcile_leader is leader


# --- prefix families ------------------------------------------------------------------------


def test_prefix_families_are_read_by_region_key():
    settings = service(
        OCIR_ENDPOINT_SYD="https://syd.example/",
        OCI_API_REGION_MEL="ap-melbourne-1",
        OCI_ARTIFACTS_ENDPOINT_MEL="http://127.0.0.1:8999/",
    )

    assert settings.ocir_endpoints == {
        "mel": Endpoint("127.0.0.1:5001", insecure=True),
        "syd": Endpoint("syd.example", insecure=False),
    }
    assert settings.api_regions == {"mel": "ap-melbourne-1"}
    assert settings.artifacts_endpoints == {"mel": "http://127.0.0.1:8999"}
    assert "127.0.0.1:5001" in settings.insecure_registries
    assert settings.region_endpoint("syd") == "syd.example"


def test_each_bad_family_member_is_named_by_its_own_variable():
    message = service_error(
        {**GOOD, "OCIR_ENDPOINT_SYD": "syd.example", "OCI_ARTIFACTS_ENDPOINT_SYD": "x/y"}
    )

    assert "OCIR_ENDPOINT_SYD='syd.example': expected a registry URL" in message
    assert "OCI_ARTIFACTS_ENDPOINT_SYD='x/y': expected the Artifacts API's URL" in message


def test_the_sdks_own_region_variables_are_not_a_family_member():
    settings = service(OCI_REGION_METADATA='{"regionKey": "xyz"}', OCI_REGION="ap-melbourne-1")

    assert settings.api_regions == {}


# --- secrets --------------------------------------------------------------------------------


def test_secrets_never_show_in_repr_str_or_errors():
    token, key = "ocir-token-never-shown", "api-key-never-shown-0123"
    settings = service(OCI_AUTH_TOKEN=token, SYNC_API_KEY=key)
    message = service_error({**GOOD, "OCI_AUTH_TOKEN": token, "SYNC_API_KEY": "short-secret"})

    for text in (repr(settings), str(settings), message):
        assert token not in text
        assert key not in text
        assert "short-secret" not in text
    assert settings.auth_token is not None
    assert settings.auth_token.get_secret_value() == token


# --- read once ------------------------------------------------------------------------------


def test_only_the_entry_point_reads_the_process_environment():
    reading = re.compile(r"\bos\.environ\b|\bgetenv\b|from os import [^\n]*\benviron\b")
    readers = {
        str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if reading.search(path.read_text())
    }

    assert readers == ENTRY_POINTS, f"reading the environment below the entry point: {readers}"


def test_rules_do_not_import_the_settings():
    importers = [
        str(path.relative_to(SRC))
        for path in (SRC / "rules").rglob("*.py")
        if "ecr_ocir_sync.settings" in path.read_text()
    ]

    assert importers == []


def _readme_variables() -> set[str]:
    table = README.read_text().split("### Configuration", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {
        name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_<>]+)`", row.split("|")[1])
    }


def test_the_readme_table_lists_exactly_the_settings_variables():
    # The AWS credentials are boto3's own: listed for operators, read by botocore.
    boto3 = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL_ECR",
        "AWS_ENDPOINT_URL_SQS",
    }

    assert _readme_variables() - boto3 == Settings.variables() - {"HOSTNAME"}


# --- several ECR sources (AWS accounts x regions) --------------------------------------------

OTHER_ACCOUNT = "210987654321"
NO_ENDPOINT = {k: v for k, v in GOOD.items() if k != "ECR_ENDPOINT"}
TWO_ACCOUNTS = {**NO_ENDPOINT, "SYNC_ALLOWED_ACCOUNTS": f"123456789012,{OTHER_ACCOUNT}"}


@pytest.mark.parametrize(
    "allowed",
    [
        {"SYNC_ALLOWED_ACCOUNTS": f"123456789012,{OTHER_ACCOUNT}"},
        {"SYNC_ALLOWED_REGIONS": "ap-southeast-2,ap-southeast-4"},
    ],
)
def test_several_accounts_or_regions_are_refused_without_shared_destinations(allowed):
    message = service_error({**NO_ENDPOINT, **allowed})

    assert "SYNC_ALLOWED_ACCOUNTS and SYNC_ALLOWED_REGIONS allow 2 ECR sources" in message
    assert "same <namespace>/<repository> at OCIR" in message
    assert "allow one account and one region per deployment" in message
    assert "or set SYNC_SHARED_DESTINATIONS=true" in message


def test_shared_destinations_lets_several_accounts_start():
    settings = Settings.from_environ({**TWO_ACCOUNTS, "SYNC_SHARED_DESTINATIONS": "on"})

    assert settings.require_service().ecr_sources == [
        ("123456789012", "ap-southeast-2"),
        (OTHER_ACCOUNT, "ap-southeast-2"),
    ]


def test_each_account_and_region_may_have_its_own_ecr_endpoint():
    settings = Settings.from_environ(
        {
            **TWO_ACCOUNTS,
            "SYNC_SHARED_DESTINATIONS": "true",
            "ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2": "http://127.0.0.1:5002",
            f"ECR_ENDPOINT_{OTHER_ACCOUNT}_AP_SOUTHEAST_2": "https://ecr-b.internal/",
        }
    ).require_service()

    assert settings.ecr_endpoints == {
        ("123456789012", "ap-southeast-2"): Endpoint("127.0.0.1:5002", insecure=True),
        (OTHER_ACCOUNT, "ap-southeast-2"): Endpoint("ecr-b.internal", insecure=False),
    }
    assert "127.0.0.1:5002" in settings.insecure_registries
    assert "ecr-b.internal" not in settings.insecure_registries


def test_the_plain_ecr_endpoint_stands_for_the_one_account_and_region():
    assert service().ecr_endpoints == {
        ("123456789012", "ap-southeast-2"): Endpoint("ecr.internal", insecure=True)
    }


def test_the_plain_ecr_endpoint_is_refused_as_ambiguous_with_several_sources():
    message = service_error(
        {**TWO_ACCOUNTS, "SYNC_SHARED_DESTINATIONS": "true", "ECR_ENDPOINT": "http://ecr:5000"}
    )

    assert "ECR_ENDPOINT='ecr:5000': ambiguous with 2 ECR sources allowed" in message
    assert "e.g. ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2, and unset ECR_ENDPOINT" in message


def test_each_bad_ecr_endpoint_member_is_named_by_its_own_variable():
    message = service_error(
        {
            **TWO_ACCOUNTS,
            "SYNC_SHARED_DESTINATIONS": "true",
            "ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2": "ecr-a.internal",
            "ECR_ENDPOINT_12345_SYDNEY": "http://ecr:5000",
            "ECR_ENDPOINT_999999999999_AP_SOUTHEAST_2": "http://ecr-c:5000",
        }
    )

    assert (
        "ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2='ecr-a.internal': expected a registry URL"
    ) in message
    assert (
        "ECR_ENDPOINT_12345_SYDNEY='http://ecr:5000': expected ECR_ENDPOINT_<ACCOUNT>_<REGION>"
    ) in message
    assert (
        "ECR_ENDPOINT_999999999999_AP_SOUTHEAST_2: account 999999999999 in ap-southeast-2 "
        "is not allowed by SYNC_ALLOWED_ACCOUNTS and SYNC_ALLOWED_REGIONS"
    ) in message
    assert len(message.splitlines()) == 1 + 3


def test_two_sources_may_not_share_one_ecr_host():
    message = service_error(
        {
            **TWO_ACCOUNTS,
            "SYNC_SHARED_DESTINATIONS": "true",
            "ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2": "http://ecr:5000",
            f"ECR_ENDPOINT_{OTHER_ACCOUNT}_AP_SOUTHEAST_2": "http://ecr:5000",
        }
    )

    assert (
        f"ECR_ENDPOINT_123456789012_AP_SOUTHEAST_2 and ECR_ENDPOINT_{OTHER_ACCOUNT}"
        "_AP_SOUTHEAST_2 both name ecr:5000: each account and region needs its own"
    ) in message
