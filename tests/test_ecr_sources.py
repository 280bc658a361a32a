"""Several ECR sources (AWS accounts x regions): each read at its own endpoint, as itself."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import skopeo
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.ports import free_port
from tests.support.service import ACCOUNT, CLI, REGION, ecr_event, service_env

OTHER = "210987654321"


def moto_password(account: str) -> str:
    """The registry password moto's GetAuthorizationToken hands out for ``account``."""
    return f"{account}-auth-token"


def two_accounts_env(hosts: dict[str, str], mel: str, moto_server: str) -> dict[str, str]:
    """Both accounts allowed, each with its own registry (account → host)."""
    environ = service_env(
        "unused:5000",
        {"mel": mel},
        SYNC_ALLOWED_ACCOUNTS=",".join(hosts),
        SYNC_SHARED_DESTINATIONS="true",
        AWS_ENDPOINT_URL_ECR=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        **{f"ECR_ENDPOINT_{a}_AP_SOUTHEAST_2": f"http://{host}" for a, host in hosts.items()},
    )
    del environ["ECR_ENDPOINT"]
    return environ


def test_each_account_is_read_at_its_own_endpoint_with_its_own_login(
    moto_server, start_registry, start_service_process
):
    # Each stand-in ECR accepts only the login GetAuthorizationToken gives its account.
    ecrs = {
        account: start_registry(f"ecr-{account}", username="AWS", password=moto_password(account))
        for account in (ACCOUNT, OTHER)
    }
    mel = start_registry("mel")
    images = {}
    for seed, (account, ecr) in enumerate(ecrs.items()):
        images[account] = build_image([layer_bytes(5_000, 600 + seed)])
        pusher = Pusher(ecr.url, ("AWS", moto_password(account)))
        pusher.image(f"team/{account}", "1", images[account])
        pusher.close()
    service = start_service_process(
        two_accounts_env({a: ecr.host for a, ecr in ecrs.items()}, mel.host, moto_server)
    )

    for account, image in images.items():
        event = ecr_event(f"team/{account}", "1", digest=image.digest)
        event["account"] = account
        answer = service.post(event)
        assert answer.status_code == 202, answer.text
        service.wait_for_job(answer.json()["job_id"])

    for account, image in images.items():
        assert skopeo.manifest_digest(f"{mel.host}/ns/team/{account}:1") == image.digest


@pytest.mark.parametrize("command", ["serve", "reconcile"])
def test_serve_and_reconcile_refuse_several_accounts_without_shared_destinations(command, tmp_path):
    environ = two_accounts_env({ACCOUNT: "127.0.0.1:9", OTHER: "127.0.0.2:9"}, "127.0.0.1:9", "")
    del environ["SYNC_SHARED_DESTINATIONS"]
    arguments = ["--port", str(free_port())] if command == "serve" else []

    done = subprocess.run(
        [CLI, command, *arguments],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SYNC_DATA_DIR": str(tmp_path), **environ},
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "SYNC_ALLOWED_ACCOUNTS and SYNC_ALLOWED_REGIONS allow 2 ECR sources" in done.stderr
    assert "SYNC_SHARED_DESTINATIONS=true" in done.stderr
