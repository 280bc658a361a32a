"""The service obeys sync rules, brings signatures along and creates OCIR repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import skopeo
from tests.support.artifacts import SigningKey, signature, tag_for
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.oci_api import (
    COMPARTMENT,
    NAMESPACE,
    REPOSITORIES,
    OciApiServer,
    created,
    listing,
    write_api_key_config,
)
from tests.support.service import ecr_event, service_env


def push(server, repository: str, tag: str, image) -> str:
    pusher = Pusher(server.url)
    try:
        return pusher.image(repository, tag, image)
    finally:
        pusher.close()


def env_for(ecr, mel, syd, namespace: str = "ns", **extra: str) -> dict[str, str]:
    return service_env(ecr.host, {"mel": mel.host, "syd": syd.host}, namespace=namespace, **extra)


@pytest.fixture
def registries3(start_registry):
    return start_registry("ecr"), start_registry("mel"), start_registry("syd")


RULES = r"""version: 1
rules:
  - name: releases
    repositories: {include: ["team/**"]}
    tags: {include: ['v\d+\.\d+']}
    regions: [mel]
    mapping: {strip_prefix: "team/", add_prefix: "mirror/"}
"""


def test_an_event_lands_where_its_rule_maps_it_and_only_in_its_regions(
    registries3, start_service_process, tmp_path: Path
):
    ecr, mel, syd = registries3
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    digest = push(ecr, "team/web", "v1.2", build_image([layer_bytes(10_000, 400)]))
    service = start_service_process(env_for(ecr, mel, syd, SYNC_RULES_FILE=str(rules)))

    answer = service.post(ecr_event("team/web", "v1.2", digest=digest))
    service.wait_for_job(answer.json()["job_id"])

    assert skopeo.manifest_digest(f"{mel.host}/ns/mirror/web:v1.2") == digest
    assert not skopeo.exists(f"{syd.host}/ns/mirror/web:v1.2")
    assert not skopeo.exists(f"{mel.host}/ns/team/web:v1.2")


def test_an_event_no_rule_places_is_acknowledged_and_ignored(
    registries3, start_service_process, tmp_path: Path
):
    ecr, mel, syd = registries3
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    service = start_service_process(env_for(ecr, mel, syd, SYNC_RULES_FILE=str(rules)))

    answer = service.post(ecr_event("team/web", "latest"))

    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ignored",
        "message": "no sync rule places team/web:latest (see SYNC_RULES_FILE)",
    }


def test_a_cosign_signature_comes_along_with_its_image(registries3, start_service_process):
    ecr, mel, syd = registries3
    image = build_image([layer_bytes(10_000, 401)])
    digest = push(ecr, "signed", "1", image)
    sig = signature(f"{ecr.host}/signed", digest, SigningKey.generate())
    push(ecr, "signed", tag_for(digest, "sig"), sig)
    service = start_service_process(env_for(ecr, mel, syd))

    job = service.wait_for_job(
        service.post(ecr_event("signed", "1", digest=digest)).json()["job_id"]
    )

    for server in (mel, syd):
        assert skopeo.manifest_digest(f"{server.host}/ns/signed:{tag_for(digest, 'sig')}") == (
            sig.digest
        )
    assert all(record["status"] == "succeeded" for record in job["destinations"].values())


def test_missing_ocir_repositories_are_created_in_the_compartment_before_the_push(
    registries3, start_service_process, tmp_path: Path
):
    ecr, mel, syd = registries3
    api_key = write_api_key_config(tmp_path / "oci")
    api = OciApiServer(verify_key=api_key.public_key).start()
    for _region in ("mel", "syd"):
        api.expect(
            "GET",
            REPOSITORIES,
            listing(),
            query={"compartmentId": COMPARTMENT, "displayName": "made"},
        )
        api.expect("POST", REPOSITORIES, created)
    digest = push(ecr, "made", "1", build_image([layer_bytes(10_000, 402)]))
    try:
        service = start_service_process(
            env_for(
                ecr,
                mel,
                syd,
                namespace=NAMESPACE,
                OCI_COMPARTMENT_ID=COMPARTMENT,
                OCI_CONFIG_FILE=str(api_key.path),
                OCI_CONFIG_PROFILE=api_key.profile,
                OCI_ARTIFACTS_ENDPOINT_MEL=api.url,
                OCI_ARTIFACTS_ENDPOINT_SYD=api.url,
                SYNC_USAGE_INTERVAL_SECONDS="0",  # usage reads have their own tests
            )
        )
        service.wait_for_job(service.post(ecr_event("made", "1", digest=digest)).json()["job_id"])
    finally:
        api.stop()

    api.check_finished()
    creations = api.requests("POST")
    assert [c.body["displayName"] for c in creations] == ["made", "made"]
    assert all(c.body["compartmentId"] == COMPARTMENT for c in creations)
    assert skopeo.manifest_digest(f"{mel.host}/{NAMESPACE}/made:1") == digest
