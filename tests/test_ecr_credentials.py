"""ECR logins come from GetAuthorizationToken (moto), are cached and refreshed before expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from moto import mock_aws

from ecr_ocir_sync.cloud.ecr_auth import EcrCredentialProvider
from ecr_ocir_sync.engine.copy import copy_image
from ecr_ocir_sync.engine.destination import Destination
from ecr_ocir_sync.oci.reference import parse_reference
from ecr_ocir_sync.registry.pool import Registries
from tests.conftest import FAST_RETRY
from tests.support import skopeo
from tests.support.images import Pusher, build_image, layer_bytes

ACCOUNT = "123456789012"
MOTO_PASSWORD = f"{ACCOUNT}-auth-token"  # what moto's GetAuthorizationToken hands out
MOTO_EXPIRY = datetime(2015, 1, 1, tzinfo=UTC).timestamp()  # and the expiry it states


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def local_ecr(start_registry):
    """A registry that accepts exactly the login ECR would issue."""
    return start_registry("ecr", username="AWS", password=MOTO_PASSWORD)


def provider_for(host: str, clock: Clock) -> EcrCredentialProvider:
    return EcrCredentialProvider(hosts={host: (ACCOUNT, "ap-southeast-2")}, clock=clock)


async def copy_from_ecr(provider, local_ecr, dest_open) -> bool:
    source = parse_reference(f"{local_ecr.host}/app:1")
    target = parse_reference(f"{dest_open.host}/app:1")
    insecure = frozenset({local_ecr.host, dest_open.host})
    async with Registries(provider, insecure=insecure, retry=FAST_RETRY) as registries:
        result = await copy_image(
            registries.client(local_ecr.host),
            source,
            [Destination(registries.client(target.registry), target)],
        )
    return result.ok


async def test_an_ecr_source_is_read_with_the_token_from_get_authorization_token(
    aws, local_ecr, dest_open
):
    image = build_image([layer_bytes(20_000, 110)])
    pusher = Pusher(local_ecr.url, ("AWS", MOTO_PASSWORD))
    pusher.image("app", "1", image)
    pusher.close()
    provider = provider_for(local_ecr.host, Clock(MOTO_EXPIRY - 6 * 3600))

    assert await copy_from_ecr(provider, local_ecr, dest_open)

    assert provider.fetches == 1
    assert skopeo.manifest_digest(f"{dest_open.host}/app:1") == image.digest


async def test_the_token_is_reused_while_it_is_fresh(aws, local_ecr):
    provider = provider_for(local_ecr.host, Clock(MOTO_EXPIRY - 6 * 3600))

    first = await provider.credentials(local_ecr.host)
    second = await provider.credentials(local_ecr.host)

    assert first == second
    assert first is not None
    assert (first.username, first.password) == ("AWS", MOTO_PASSWORD)
    assert provider.fetches == 1


async def test_the_token_is_refreshed_before_its_twelve_hour_expiry(aws, local_ecr):
    clock = Clock(MOTO_EXPIRY - 6 * 3600)
    provider = provider_for(local_ecr.host, clock)
    await provider.credentials(local_ecr.host)

    clock.now = MOTO_EXPIRY - 10 * 60  # ten minutes before expiry: inside the refresh margin
    await provider.credentials(local_ecr.host)

    assert provider.fetches == 2


async def test_a_standard_ecr_hostname_needs_no_configuration(aws):
    provider = EcrCredentialProvider(hosts={}, clock=Clock(MOTO_EXPIRY - 3600))

    found = await provider.credentials(f"{ACCOUNT}.dkr.ecr.ap-southeast-2.amazonaws.com")

    assert found is not None
    assert found.username == "AWS"


async def test_hosts_that_are_not_ecr_get_nothing_from_it(aws):
    provider = EcrCredentialProvider(hosts={}, clock=Clock(MOTO_EXPIRY - 3600))

    assert await provider.credentials("mel.ocir.io") is None
    assert provider.fetches == 0
