"""OCIR without a long-lived auth token: registry tokens exchanged with OCI IAM.

The real ``oci`` SDK asks a scripted Container Registry API on loopback
(tests/support/oci_api.py, which verifies each request's signature) for a
registry token; a real registry in ``auth: token`` mode sends clients to a
token server (tests/support/token_server.py) that accepts the login
``BEARER_TOKEN`` / <the token OCI IAM issued last>, as OCIR does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ecr_ocir_sync.cloud.credential_chain import CredentialSettings, build_credentials
from ecr_ocir_sync.cloud.oci_signing import OciPrincipal
from ecr_ocir_sync.cloud.ocir_tokens import OcirTokenExchange, OcirTokenSettings
from ecr_ocir_sync.engine.copy import CopyOptions, copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.errors import AuthError, ConfigError, UnavailableError
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.registry.credentials import Credentials
from ecr_ocir_sync.registry.pool import Registries
from ecr_ocir_sync.settings import Settings
from tests.conftest import FAST_RETRY
from tests.support import skopeo
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.oci_api import Answer, ApiKeyConfig, OciApiServer, error, write_api_key_config
from tests.support.ports import free_port
from tests.support.registry import RegistryServer
from tests.support.service import ecr_event, service_env
from tests.support.token_server import TokenServer
from tests.test_cli import run

TOKEN_PATH = "/20180419/docker/token"
FIRST, SECOND = "ocir-registry-token-1-test-only", "ocir-registry-token-2-test-only"


def issued(token: str, expires_in: int = 3600) -> Answer:
    """GetAccessToken's answer: the registry token and its lifetime."""
    return Answer(200, {"token": token, "expires_in": expires_in})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api_key(tmp_path: Path) -> ApiKeyConfig:
    return write_api_key_config(tmp_path / "oci", profile="MIRROR")


@pytest.fixture
def oci_api(api_key: ApiKeyConfig) -> Iterator[OciApiServer]:
    server = OciApiServer(verify_key=api_key.public_key).start()
    yield server
    server.stop()
    server.check_finished()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    # OCIR's token service: the user is BEARER_TOKEN, the password the latest token.
    server = TokenServer(tmp_path / "token", username="BEARER_TOKEN", password=FIRST).start()
    yield server
    server.stop()


@pytest.fixture
def mel(start_registry: Callable[..., RegistryServer], token_server: TokenServer) -> RegistryServer:
    return start_registry("mel", token_auth=token_server.registry_config())


def token_settings(api_key: ApiKeyConfig, api_url: str, mel_host: str) -> OcirTokenSettings:
    principal = OciPrincipal(config_file=api_key.path, profile=api_key.profile)
    endpoints = {"mel": api_url, "syd": api_url}  # one scripted API for both regions
    return OcirTokenSettings(principal, hosts={mel_host: "mel"}, endpoints=endpoints)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def exchange(api_key, oci_api, clock) -> Iterator[OcirTokenExchange]:
    made = OcirTokenExchange(token_settings(api_key, oci_api.url, "127.0.0.1:5999"), clock=clock)
    yield made
    made.close()


@pytest.fixture
async def registries(
    api_key: ApiKeyConfig, oci_api: OciApiServer, source: RegistryServer, mel: RegistryServer
) -> AsyncIterator[Registries]:
    credentials = build_credentials(
        CredentialSettings(ocir_tokens=token_settings(api_key, oci_api.url, mel.host))
    )
    pool = Registries(credentials, insecure=frozenset({source.host, mel.host}), retry=FAST_RETRY)
    async with pool:
        yield pool


async def copy_to_mel(
    registries: Registries, source: RegistryServer, mel: RegistryServer, repository: str
) -> str:
    image = build_image([layer_bytes(20_000, len(repository))])
    pusher = Pusher(source.url)
    try:
        digest = pusher.image(repository, "1", image)
    finally:
        pusher.close()
    reference = parse_reference(f"{source.host}/{repository}:1")
    target = parse_reference(f"{mel.host}/ns/{repository}:1")
    result = await copy_image(
        registries.client(reference.registry),
        reference,
        [Destination(registries.client(target.registry), target)],
        options=CopyOptions(),
    )
    assert result.ok, result
    return digest


