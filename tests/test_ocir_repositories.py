"""OCIR repositories are created in the configured compartment before the first push.

The real ``oci`` SDK talks HTTP to a scripted Artifacts API on loopback
(tests/support/oci_api.py): each test lists the requests it expects, in
order, and the server fails the test on any other request or on one never
sent.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest

from ecr_ocir_sync.cloud.ocir_repositories import (
    ApiAuth,
    OcirRepositories,
    OcirRepositorySettings,
)
from ecr_ocir_sync.errors import (
    AuthError,
    ConfigError,
    ProtocolError,
    QuotaExceededError,
    QuotaLimit,
    RateLimitedError,
    UnavailableError,
)
from ecr_ocir_sync.service.wiring import repository_settings
from ecr_ocir_sync.settings import Settings
from tests.support.oci_api import (
    COMPARTMENT,
    NAMESPACE,
    REPOSITORIES,
    TENANCY,
    USER,
    ApiKeyConfig,
    OciApiServer,
    created,
    error,
    listing,
    new_key,
    pem,
    summary,
)
from tests.support.ports import free_port

REPO = "team/web"
LOOKUP = {"compartmentId": COMPARTMENT, "displayName": REPO}


@pytest.fixture
def make_repositories(
    api_key: ApiKeyConfig,
) -> Iterator[Callable[..., OcirRepositories]]:
    made: list[OcirRepositories] = []

    def make(endpoints: dict[str, str], **options: object) -> OcirRepositories:
        fields: dict[str, object] = {
            "compartment_id": COMPARTMENT,
            "config_file": api_key.path,
            "profile": api_key.profile,
            "endpoints": endpoints,
            **options,
        }
        repositories = OcirRepositories(
            OcirRepositorySettings(**fields),  # type: ignore[arg-type]
            namespace=NAMESPACE,
        )
        made.append(repositories)
        return repositories

    yield make
    for repositories in made:
        repositories.close()


@pytest.fixture
def mel(
    oci_api: OciApiServer, make_repositories: Callable[..., OcirRepositories]
) -> OcirRepositories:
    """Repositories of region ``mel`` served by ``oci_api``."""
    return make_repositories({"mel": oci_api.url})


def expect_created(api: OciApiServer, *, query: dict[str, str] = LOOKUP) -> None:
    api.expect("GET", REPOSITORIES, listing(), query=query)
    api.expect("POST", REPOSITORIES, created)


# -- creating ---------------------------------------------------------------------


async def test_a_missing_repository_is_created_in_the_configured_compartment(oci_api, mel):
    expect_created(oci_api)

    await mel.ensure("mel", REPO)

    [create] = oci_api.requests("POST")
    assert create.body == {
        "compartmentId": COMPARTMENT,
        "displayName": REPO,
        "isImmutable": False,
        "isPublic": False,
    }


async def test_an_immutable_setting_creates_immutable_repositories(oci_api, make_repositories):
    repositories = make_repositories({"mel": oci_api.url}, immutable=True)
    expect_created(oci_api)

    await repositories.ensure("mel", REPO)

    [create] = oci_api.requests("POST")
    assert create.body["isImmutable"] is True


async def test_an_existing_repository_is_not_created_again(oci_api, mel):
    oci_api.expect("GET", REPOSITORIES, listing(summary(REPO)), query=LOOKUP)

    await mel.ensure("mel", REPO)

    assert oci_api.requests("POST") == []


async def test_a_repository_being_deleted_is_created_again(oci_api, mel):
    oci_api.expect("GET", REPOSITORIES, listing(summary(REPO, state="DELETED")), query=LOOKUP)
    oci_api.expect("POST", REPOSITORIES, created)

    await mel.ensure("mel", REPO)

    assert len(oci_api.requests("POST")) == 1


async def test_a_second_ensure_of_the_same_repository_makes_no_request(oci_api, mel):
    expect_created(oci_api)
    await mel.ensure("mel", REPO)

    await mel.ensure("mel", REPO)

    assert len(oci_api.requests()) == 2


async def test_another_repository_is_looked_up_on_its_own(oci_api, mel):
    expect_created(oci_api)
    oci_api.expect(
        "GET",
        REPOSITORIES,
        listing(summary("team/api")),
        query={"compartmentId": COMPARTMENT, "displayName": "team/api"},
    )

    await mel.ensure("mel", REPO)
    await mel.ensure("mel", "team/api")


async def test_each_region_is_asked_at_its_own_endpoint(start_api, api_key, make_repositories):
    mel_api = start_api(verify_key=api_key.public_key)
    syd_api = start_api(verify_key=api_key.public_key)
    repositories = make_repositories({"mel": mel_api.url, "syd": syd_api.url})
    expect_created(mel_api)
    syd_api.expect("GET", REPOSITORIES, listing(summary(REPO)), query=LOOKUP)

    await repositories.ensure("mel", REPO)
    await repositories.ensure("syd", REPO)

    assert (len(mel_api.requests()), len(syd_api.requests())) == (2, 1)


async def test_concurrent_ensures_of_one_repository_create_it_once(oci_api, mel):
    expect_created(oci_api)

    await asyncio.gather(*(mel.ensure("mel", REPO) for _ in range(8)))

    assert [seen.method for seen in oci_api.requests()] == ["GET", "POST"]


async def test_a_conflict_on_create_counts_as_success(oci_api, mel):
    """Another pod created it between our lookup and our create."""
    oci_api.expect("GET", REPOSITORIES, listing(), query=LOOKUP)
    oci_api.expect(
        "POST", REPOSITORIES, error(409, "NAMESPACE_CONFLICT", "Repository already exists")
    )

    await mel.ensure("mel", REPO)
    await mel.ensure("mel", REPO)  # and it is remembered: no third request

    assert len(oci_api.requests()) == 2


# -- signing ------------------------------------------------------------------------


async def test_requests_are_signed_with_the_api_key_of_the_configured_profile(
    oci_api, mel, api_key
):
    expect_created(oci_api)

    await mel.ensure("mel", REPO)

    assert {seen.key_id for seen in oci_api.requests()} == {api_key.key_id}
    assert all(seen.signature_valid for seen in oci_api.requests())


async def test_resource_principals_sign_with_the_session_token(start_api, tmp_path, monkeypatch):
    session_key = new_key()
    token = jwt.encode(
        {
            "sub": "ocid1.instance.oc1.ap-melbourne-1.anyhqljt4bhzvmqcoacqkhbhtkcjfdz5zz",
            "res_tenant": TENANCY,
            "res_compartment": COMPARTMENT,
            "iat": int(time.time()),
            "exp": int(time.time()) + 3600,
        },
        pem(new_key()),
        algorithm="RS256",
    )
    key_file = tmp_path / "rp.pem"
    key_file.write_bytes(pem(session_key))
    for name, value in {
        "OCI_RESOURCE_PRINCIPAL_VERSION": "2.2",
        "OCI_RESOURCE_PRINCIPAL_RPST": token,
        "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": str(key_file),
        "OCI_RESOURCE_PRINCIPAL_REGION": "ap-melbourne-1",
    }.items():
        monkeypatch.setenv(name, value)
    api = start_api(verify_key=session_key.public_key())
    repositories = OcirRepositories(
        OcirRepositorySettings(
            COMPARTMENT, auth=ApiAuth.RESOURCE_PRINCIPAL, endpoints={"mel": api.url}
        ),
        namespace=NAMESPACE,
    )
    api.expect("GET", REPOSITORIES, listing(summary(REPO)), query=LOOKUP)

    await repositories.ensure("mel", REPO)
    repositories.close()

    [seen] = api.requests()
    assert seen.key_id == f"ST${token}"
    assert seen.signature_valid


# -- failures ---------------------------------------------------------------------


async def test_a_404_on_lookup_names_the_missing_policy(oci_api, mel):
    oci_api.expect(
        "GET",
        REPOSITORIES,
        error(
            404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found"
        ),
        query=LOOKUP,
    )

    with pytest.raises(AuthError) as raised:
        await mel.ensure("mel", REPO)

    message = raised.value.message
    assert f"Allow group <a group of {USER}> to manage repos in compartment id {COMPARTMENT}" in (
        message
    )
    assert f"OCIR mel (ap-melbourne-1) repository {NAMESPACE}/{REPO}" in message
    assert not raised.value.retryable


async def test_a_403_on_create_names_the_missing_policy(oci_api, mel):
    oci_api.expect("GET", REPOSITORIES, listing(), query=LOOKUP)
    oci_api.expect("POST", REPOSITORIES, error(403, "NotAuthorized", "not authorized"))

    with pytest.raises(AuthError, match="cannot create the container repository") as raised:
        await mel.ensure("mel", REPO)

    assert "to manage repos in compartment id" in raised.value.message


async def test_the_root_compartment_asks_for_a_tenancy_wide_policy(
    oci_api, make_repositories, api_key
):
    repositories = make_repositories({"mel": oci_api.url}, compartment_id=TENANCY)
    oci_api.expect(
        "GET",
        REPOSITORIES,
        error(404, "NotAuthorizedOrNotFound", "not found"),
        query={"compartmentId": TENANCY, "displayName": REPO},
    )

    with pytest.raises(AuthError, match="to manage repos in tenancy'"):
        await repositories.ensure("mel", REPO)


def test_instance_principals_ask_for_a_dynamic_group_policy():
    repositories = OcirRepositories(
        OcirRepositorySettings(COMPARTMENT, auth=ApiAuth.INSTANCE_PRINCIPAL), namespace=NAMESPACE
    )

    assert repositories.policy().startswith("Allow dynamic-group ")


async def test_a_401_says_the_credentials_were_refused(oci_api, mel):
    oci_api.expect(
        "GET", REPOSITORIES, error(401, "NotAuthenticated", "bad signature"), query=LOOKUP
    )

    with pytest.raises(AuthError, match=r"refused the credentials.*OCI_CONFIG_FILE"):
        await mel.ensure("mel", REPO)


async def test_a_500_is_retryable_and_the_next_ensure_asks_again(oci_api, mel):
    oci_api.expect("GET", REPOSITORIES, error(500, "InternalError", "oops"), query=LOOKUP)
    oci_api.expect("GET", REPOSITORIES, listing(summary(REPO)), query=LOOKUP)

    with pytest.raises(UnavailableError) as raised:
        await mel.ensure("mel", REPO)
    await mel.ensure("mel", REPO)

    assert raised.value.retryable
    assert len(oci_api.requests()) == 2  # the SDK's own retries are off


async def test_a_429_is_rate_limited_with_its_retry_after(oci_api, mel):
    oci_api.expect(
        "GET",
        REPOSITORIES,
        error(429, "TooManyRequests", "slow down", headers={"retry-after": "7"}),
        query=LOOKUP,
    )

    with pytest.raises(RateLimitedError) as raised:
        await mel.ensure("mel", REPO)

    assert raised.value.retryable
    assert raised.value.retry_after == 7.0


async def test_an_unreachable_api_is_retryable(make_repositories):
    repositories = make_repositories({"mel": f"http://127.0.0.1:{free_port()}"})

    with pytest.raises(UnavailableError, match="could not be reached"):
        await repositories.ensure("mel", REPO)


async def test_a_refused_name_is_a_protocol_error(oci_api, mel):
    oci_api.expect("GET", REPOSITORIES, listing(), query=LOOKUP)
    oci_api.expect("POST", REPOSITORIES, error(400, "InvalidParameter", "bad displayName"))

    with pytest.raises(ProtocolError, match="InvalidParameter") as raised:
        await mel.ensure("mel", REPO)

    assert not raised.value.retryable


@pytest.mark.parametrize("code", ["LimitExceeded", "QuotaExceeded"])
async def test_a_create_refused_for_a_limit_is_a_final_quota_error_with_advice(oci_api, mel, code):
    oci_api.expect("GET", REPOSITORIES, listing(), query=LOOKUP)
    oci_api.expect(
        "POST",
        REPOSITORIES,
        error(400, code, "Fulfilling this request exceeds the limit for this resource type"),
    )

    with pytest.raises(QuotaExceededError) as raised:
        await mel.ensure("mel", REPO)

    assert not raised.value.retryable
    assert raised.value.limit is QuotaLimit.REPOSITORIES
    assert code in raised.value.message
    assert "repository-count limit is reached" in raised.value.message
    assert "Raise the limit" in raised.value.message
    assert "free room" in raised.value.message


# -- regions and credentials --------------------------------------------------------


async def test_a_region_override_wins_over_the_sdk_table(oci_api, make_repositories):
    repositories = make_repositories({"mel": oci_api.url}, regions={"mel": "ap-sydney-1"})
    oci_api.expect("GET", REPOSITORIES, error(404, "NotAuthorizedOrNotFound", "no"), query=LOOKUP)

    with pytest.raises(AuthError, match=r"OCIR mel \(ap-sydney-1\)"):
        await repositories.ensure("mel", REPO)


async def test_an_unknown_region_key_asks_for_an_override(make_repositories):
    repositories = make_repositories({})

    with pytest.raises(ConfigError, match="OCI_API_REGION_XYZ"):
        await repositories.ensure("xyz", REPO)


async def test_a_missing_config_file_is_a_config_error(tmp_path):
    missing = tmp_path / "nowhere" / "config"
    repositories = OcirRepositories(
        OcirRepositorySettings(COMPARTMENT, config_file=missing), namespace=NAMESPACE
    )

    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        await repositories.prepare(["mel"])


async def test_a_missing_profile_is_a_config_error(api_key):
    repositories = OcirRepositories(
        OcirRepositorySettings(COMPARTMENT, config_file=api_key.path, profile="NOPE"),
        namespace=NAMESPACE,
    )

    with pytest.raises(ConfigError, match="NOPE"):
        await repositories.prepare(["mel"])


def test_importing_the_module_does_not_import_the_sdk():
    code = (
        "import sys, ecr_ocir_sync.cloud.ocir_repositories; "
        "sys.exit(1 if 'oci' in sys.modules else 0)"
    )

    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_compartment_without_the_sdk_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "oci", None)  # what `import oci` meets without the extra

    with pytest.raises(ConfigError) as raised:
        OcirRepositories(OcirRepositorySettings(COMPARTMENT), namespace=NAMESPACE)

    assert "OCI_COMPARTMENT_ID is set" in str(raised.value)
    assert "pip install 'ecr-ocir-sync[oci]'" in str(raised.value)


async def test_a_call_without_the_sdk_is_a_config_error_with_the_same_advice(
    oci_api, mel, monkeypatch
):
    monkeypatch.setitem(sys.modules, "oci", None)

    with pytest.raises(ConfigError, match=re.escape("ecr-ocir-sync[oci]")):
        await mel.ensure("mel", REPO)


# -- settings from the environment --------------------------------------------------


def from_env(environ: dict[str, str]) -> OcirRepositorySettings | None:
    """As the service reads them: the one settings model, then the wiring."""
    settings = Settings.from_environ(environ).require(Settings.variables())
    return repository_settings(settings)


def test_without_a_compartment_the_feature_is_off():
    assert from_env({"OCI_API_AUTH": "instance_principal"}) is None


def test_a_compartment_alone_takes_the_defaults():
    settings = from_env({"OCI_COMPARTMENT_ID": COMPARTMENT})

    assert settings == OcirRepositorySettings(
        compartment_id=COMPARTMENT,
        immutable=False,
        auth=ApiAuth.CONFIG_FILE,
        config_file=Path("~/.oci/config"),
        profile="DEFAULT",
    )


def test_every_variable_is_read():
    settings = from_env(
        {
            "OCI_COMPARTMENT_ID": COMPARTMENT,
            "OCI_REPO_IMMUTABLE": "true",
            "OCI_API_AUTH": "instance_principal",
            "OCI_CONFIG_FILE": "/etc/oci/config",
            "OCI_CONFIG_PROFILE": "MIRROR",
            "OCI_API_REGION_MEL": "ap-melbourne-1",
            "OCI_ARTIFACTS_ENDPOINT_MEL": "http://127.0.0.1:8999/",
        }
    )

    assert settings == OcirRepositorySettings(
        compartment_id=COMPARTMENT,
        immutable=True,
        auth=ApiAuth.INSTANCE_PRINCIPAL,
        config_file=Path("/etc/oci/config"),
        profile="MIRROR",
        regions={"mel": "ap-melbourne-1"},
        endpoints={"mel": "http://127.0.0.1:8999"},
    )


def test_the_sdks_own_region_variables_are_left_alone():
    environ = {"OCI_COMPARTMENT_ID": COMPARTMENT, "OCI_REGION": "ap-melbourne-1"}
    environ["OCI_REGION_METADATA"] = '{"realmKey": "oc1", "regionKey": "xyz"}'

    settings = from_env(environ)

    assert settings is not None
    assert settings.regions == {}


def test_the_tenancy_is_accepted_as_the_root_compartment():
    settings = from_env({"OCI_COMPARTMENT_ID": TENANCY})

    assert settings is not None
    assert settings.in_root


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OCI_COMPARTMENT_ID", "compartment-prod"),
        ("OCI_COMPARTMENT_ID", "ocid1.user.oc1..aaaaaaaazsd5fi4fm4bl3qm3z5ei5j7ktqa3u5"),
        ("OCI_REPO_IMMUTABLE", "sometimes"),
        ("OCI_API_AUTH", "password"),
        ("OCI_API_REGION_MEL", "melbourne"),
        ("OCI_ARTIFACTS_ENDPOINT_MEL", "artifacts.example"),
        ("OCI_ARTIFACTS_ENDPOINT_MEL", "https://artifacts.example/20160918"),
    ],
)
def test_a_malformed_variable_is_named(name, value):
    environ = {"OCI_COMPARTMENT_ID": COMPARTMENT, name: value}

    with pytest.raises(ConfigError, match=re.escape(f"{name}={value!r}")):
        from_env(environ)


def test_every_malformed_variable_is_named_in_one_error():
    environ = {"OCI_COMPARTMENT_ID": "nope", "OCI_API_AUTH": "nope", "OCI_REPO_IMMUTABLE": "nope"}

    with pytest.raises(ConfigError) as raised:
        from_env(environ)

    for name in environ:
        assert name in raised.value.message
