"""The deployment files: Dockerfile, deploy/kubernetes/, deploy/aws/, scripts/test-hpa.sh.

Static checks, no cluster, docker daemon or AWS account: the Kubernetes JSON
schemas, the linters (hadolint, cfn-lint, shellcheck; installed with the dev
extras), and the contract between the manifests and what the service reads
(the fields of ``settings.Settings``), the image (Dockerfile) and the original
service's secret names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.credentials
import botocore.session
import kubernetes_validate
import pytest
import yaml

from ecr_ocir_sync.jobs.request import EVENT_ACTIONS
from ecr_ocir_sync.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
TEMPLATE = ROOT / "deploy" / "aws" / "eventbridge.yaml"
HPA_SCRIPT = ROOT / "scripts" / "test-hpa.sh"
TOOLS = Path(sys.executable).parent  # the venv's bin: the dev extras put the linters there

# The oldest Kubernetes still widely run, and a recent one (both ship with kubernetes-validate).
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")

# No Kubernetes schema exists for these; each is checked by hand in the test named.
WITHOUT_SCHEMA = {
    "ServiceMonitor": "Prometheus Operator CRD: test_servicemonitor_scrapes_the_operations_port",
    "PrometheusRule": "Prometheus Operator CRD: tests/test_monitoring.py (promtool checks)",
    "Kustomization": "kustomize's own file: test_kustomization_applies_every_manifest_but_secrets",
}

# The original service's secrets, which its users already have: env var → (secret, key).
ORIGINAL_SECRETS = {
    "AWS_ACCESS_KEY_ID": ("aws-credentials", "access-key-id"),
    "AWS_SECRET_ACCESS_KEY": ("aws-credentials", "secret-access-key"),
    "AWS_DEFAULT_REGION": ("aws-credentials", "default-region"),
    "OCI_TENANCY": ("oci-credentials", "OCI_TENANCY"),
    "OCI_USERNAME": ("oci-credentials", "OCI_USERNAME"),
    "OCI_AUTH_TOKEN": ("oci-credentials", "OCI_AUTH_TOKEN"),
    "OCI_REGION": ("oci-credentials", "OCI_REGION"),
    "OCI_REPO_REGION_KEY": ("oci-credentials", "OCI_REPO_REGION_KEY"),
}
API_KEY_SECRET = {"SYNC_API_KEY": ("ecr-ocir-sync-api-key", "api-key")}

# What `serve` cannot start without (SYNC_ALLOWED_REGIONS may instead come from
# AWS_DEFAULT_REGION; SYNC_API_KEY may be waived only by SYNC_ALLOW_UNAUTHENTICATED).
REQUIRED = (
    "OCI_TENANCY",
    "OCI_USERNAME",
    "OCI_AUTH_TOKEN",
    "OCI_REPO_REGION_KEY",
    "SYNC_ALLOWED_ACCOUNTS",
    "SYNC_API_KEY",
)

# server.py gives uvicorn this long to close connections after the drain.
UVICORN_GRACEFUL_SECONDS = 5

PLACEHOLDER = re.compile(r"REPLACE_ME")


# --- reading the files --------------------------------------------------------


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(KUBE.glob("*.yaml")):
        for document in _yaml_documents(path):
            yield path.name, document


def _find(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in _manifests()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _statefulset() -> dict[str, Any]:
    return _find("StatefulSet", "ecr-ocir-sync")


def _container() -> dict[str, Any]:
    containers = _statefulset()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _configmap_data() -> dict[str, str]:
    """Every ConfigMap the container takes whole (envFrom), merged."""
    data: dict[str, str] = {}
    for source in _container().get("envFrom", []):
        assert "configMapRef" in source, f"unexpected envFrom source {source}"
        assert not source.get("prefix"), "a prefix would rename every variable"
        data |= _find("ConfigMap", source["configMapRef"]["name"])["data"]
    return data


def _secret_refs() -> dict[str, tuple[str, str]]:
    """env var → (secret, key) for every secretKeyRef."""
    refs = {}
    for variable in _container()["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            refs[variable["name"]] = (ref["name"], ref["key"])
    return refs


def _pod_variable_names() -> list[str]:
    """Every environment variable the StatefulSet gives the container."""
    return [variable["name"] for variable in _container()["env"]] + list(_configmap_data())


def _pod_environment(secret_values: Mapping[str, str]) -> dict[str, str]:
    """The container's environment, with secret values from ``secret_values``."""
    environment = dict(_configmap_data())
    for variable in _container()["env"]:
        name = variable["name"]
        if "value" in variable:
            environment[name] = variable["value"]
        else:
            assert "secretKeyRef" in variable["valueFrom"], f"{name}: unexpected source"
            environment[name] = secret_values.get(name, "x" * 32)
    return environment


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _dockerfile(keyword: str) -> list[str]:
    return [arguments for found, arguments in _dockerfile_instructions() if found == keyword]


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads the short-form intrinsics (!Ref, !If, ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def _template_at(path: Path) -> dict[str, Any]:
    # A SafeLoader subclass: only the intrinsic tags are added.
    return yaml.load(path.read_text(), Loader=_CloudFormationLoader)


def _template() -> dict[str, Any]:
    return _template_at(TEMPLATE)


def _run_tool(name: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    tool = TOOLS / name
    if not tool.exists():
        pytest.fail(f"{name} is not installed in {TOOLS}: pip install -e '.[dev]'")
    return subprocess.run(
        [str(tool), *arguments], capture_output=True, text=True, timeout=60, check=False
    )


def _variables_the_service_reads() -> set[str]:
    """The settings model's variables: its fields' aliases (families by their README name,
    e.g. OCIR_ENDPOINT_<KEY>), the informational ones and the fallbacks."""
    return Settings.variables()


def _variables_boto3_reads() -> set[str]:
    """AWS_* names botocore's session and credential chain read."""
    names = {
        botocore.credentials.EnvProvider.ACCESS_KEY,
        botocore.credentials.EnvProvider.SECRET_KEY,
        botocore.credentials.EnvProvider.EXPIRY_TIME,
        *botocore.credentials.EnvProvider.TOKENS,
        *botocore.credentials.AssumeRoleWithWebIdentityProvider._CONFIG_TO_ENV_VAR.values(),
    }
    for _, env, _, _ in botocore.session.BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        names.update([env] if isinstance(env, str) else env or ())
    return names


# Families read by prefix: OCIR_ENDPOINT_<KEY> and the others (settings.py),
# AWS_ENDPOINT_URL_<SERVICE> (boto3).
KNOWN_PREFIXES = (*Settings.FAMILIES.values(), "AWS_ENDPOINT_URL_")


# --- Kubernetes: schemas ------------------------------------------------------

SCHEMA_CHECKED = [
    pytest.param(doc, version, id=f"{file}:{doc['kind']}/{doc['metadata']['name']}@{version}")
    for file, doc in _manifests()
    if doc["kind"] not in WITHOUT_SCHEMA
    for version in KUBERNETES_VERSIONS
]


@pytest.mark.parametrize(("document", "version"), SCHEMA_CHECKED)
def test_manifest_matches_the_kubernetes_schema(document: dict[str, Any], version: str) -> None:
    # strict: unknown fields (typos, misplaced keys) are errors, as the API server's
    # field validation makes them.
    kubernetes_validate.validate(document, version, strict=True)


def test_only_the_crds_and_the_kustomization_skip_schema_validation() -> None:
    skipped = {doc["kind"] for _, doc in _manifests() if doc["kind"] in WITHOUT_SCHEMA}
    assert skipped == set(WITHOUT_SCHEMA)
    for kind in WITHOUT_SCHEMA:
        document = next(doc for _, doc in _manifests() if doc["kind"] == kind)
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)


def test_servicemonitor_scrapes_the_operations_port() -> None:
    monitor = _find("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [
        doc
        for _, doc in _manifests()
        if doc["kind"] == "Service" and wanted.items() <= doc["metadata"]["labels"].items()
    ]
    # Exactly one: selecting the headless Service too would scrape every pod twice.
    assert [s["metadata"]["name"] for s in services] == ["ecr-ocir-sync-ops"]
    assert services[0]["spec"].get("clusterIP") != "None"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "ops"
    assert [port["targetPort"] for port in services[0]["spec"]["ports"]] == ["ops"]


def test_kustomization_applies_every_manifest_but_secrets() -> None:
    kustomization = _find("Kustomization")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    manifests = {p.name for p in KUBE.glob("*.yaml")} - {
        "kustomization.yaml",
        "secrets.example.yaml",
    }
    assert set(kustomization["resources"]) == manifests
    assert "secrets.example.yaml" not in kustomization["resources"]


def test_kustomization_image_entry_names_the_container_image() -> None:
    image = _container()["image"]
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    assert [entry["name"] for entry in _find("Kustomization")["images"]] == [name]


def _kustomize_build() -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/kubernetes`` (what ``kubectl apply -k`` applies)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here: the kustomize build is not checked")
    version = subprocess.run(
        [kubectl, "version", "--client", "--output=json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    found = re.match(
        r"v(\d+)\.(\d+)", json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    )
    if found is None or (int(found[1]), int(found[2])) < (4, 1):
        pytest.skip("this kubectl's kustomize predates the `labels:` field (v4.1)")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_build_renders_every_resource_labelled_and_valid() -> None:
    listed = set(_find("Kustomization")["resources"])
    expected = {
        (doc["kind"], doc["metadata"]["name"]) for file, doc in _manifests() if file in listed
    }
    rendered = _kustomize_build()
    assert {(doc["kind"], doc["metadata"]["name"]) for doc in rendered} == expected
    for doc in rendered:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ecr-ocir-sync"
        if doc["kind"] not in WITHOUT_SCHEMA:
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)


# --- Kubernetes: the pod's environment against settings.py ----------------------


def test_pod_sets_only_variables_the_service_reads() -> None:
    known = _variables_the_service_reads() | _variables_boto3_reads()
    unknown = [
        name
        for name in _pod_variable_names()
        if name not in known and not name.startswith(KNOWN_PREFIXES)
    ]
    assert unknown == [], f"set by the StatefulSet, read by nothing: {unknown}"


def test_pod_sets_no_variable_twice() -> None:
    names = _pod_variable_names()
    assert sorted(names) == sorted(set(names)), "env and the ConfigMap overlap"


@pytest.mark.parametrize("name", REQUIRED)
def test_pod_sets_required_variable(name: str) -> None:
    assert name in _pod_variable_names()


def test_pod_sets_allowed_regions_or_its_aws_default_region_fallback() -> None:
    names = _pod_variable_names()
    assert "SYNC_ALLOWED_REGIONS" in names or "AWS_DEFAULT_REGION" in names


# Secrets hold whatever the operator put there; these are well-formed values for them.
SETTINGS_FOR_SECRETS = {
    "OCI_REPO_REGION_KEY": "mel,syd",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
    "OCI_REGION": "ap-melbourne-1",
}


def test_pod_environment_passes_service_settings_validation() -> None:
    # the settings judge the rest (ConfigMap values, literal values).
    environment = _pod_environment(SETTINGS_FOR_SECRETS)
    settings = Settings.from_environ(environment).require_service()
    assert settings.api_key is not None


def test_job_store_is_on_the_per_pod_volume() -> None:
    # Set explicitly, not left to settings.py's default, so the two cannot drift apart.
    data_dir = _pod_environment({})["SYNC_DATA_DIR"]
    mounts = {mount["name"]: mount["mountPath"] for mount in _container()["volumeMounts"]}
    claims = [claim["metadata"]["name"] for claim in _statefulset()["spec"]["volumeClaimTemplates"]]
    assert claims == ["data"]
    assert Path(mounts["data"]) == Path(data_dir)


# --- Kubernetes: secrets ------------------------------------------------------


def test_secret_names_and_keys_are_the_original_services() -> None:
    assert _secret_refs() == ORIGINAL_SECRETS | API_KEY_SECRET


def test_example_secrets_define_exactly_the_referenced_keys() -> None:
    defined = {
        (doc["metadata"]["name"], key)
        for doc in _yaml_documents(KUBE / "secrets.example.yaml")
        for key in doc.get("stringData", {})
    }
    assert defined == set(_secret_refs().values())


def test_example_secrets_hold_only_placeholders() -> None:
    for doc in _yaml_documents(KUBE / "secrets.example.yaml"):
        assert doc["kind"] == "Secret"
        # `data` is base64, where a real value would not show; only stringData is allowed.
        assert "data" not in doc, f"{doc['metadata']['name']}: use stringData placeholders"
        for key, value in doc["stringData"].items():
            assert PLACEHOLDER.fullmatch(value), f"{doc['metadata']['name']}.{key}={value!r}"


# --- Kubernetes: lifecycle, probes, hardening, scaling ------------------------


def test_termination_grace_outlasts_the_drain() -> None:
    environment = _pod_environment({})
    default = Settings.model_fields["drain_seconds"].default
    drain = float(environment.get("SYNC_DRAIN_SECONDS", default))
    grace = _statefulset()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # The kubelet kills at the grace period: the drain and uvicorn's close must fit in it.
    assert grace > drain + UVICORN_GRACEFUL_SECONDS


def test_probes_use_the_health_endpoints_on_the_operations_port() -> None:
    container = _container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    settings = Settings.from_environ(_pod_environment(SETTINGS_FOR_SECRETS)).require_service()
    assert ports == {"http": 8080, "ops": settings.ops_port}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    annotations = _statefulset()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.ops_port)


