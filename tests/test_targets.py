"""Region keys and endpoints map a source image to its OCIR destinations."""

from __future__ import annotations

import pytest

from ecr_ocir_sync.cloud.ocir_auth import ocir_login
from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.rules.regions import region_destinations
from ecr_ocir_sync.settings import Endpoint, Settings

SOURCE = parse_reference("123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/team/app:1.4")


def test_each_region_key_becomes_an_ocir_host_under_the_namespace():
    targets = region_destinations(SOURCE, region_keys=["mel", "syd"], namespace="ns")

    assert [str(t) for t in targets] == [
        "mel.ocir.io/ns/team/app:1.4",
        "syd.ocir.io/ns/team/app:1.4",
    ]


def test_an_overridden_region_endpoint_replaces_its_host():
    targets = region_destinations(
        SOURCE, region_keys=["mel"], namespace="ns", endpoints={"mel": "127.0.0.1:5001"}
    )

    assert str(targets[0]) == "127.0.0.1:5001/ns/team/app:1.4"


def region_keys(text: str) -> tuple[str, ...]:
    settings = Settings.from_environ({"OCI_REPO_REGION_KEY": text})
    return settings.require([], required=["OCI_REPO_REGION_KEY"]).region_keys


@pytest.mark.parametrize(("text", "keys"), [("mel,syd", ("mel", "syd")), (" MEL ", ("mel",))])
def test_region_keys_are_comma_separated(text, keys):
    assert region_keys(text) == keys


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is required"),
        ("mel,,syd", "expected comma-separated"),
        ("mel,mel", "names a region twice"),
    ],
)
def test_bad_region_keys_name_the_variable(text, says):
    with pytest.raises(ConfigError, match=f"OCI_REPO_REGION_KEY.*{says}"):
        region_keys(text)


def ocir_endpoints(environ: dict[str, str]) -> dict[str, Endpoint]:
    settings = Settings.from_environ(environ).require(["OCIR_ENDPOINT_<KEY>"])
    return settings.ocir_endpoints


def test_ocir_endpoints_come_from_ocir_endpoint_variables():
    found = ocir_endpoints(
        {"OCIR_ENDPOINT_MEL": "http://127.0.0.1:5001", "OCIR_ENDPOINT_SYD": "https://syd.example"}
    )

    assert found == {
        "mel": Endpoint("127.0.0.1:5001", insecure=True),
        "syd": Endpoint("syd.example", insecure=False),
    }


def test_a_malformed_endpoint_names_the_variable():
    with pytest.raises(ConfigError, match=r"OCIR_ENDPOINT_MEL='mel\.ocir\.io'"):
        ocir_endpoints({"OCIR_ENDPOINT_MEL": "mel.ocir.io"})


@pytest.mark.parametrize(
    ("user", "login"),
    [
        ("jane@example.com", "ns/jane@example.com"),
        ("oracleidentitycloudservice/jane", "ns/oracleidentitycloudservice/jane"),
        ("ns/oracleidentitycloudservice/jane", "ns/oracleidentitycloudservice/jane"),
    ],
)
def test_the_ocir_login_prefixes_the_namespace_unless_the_user_already_starts_with_it(user, login):
    assert ocir_login("ns", user) == login
