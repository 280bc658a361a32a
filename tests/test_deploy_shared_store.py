"""The shared-store overlay (deploy/overlays/shared-store) and the SQS template.

The overlay is rendered by tests/support/kustomize.py (and compared with
``kubectl kustomize`` where kubectl is installed), then held to the same
schemas as the base, to the service's settings, and — for KEDA's query — to
the real PostgreSQL schema the store creates.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import psycopg
import pytest
import yaml

from ecr_ocir_sync.jobs.postgres import PostgresJobStore
from ecr_ocir_sync.jobs.request import EVENT_ACTIONS, Action, SyncRequest
from ecr_ocir_sync.settings import Settings
from tests.support.kustomize import render
from tests.test_deploy import KUBERNETES_VERSIONS, UVICORN_GRACEFUL_SECONDS, _template_at
from tests.test_deploy import WITHOUT_SCHEMA as BASE_WITHOUT_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / "deploy" / "overlays" / "shared-store"
SQS_TEMPLATE = ROOT / "deploy" / "aws" / "eventbridge-sqs.yaml"
NONE = (None, None, None)  # digest, event time, event id
# CRDs: KEDA's checked by hand below; the base's as tests/test_deploy.py checks them.
WITHOUT_SCHEMA = {"ScaledObject", *BASE_WITHOUT_SCHEMA}


def _rendered() -> list[dict[str, Any]]:
    return render(OVERLAY)


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [
        doc
        for doc in _rendered()
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    return found


def _container() -> dict[str, Any]:
    [container] = _one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def _environment() -> dict[str, str]:
    """The pod's environment, with well-formed stand-ins for the secrets."""
    environment = dict(_one("ConfigMap", "ecr-ocir-sync-config")["data"])
    secrets = {
        "OCI_REPO_REGION_KEY": "mel,syd",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
        "SYNC_DATABASE_URL": "postgresql://sync:secret@db.internal:5432/sync",
    }
    for variable in _container()["env"]:
        name = variable["name"]
        environment[name] = variable.get("value") or secrets.get(name, "x" * 32)
    return environment


def test_the_overlay_renders_what_kubectl_kustomize_renders() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here: the Python rendering stands alone")
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    by_kubectl = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout)}
    assert {(d["kind"], d["metadata"]["name"]): d for d in _rendered()} == by_kubectl


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_overlay_manifest_matches_the_kubernetes_schema(version: str) -> None:
    for document in _rendered():
        if document["kind"] not in WITHOUT_SCHEMA:
            kubernetes_validate.validate(document, version, strict=True)


def test_the_overlay_has_no_cpu_autoscaler_to_fight_keda() -> None:
    assert not [doc for doc in _rendered() if doc["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_original_cpu_autoscaler_is_kept_by_name_for_clusters_without_keda(
    version: str,
) -> None:
    hpa = yaml.safe_load((OVERLAY / "image-sync-hpa.yaml").read_text())
    kubernetes_validate.validate(hpa, version, strict=True)
    statefulset = next(doc for doc in _rendered() if doc["kind"] == "StatefulSet")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", statefulset["metadata"]["name"])
    # Never below the overlay's PDB-backed floor of two pods (intake stays up while one drains).
    assert hpa["spec"]["minReplicas"] >= 2


def test_every_pod_reads_the_database_url_from_its_secret() -> None:
    [variable] = [v for v in _container()["env"] if v["name"] == "SYNC_DATABASE_URL"]
    reference = variable["valueFrom"]["secretKeyRef"]
    example = yaml.safe_load((OVERLAY / "secrets.example.yaml").read_text())
    assert (reference["name"], reference["key"]) == (example["metadata"]["name"], "url")
    assert list(example["stringData"]) == ["url"]
    assert "REPLACE_ME" in example["stringData"]["url"]


def test_the_overlay_pod_environment_selects_the_shared_store() -> None:
    settings = Settings.from_environ(_environment()).require_service()

    assert settings.database_url is not None
    assert settings.reconcile_leader  # every pod may reconcile; the database lock picks one


def test_each_pod_keeps_a_spool_volume_of_its_own_that_goes_with_it() -> None:
    statefulset = _one("StatefulSet")
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == _environment()["SYNC_DATA_DIR"]
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenScaled": "Delete",
        "whenDeleted": "Delete",
    }


def test_termination_grace_outlasts_the_longer_drain() -> None:
    grace = _one("StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    drain = float(_environment()["SYNC_DRAIN_SECONDS"])
    assert grace > drain + UVICORN_GRACEFUL_SECONDS


def test_keda_scales_the_statefulset_between_the_pdb_and_its_maximum() -> None:
    scaled = _one("ScaledObject")
    statefulset = _one("StatefulSet")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    minimum, maximum = scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]
    assert statefulset["spec"]["replicas"] == minimum
    assert _one("PodDisruptionBudget")["spec"]["maxUnavailable"] < minimum < maximum


def test_keda_targets_each_pods_worker_count_from_the_pods_own_database_url() -> None:
    [trigger] = _one("ScaledObject")["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["connectionFromEnv"] in {v["name"] for v in _container()["env"]}
    assert trigger["metadata"]["targetQueryValue"] == _environment()["SYNC_WORKERS"]


async def test_the_keda_query_counts_runnable_jobs_in_the_real_schema(database_url) -> None:
    store = PostgresJobStore(database_url)
    await store.start()
    for tag in ("1", "2", "3"):
        request = SyncRequest(Action.PUSH, "123456789012", "ap-southeast-2", "app", tag, *NONE)
        await store.submit(request)
    await store.lease("w", 60)
    await store.stop()
    [trigger] = _one("ScaledObject")["spec"]["triggers"]

    with psycopg.connect(database_url) as connection:
        [(count,)] = connection.execute(trigger["metadata"]["query"]).fetchall()

    assert count == 3  # one running, two ready


# --- EventBridge → SQS (CloudFormation) ---------------------------------------


def test_the_rule_puts_every_synced_event_on_the_queue() -> None:
    resources = _template_at(SQS_TEMPLATE)["Resources"]
    rule = resources["Rule"]["Properties"]
    for pattern in rule["EventPattern"]["Fn::If"][1:]:
        assert pattern["source"] == ["aws.ecr"]
        assert set(pattern["detail"]["action-type"]) == {action.value for action in EVENT_ACTIONS}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert "InputTransformer" not in target  # the service parses the whole event


def test_the_queue_dead_letters_what_the_service_cannot_take() -> None:
    resources = _template_at(SQS_TEMPLATE)["Resources"]
    redrive = resources["Queue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    [statement] = resources["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"


def test_the_consumer_policy_allows_what_the_intake_calls() -> None:
    policy = _template_at(SQS_TEMPLATE)["Resources"]["ConsumerPolicy"]["Properties"]
    [statement] = policy["PolicyDocument"]["Statement"]
    source = (ROOT / "src" / "ecr_ocir_sync" / "service" / "sqs.py").read_text()
    for call, action in (
        ("receive_message", "ReceiveMessage"),
        ("delete_message", "DeleteMessage"),
    ):
        assert f'"{call}"' in source
        assert f"sqs:{action}" in statement["Action"]