def test_network_policy_admits_the_api_only_on_the_service_port() -> None:
    policy = _find("NetworkPolicy")
    pod_labels = _statefulset()["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = policy["spec"]["ingress"]
    open_ports = [port["port"] for rule in rules if "from" not in rule for port in rule["ports"]]
    assert open_ports == ["http"]  # the only port anyone may reach: /sync and /jobs
    ops = [rule for rule in rules if any(port["port"] == "ops" for port in rule["ports"])]
    assert len(ops) == 1
    assert ops[0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    container_ports = {port["name"] for port in _container()["ports"]}
    assert {port["port"] for rule in rules for port in rule["ports"]} == container_ports


def test_pod_runs_hardened_with_a_writable_tmp() -> None:
    pod = _statefulset()["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    tmp = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp")
    volume = next(volume for volume in pod["volumes"] if volume["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_pod_user_is_the_image_user() -> None:
    arguments = dict(re.findall(r"^(\w+)=(\S+)$", "\n".join(_dockerfile("ARG")), re.MULTILINE))
    assert _dockerfile("USER") == ["${APP_UID}:${APP_GID}"]
    pod = _statefulset()["spec"]["template"]["spec"]["securityContext"]
    assert str(pod["runAsUser"]) == arguments["APP_UID"]
    assert str(pod["fsGroup"]) == arguments["APP_GID"]


def test_selectors_match_the_pod_labels() -> None:
    statefulset = _statefulset()
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "StatefulSet": statefulset["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": _find("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    }
    for _, doc in _manifests():
        if doc["kind"] == "Service":
            selectors[f"Service {doc['metadata']['name']}"] = doc["spec"]["selector"]
    for owner, selector in selectors.items():
        assert selector.items() <= pod_labels.items(), owner


def test_headless_service_governs_the_statefulset() -> None:
    service = _find("Service", _statefulset()["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"


def test_clusterip_service_maps_port_80_to_http() -> None:
    service = _find("Service", "ecr-ocir-sync")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


def test_the_base_runs_one_pod_on_its_own_sqlite_store() -> None:
    # SQLite serves one process: a second pod would split per-tag order and /jobs.
    # More pods run on the shared store (deploy/overlays/shared-store).
    assert _statefulset()["spec"]["replicas"] == 1
    assert not [doc for _, doc in _manifests() if doc["kind"] == "HorizontalPodAutoscaler"]
    assert "SYNC_DATABASE_URL" not in _pod_variable_names()


# --- the image ----------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = _run_tool("hadolint", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_stages_share_one_pinned_base_image() -> None:
    arguments = dict(re.findall(r"^(\w+)=(\S+)$", "\n".join(_dockerfile("ARG")), re.MULTILINE))
    base = arguments["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    # The runtime venv's python is a symlink into the base image: the same image in both.
    assert [line.split()[0] for line in _dockerfile("FROM")] == ["${PYTHON_IMAGE}"] * 2


def test_image_runs_the_console_script_serving_on_the_probed_port() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert _dockerfile("ENTRYPOINT") == ['["ecr-ocir-sync"]']
    assert "ecr-ocir-sync" in scripts
    assert _dockerfile("CMD") == ['["serve"]']
    assert _dockerfile("EXPOSE") == ["8080 8081"]
    assert _container()["args"][0] == "serve"


def test_image_keeps_its_job_store_where_the_pod_mounts_it() -> None:
    environment = " ".join(_dockerfile("ENV"))
    assert "SYNC_DATA_DIR=/var/lib/ecr-ocir-sync" in environment
    assert _dockerfile("VOLUME") == ['["/var/lib/ecr-ocir-sync"]']
    assert "PYTHONDONTWRITEBYTECODE=1" in environment
    assert "PYTHONUNBUFFERED=1" in environment
    mounts = {mount["name"]: mount["mountPath"] for mount in _container()["volumeMounts"]}
    assert mounts["data"] == "/var/lib/ecr-ocir-sync"


def test_dockerignore_admits_exactly_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list keeps .git, .venv, tests and caches out"
    admitted = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {
        source.rstrip("/")
        for arguments in _dockerfile("COPY")
        if not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    assert admitted == copied
    assert all((ROOT / path).exists() for path in copied)


# --- EventBridge (CloudFormation) ---------------------------------------------


@pytest.mark.parametrize("template", sorted(TEMPLATE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_cloudformation_template_passes_cfn_lint(template: Path) -> None:
    result = _run_tool("cfn-lint", "--", str(template))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_eventbridge_rule_sends_what_the_service_syncs() -> None:
    rule = _template()["Resources"]["Rule"]["Properties"]
    condition, with_prefix, without_prefix = rule["EventPattern"]["Fn::If"]
    assert condition == "HasRepositoryPrefix"
    for pattern in (with_prefix, without_prefix):
        assert pattern["source"] == ["aws.ecr"]
        assert pattern["detail-type"] == ["ECR Image Action"]
        assert pattern["detail"]["result"] == ["SUCCESS"]
        assert set(pattern["detail"]["action-type"]) == {action.value for action in EVENT_ACTIONS}
    assert with_prefix["detail"]["repository-name"] == [{"prefix": {"Ref": "RepositoryPrefix"}}]
    assert "repository-name" not in without_prefix["detail"]


def test_eventbridge_sends_the_api_key_header_the_service_checks() -> None:
    resources = _template()["Resources"]
    api_key = resources["Connection"]["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]
    assert api_key == {"ApiKeyName": "X-API-Key", "ApiKeyValue": {"Ref": "ApiKey"}}
    assert _template()["Parameters"]["ApiKey"]["NoEcho"] is True
    destination = resources["ApiDestination"]["Properties"]
    assert destination["HttpMethod"] == "POST"
    assert destination["InvocationEndpoint"] == {"Ref": "ServiceUrl"}


def test_eventbridge_retries_for_a_day_then_dead_letters() -> None:
    resources = _template()["Resources"]
    [target] = resources["Rule"]["Properties"]["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    [statement] = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"


# --- scripts/test-hpa.sh ------------------------------------------------------


def test_hpa_script_passes_shellcheck() -> None:
    result = _run_tool("shellcheck", str(HPA_SCRIPT))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hpa_script_without_arguments_prints_usage_and_fails() -> None:
    result = subprocess.run(
        ["bash", str(HPA_SCRIPT)], capture_output=True, text=True, timeout=10, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: scripts/test-hpa.sh")


@pytest.mark.parametrize(
    ("option", "value"), [("-n", "201"), ("-s", "4096"), ("-b", "100000"), ("-t", "86400")]
)
def test_hpa_script_refuses_unbounded_runs(option: str, value: str) -> None:
    required = ["-u", "https://sync.invalid", "-a", "123456789012", "-r", "ap-southeast-2"]
    result = subprocess.run(
        ["bash", str(HPA_SCRIPT), *required, "-p", "hpa-test", option, value],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert f"{option} must be an integer" in result.stderr


# --- everything ---------------------------------------------------------------

CREDENTIAL_SHAPES = re.compile(
    r"AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|ocid1\.(user|tenancy)\.oc1\.\.[a-z0-9]{20,}"  # OCI identities
    r"|X-API-Key: [A-Za-z0-9]{16,}"
)


@pytest.mark.parametrize(
    "path",
    [DOCKERFILE, DOCKERIGNORE, TEMPLATE, HPA_SCRIPT, *sorted(KUBE.glob("*.yaml"))],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_deployment_file_holds_no_credentials(path: Path) -> None:
    assert CREDENTIAL_SHAPES.search(path.read_text()) is None