# -- the exchange ------------------------------------------------------------------


async def test_a_token_is_obtained_with_a_signed_request_and_offered_as_bearer_token(
    exchange, oci_api, api_key
):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))

    credentials = await exchange.credentials("mel.ocir.io")

    assert credentials == Credentials("BEARER_TOKEN", FIRST)
    [seen] = oci_api.requests()
    assert seen.key_id == api_key.key_id
    assert seen.signature_valid


async def test_a_token_is_kept_until_shortly_before_it_expires(exchange, oci_api, clock):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST, expires_in=600))
    oci_api.expect("GET", TOKEN_PATH, issued(SECOND, expires_in=600))

    first = await exchange.credentials("mel.ocir.io")
    clock.now += 500  # well within the token's life: no request
    kept = await exchange.credentials("mel.ocir.io")
    clock.now += 60  # a minute before it expires
    renewed = await exchange.credentials("mel.ocir.io")

    assert (first.password, kept.password, renewed.password) == (FIRST, FIRST, SECOND)
    assert len(oci_api.requests()) == 2


async def test_a_short_lived_token_is_renewed_at_half_its_life(exchange, oci_api, clock):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST, expires_in=60))
    oci_api.expect("GET", TOKEN_PATH, issued(SECOND, expires_in=60))

    first = await exchange.credentials("mel.ocir.io")
    clock.now += 29
    kept = await exchange.credentials("mel.ocir.io")
    clock.now += 1
    renewed = await exchange.credentials("mel.ocir.io")

    assert (first.password, kept.password, renewed.password) == (FIRST, FIRST, SECOND)


async def test_each_region_has_its_own_token(exchange, oci_api):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))
    oci_api.expect("GET", TOKEN_PATH, issued(SECOND))

    mel = await exchange.credentials("mel.ocir.io")
    syd = await exchange.credentials("syd.ocir.io")

    assert (mel.password, syd.password) == (FIRST, SECOND)


async def test_a_registry_that_is_not_ocir_gets_no_token(exchange, oci_api):
    assert await exchange.credentials("registry.example.com") is None
    assert oci_api.requests() == []


async def test_a_denied_exchange_names_the_iam_policy(exchange, oci_api):
    oci_api.expect("GET", TOKEN_PATH, error(404, "NotAuthorizedOrNotFound", "Authorization failed"))

    with pytest.raises(AuthError) as raised:
        await exchange.credentials("mel.ocir.io")

    assert "Allow group <a group of ocid1.user." in str(raised.value)
    assert "to manage repos in tenancy" in str(raised.value)


async def test_an_unreachable_token_api_is_retryable(api_key):
    settings = token_settings(api_key, f"http://127.0.0.1:{free_port()}", "127.0.0.1:5999")
    exchange = OcirTokenExchange(settings)

    with pytest.raises(UnavailableError):
        await exchange.credentials("mel.ocir.io")
    exchange.close()


# -- used by the registry client ---------------------------------------------------


async def test_an_image_is_copied_to_a_token_registry_with_the_exchanged_token(
    registries, oci_api, source, mel, token_server
):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))

    digest = await copy_to_mel(registries, source, mel, "team/web")

    assert skopeo.manifest_digest(f"{mel.host}/ns/team/web:1", f"BEARER_TOKEN:{FIRST}") == digest
    assert token_server.refused == 0


async def test_a_refused_token_is_renewed_and_the_copy_goes_on(
    registries, oci_api, source, mel, token_server
):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))
    oci_api.expect("GET", TOKEN_PATH, issued(SECOND))
    await copy_to_mel(registries, source, mel, "team/web")
    token_server.password = SECOND  # OCIR no longer takes the first token

    digest = await copy_to_mel(registries, source, mel, "team/api")

    assert skopeo.manifest_digest(f"{mel.host}/ns/team/api:1", f"BEARER_TOKEN:{SECOND}") == digest
    assert token_server.refused == 1
    assert len(oci_api.requests()) == 2


async def test_tokens_are_never_logged(registries, oci_api, source, mel, token_server, caplog):
    caplog.set_level(logging.DEBUG)
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))
    oci_api.expect("GET", TOKEN_PATH, issued(SECOND))
    await copy_to_mel(registries, source, mel, "team/web")
    token_server.password = SECOND

    await copy_to_mel(registries, source, mel, "team/api")

    assert "obtained a registry token" in caplog.text
    assert FIRST not in caplog.text
    assert SECOND not in caplog.text


# -- settings and the service --------------------------------------------------------


def test_token_exchange_needs_no_username_or_auth_token():
    environ = service_env("127.0.0.1:9", {"mel": "127.0.0.1:9"}, OCI_REGISTRY_AUTH="token_exchange")
    del environ["OCI_USERNAME"], environ["OCI_AUTH_TOKEN"]

    Settings.from_environ(environ).require_service()


def test_the_auth_token_stays_the_default_and_required():
    environ = service_env("127.0.0.1:9", {"mel": "127.0.0.1:9"})
    del environ["OCI_AUTH_TOKEN"]

    with pytest.raises(ConfigError, match="OCI_AUTH_TOKEN is required"):
        Settings.from_environ(environ).require_service()


def test_an_unknown_registry_auth_is_named():
    environ = service_env("127.0.0.1:9", {"mel": "127.0.0.1:9"}, OCI_REGISTRY_AUTH="keyless")

    with pytest.raises(ConfigError, match="OCI_REGISTRY_AUTH='keyless'"):
        Settings.from_environ(environ).require_service()


def test_the_copy_command_logs_in_with_an_exchanged_token(api_key, oci_api, source, mel):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))
    pusher = Pusher(source.url)
    digest = pusher.image("team/cli", "1", build_image([layer_bytes(10_000, 8)]))
    pusher.close()

    done = run(
        "copy",
        f"--insecure={source.host}",
        f"{source.host}/team/cli:1",
        f"{mel.host}/ns/team/cli:1",  # region mel's registry, as OCIR_ENDPOINT_MEL says
        env={
            "OCI_REGISTRY_AUTH": "token_exchange",
            "OCI_CONFIG_FILE": str(api_key.path),
            "OCI_CONFIG_PROFILE": api_key.profile,
            "OCIR_ENDPOINT_MEL": f"http://{mel.host}",
            "OCIR_TOKEN_ENDPOINT_MEL": oci_api.url,
        },
    )

    assert done.returncode == 0, done.stderr
    assert skopeo.manifest_digest(f"{mel.host}/ns/team/cli:1", f"BEARER_TOKEN:{FIRST}") == digest
    assert FIRST not in done.stdout + done.stderr


def test_the_service_mirrors_with_exchanged_tokens(
    api_key, oci_api, source, mel, token_server, start_service_process
):
    oci_api.expect("GET", TOKEN_PATH, issued(FIRST))
    environ = service_env(
        source.host,
        {"mel": mel.host},
        OCI_REGISTRY_AUTH="token_exchange",
        OCI_CONFIG_FILE=str(api_key.path),
        OCI_CONFIG_PROFILE=api_key.profile,
        OCIR_TOKEN_ENDPOINT_MEL=oci_api.url,
    )
    del environ["OCI_USERNAME"], environ["OCI_AUTH_TOKEN"]
    service = start_service_process(environ)
    pusher = Pusher(source.url)
    digest = pusher.image("team/app", "1", build_image([layer_bytes(10_000, 7)]))
    pusher.close()

    answer = service.post(ecr_event("team/app", "1", digest=digest))
    job = service.wait_for_job(answer.json()["job_id"])

    assert job["destinations"]["mel"]["status"] == "succeeded", job
    assert skopeo.manifest_digest(f"{mel.host}/ns/team/app:1", f"BEARER_TOKEN:{FIRST}") == digest
    assert FIRST not in service.log()
