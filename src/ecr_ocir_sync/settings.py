"""The one settings model: every environment variable the service and the CLI read.

Built once, at the entry point (``cli/main.py``), from the process environment with
:meth:`Settings.from_environ`; everything below receives it, or plain values taken from
it, and never reads the environment itself.

Reading never fails: every bad variable is remembered by name. Each command then asks
for what it needs (:meth:`Settings.require_service` for ``serve`` and ``reconcile``,
:meth:`Settings.require` for the others), which raises one ConfigError naming every
problem of those variables and every missing required one. ``copy`` with explicit
destinations thus runs whatever the service's variables say.

Every flag has one grammar (:data:`FLAG_WORDS`), blank counts as unset, and the original
service's variable names are kept. This module never reaches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
)

from ecr_ocir_sync import settings_sources as sources
from ecr_ocir_sync import settings_values as parse
from ecr_ocir_sync.errors import ConfigError, InvalidReferenceError
from ecr_ocir_sync.oci.reference import check_repository
from ecr_ocir_sync.rules.policy import DeletePolicy
from ecr_ocir_sync.settings_values import DEFAULT_STATUS_URL, FLAG_WORDS, Endpoint

__all__ = [
    "FALLBACKS",
    "FLAG_WORDS",
    "INFORMATIONAL",
    "ApiAuth",
    "Endpoint",
    "LogLevel",
    "RegistryAuth",
    "Settings",
]

SERVICE_HEADER = "cannot start, fix these settings:"
# Accepted and read by nothing: kept from the original service so its Secrets apply as
# they are (no field carries it).
INFORMATIONAL = {"OCI_REGION": "kept from the original service; informational"}
# Read only as another variable's default, so no field of their own either.
FALLBACKS = {
    "AWS_DEFAULT_REGION": "SYNC_ALLOWED_REGIONS",
    "HOSTNAME": "SYNC_RECONCILE_LEADER (its StatefulSet ordinal)",
}
_DEFAULT_DATA_DIR = Path("/var/lib/ecr-ocir-sync")
_MIN_API_KEY = 16
_SECRETS = frozenset({"OCI_AUTH_TOKEN", "SYNC_API_KEY", "SYNC_DATABASE_URL"})
# Families read by prefix; the field's alias is the family's name in README's table.
_FAMILIES = {
    "OCIR_ENDPOINT_<KEY>": "OCIR_ENDPOINT_",
    "OCI_API_REGION_<KEY>": "OCI_API_REGION_",
    "OCI_ARTIFACTS_ENDPOINT_<KEY>": "OCI_ARTIFACTS_ENDPOINT_",
    "OCI_LIMITS_ENDPOINT_<KEY>": "OCI_LIMITS_ENDPOINT_",
    "OCIR_TOKEN_ENDPOINT_<KEY>": "OCIR_TOKEN_ENDPOINT_",
    sources.FAMILY: sources.PREFIX,
}
_REQUIRED_HINTS = {
    "OCI_TENANCY": "the OCIR namespace destinations live under",
    "OCI_USERNAME": "the OCI user whose auth token logs in to OCIR",
    "OCI_AUTH_TOKEN": "the OCI auth token, the registry password (secret not set)",
    "OCI_REPO_REGION_KEY": "comma-separated region keys, e.g. mel,syd",
    "SYNC_ALLOWED_ACCOUNTS": "comma-separated AWS account IDs, e.g. 123456789012,210987654321",
    "SYNC_ALLOWED_REGIONS": "comma-separated AWS regions, e.g. ap-southeast-2 "
    "(AWS_DEFAULT_REGION is the default)",
}
_SERVICE_REQUIRED = tuple(_REQUIRED_HINTS)
_ORDINAL = re.compile(r"-(\d+)$")


class ApiAuth(StrEnum):
    """How calls to the OCI API are signed (``OCI_API_AUTH``)."""

    CONFIG_FILE = "config_file"  # an API signing key from OCI_CONFIG_FILE / OCI_CONFIG_PROFILE
    INSTANCE_PRINCIPAL = "instance_principal"  # the instance (an OKE node) in a dynamic group
    RESOURCE_PRINCIPAL = "resource_principal"  # OCI_RESOURCE_PRINCIPAL_* variables
    WORKLOAD_IDENTITY = "workload_identity"  # OKE workload identity: the pod's service account


class RegistryAuth(StrEnum):
    """How the service logs in to OCIR (``OCI_REGISTRY_AUTH``)."""

    AUTH_TOKEN = "auth_token"  # noqa: S105 - a mode name: OCI_USERNAME + OCI_AUTH_TOKEN
    # a short-lived registry token per region from OCI IAM, signed as OCI_API_AUTH says
    TOKEN_EXCHANGE = "token_exchange"  # noqa: S105 - a mode name, not a secret


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def _namespace(value: object) -> object:
    if isinstance(value, str):
        try:
            check_repository(value)
        except InvalidReferenceError:
            valid = False
        else:
            valid = "/" not in value
        if not valid:
            raise ValueError(
                "is not an OCIR namespace (lowercase letters and digits, as shown on the "
                "tenancy's details page)"
            ) from None
    return value


def _api_key(value: object) -> object:
    if isinstance(value, str) and len(value) < _MIN_API_KEY:
        raise ValueError(f"must be at least {_MIN_API_KEY} characters")
    return value


def _hosts(value: object) -> object:
    if isinstance(value, str):
        return frozenset(host.strip() for host in value.split(",") if host.strip())
    return value


def _database_url(value: object) -> object:
    if isinstance(value, str) and urlsplit(value).scheme not in ("postgresql", "postgres"):
        raise ValueError(
            "must be a PostgreSQL URL such as postgresql://user:password@host:5432/database "
            "(unset it to keep jobs in SQLite)"
        )
    return value


def _queue_url(value: object) -> object:
    if isinstance(value, str) and urlsplit(value).scheme not in ("https", "http"):
        raise ValueError(
            "expected the queue's URL, e.g. "
            "https://sqs.ap-southeast-2.amazonaws.com/123456789012/ecr-ocir-sync"
        )
    return value


def _long_poll(value: object) -> object:
    if isinstance(value, str) and not (value.isdigit() and int(value) <= 20):
        raise ValueError("must be a whole number of seconds from 0 to 20 (SQS's longest poll)")
    return value


Count = Annotated[int, BeforeValidator(parse.at_least(int, 1))]
Seconds = Annotated[float, BeforeValidator(parse.at_least(float, 0))]
Flag = Annotated[bool, BeforeValidator(parse.flag)]
_EndpointUrl = Annotated[Endpoint, BeforeValidator(parse.endpoint)]
_ArtifactsUrl = Annotated[str, BeforeValidator(parse.artifacts_url)]
_LimitsUrl = Annotated[str, BeforeValidator(parse.limits_url)]
_Deadline = Annotated[float, BeforeValidator(parse.at_least(float, 0.1))]
_Policy = Annotated[DeletePolicy, BeforeValidator(parse.word_of(DeletePolicy, str.lower))]


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad variable: its name, the name it is required under (a family's) and why."""

    variable: str
    group: str
    message: str


class Settings(BaseModel):
    """Every variable of README's configuration table; build with :meth:`from_environ`.

    A plain pydantic model, not pydantic-settings' BaseSettings: the environment is
    passed in whole by :meth:`from_environ` (the families need all of it, and nothing
    may read the process environment behind the entry point's back), so BaseSettings'
    sources had nothing to do, and importing it cost every start ~0.1 s."""

    # Defaults are trusted (an empty OCI_TENANCY is "not set", not a bad namespace).
    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=False)

    # OCIR: the login and the regions
    namespace: Annotated[str, BeforeValidator(_namespace)] = Field("", alias="OCI_TENANCY")
    username: str = Field("", alias="OCI_USERNAME")
    auth_token: SecretStr | None = Field(None, alias="OCI_AUTH_TOKEN")
    region_keys: Annotated[tuple[str, ...], BeforeValidator(parse.region_keys)] = Field(
        (), alias="OCI_REPO_REGION_KEY"
    )
    ocir_endpoint_variables: dict[str, _EndpointUrl] = Field(
        default_factory=dict, alias="OCIR_ENDPOINT_<KEY>"
    )
    registry_auth: Annotated[
        RegistryAuth, BeforeValidator(parse.word_of(RegistryAuth, str.lower))
    ] = Field(RegistryAuth.AUTH_TOKEN, alias="OCI_REGISTRY_AUTH")
    token_endpoint_variables: dict[str, Annotated[str, BeforeValidator(parse.registry_api_url)]] = (
        Field(default_factory=dict, alias="OCIR_TOKEN_ENDPOINT_<KEY>")
    )
    # ECR, events and the API
    allowed_accounts: Annotated[frozenset[str], BeforeValidator(parse.account_ids)] = Field(
        frozenset(), alias="SYNC_ALLOWED_ACCOUNTS"
    )
    allowed_regions: Annotated[frozenset[str], BeforeValidator(parse.aws_regions)] = Field(
        frozenset(), alias="SYNC_ALLOWED_REGIONS"
    )
    ecr_endpoint: Annotated[Endpoint | None, BeforeValidator(parse.endpoint)] = Field(
        None, alias="ECR_ENDPOINT"
    )
    ecr_endpoint_variables: dict[
        Annotated[str, BeforeValidator(sources.member_name)], _EndpointUrl
    ] = Field(default_factory=dict, alias="ECR_ENDPOINT_<ACCOUNT>_<REGION>")
    # several accounts or regions may mirror to the same OCIR names (README: "Several
    # AWS accounts or regions")
    shared_destinations: Flag = Field(False, alias="SYNC_SHARED_DESTINATIONS")
    api_key: Annotated[SecretStr | None, BeforeValidator(_api_key)] = Field(
        None, alias="SYNC_API_KEY"
    )
    allow_unauthenticated: Flag = Field(False, alias="SYNC_ALLOW_UNAUTHENTICATED")
    # The job store, workers and retries
    data_dir: Path = Field(_DEFAULT_DATA_DIR, alias="SYNC_DATA_DIR")
    workers: Count = Field(4, alias="SYNC_WORKERS")
    max_attempts: Count = Field(10, alias="SYNC_MAX_ATTEMPTS")
    retry_base_seconds: Seconds = Field(5.0, alias="SYNC_RETRY_BASE_SECONDS")
    retry_max_seconds: Seconds = Field(600.0, alias="SYNC_RETRY_MAX_SECONDS")
    request_attempts: Count = Field(5, alias="SYNC_REQUEST_ATTEMPTS")
    request_retry_seconds: Seconds = Field(0.5, alias="SYNC_REQUEST_RETRY_SECONDS")
    lease_seconds: Annotated[float, BeforeValidator(parse.at_least(float, 1))] = Field(
        60.0, alias="SYNC_LEASE_SECONDS"
    )
    retention_hours: Seconds = Field(168.0, alias="SYNC_RETENTION_HOURS")
    drain_seconds: Seconds = Field(25.0, alias="SYNC_DRAIN_SECONDS")
    max_body_bytes: Annotated[int, BeforeValidator(parse.at_least(int, 1024))] = Field(
        65536, alias="SYNC_MAX_BODY_BYTES"
    )
    # more unfinished jobs than this: /sync answers 503 + Retry-After
    max_pending_jobs: Count = Field(10000, alias="SYNC_MAX_PENDING_JOBS")
    # How blobs move (serve and copy alike; README "Large images, bad links")
    # None: half the spool volume's free space at start-up
    spool_max_bytes: Annotated[int | None, BeforeValidator(parse.at_least(int, 0))] = Field(
        None, alias="SYNC_SPOOL_MAX_BYTES"
    )
    # 0: one streamed PATCH per blob
    upload_chunk_bytes: Annotated[int, BeforeValidator(parse.at_least(int, 0))] = Field(
        0, alias="SYNC_UPLOAD_CHUNK_BYTES"
    )
    # no byte moved for this long: the attempt is cancelled and retried
    stall_seconds: Annotated[float, BeforeValidator(parse.at_least(float, 1))] = Field(
        300.0, alias="SYNC_STALL_SECONDS"
    )
    # per registry host; 4/5 of them may carry blob bodies
    host_connections: Annotated[int, BeforeValidator(parse.at_least(int, 2))] = Field(
        20, alias="SYNC_HOST_CONNECTIONS"
    )
    pool_timeout_seconds: Annotated[float, BeforeValidator(parse.at_least(float, 1))] = Field(
        60.0, alias="SYNC_POOL_TIMEOUT_SECONDS"
    )
    # The listeners: health, readiness and metrics on their own port (0: on the API port)
    ops_port: Annotated[int, BeforeValidator(parse.at_least(int, 0))] = Field(
        8081, alias="SYNC_OPS_PORT"
    )
    # a request's headers must arrive within this, and its body within this after them
    header_timeout_seconds: _Deadline = Field(10.0, alias="SYNC_HEADER_TIMEOUT_SECONDS")
    body_timeout_seconds: _Deadline = Field(10.0, alias="SYNC_BODY_TIMEOUT_SECONDS")
    # an idle kept-alive connection is closed after this
    keep_alive_seconds: Count = Field(5, alias="SYNC_KEEP_ALIVE_SECONDS")
    # connections + requests in flight per port; more get 503
    max_concurrency: Annotated[int, BeforeValidator(parse.at_least(int, 2))] = Field(
        512, alias="SYNC_MAX_CONCURRENCY"
    )
    api_docs: Flag = Field(False, alias="SYNC_API_DOCS")  # /docs and /openapi.json
    # where `ecr-ocir-sync status` asks a running service
    status_url: str = Field(DEFAULT_STATUS_URL, alias="SYNC_STATUS_URL")
    insecure_variable: Annotated[frozenset[str], BeforeValidator(_hosts)] = Field(
        frozenset(), alias="SYNC_INSECURE_REGISTRIES"
    )
    log_level: Annotated[LogLevel, BeforeValidator(parse.word_of(LogLevel, str.upper))] = Field(
        LogLevel.INFO, alias="SYNC_LOG_LEVEL"
    )
    # Rules and reconciliation
    delete_policy: _Policy = Field(DeletePolicy.MIRROR, alias="SYNC_DELETE_POLICY")
    rules_file: Path | None = Field(None, alias="SYNC_RULES_FILE")
    reconcile_interval_seconds: Seconds = Field(
        3600.0, alias="SYNC_RECONCILE_INTERVAL_SECONDS"
    )  # 0 turns the periodic pass off
    reconcile_leader: Flag = Field(True, alias="SYNC_RECONCILE_LEADER")
    # The shared job store of several processes; unset: SQLite under SYNC_DATA_DIR
    database_url: Annotated[SecretStr | None, BeforeValidator(_database_url)] = Field(
        None, alias="SYNC_DATABASE_URL"
    )
    # SQS intake beside /sync: long poll, and how long a message not committed stays hidden
    sqs_queue_url: Annotated[str | None, BeforeValidator(_queue_url)] = Field(
        None, alias="SYNC_SQS_QUEUE_URL"
    )
    sqs_wait_seconds: Annotated[int, BeforeValidator(_long_poll)] = Field(
        20, alias="SYNC_SQS_WAIT_SECONDS"
    )
    sqs_visibility_seconds: Count = Field(30, alias="SYNC_SQS_VISIBILITY_SECONDS")
    # OCIR repositories created ahead of the first push
    compartment_id: Annotated[str | None, BeforeValidator(parse.ocid)] = Field(
        None, alias="OCI_COMPARTMENT_ID"
    )
    repository_immutable: Flag = Field(False, alias="OCI_REPO_IMMUTABLE")
    api_auth: Annotated[ApiAuth, BeforeValidator(parse.word_of(ApiAuth, str.lower))] = Field(
        ApiAuth.CONFIG_FILE, alias="OCI_API_AUTH"
    )
    oci_config_file: Path = Field(Path("~/.oci/config"), alias="OCI_CONFIG_FILE")
    oci_config_profile: str = Field("DEFAULT", alias="OCI_CONFIG_PROFILE")
    api_region_variables: dict[str, Annotated[str, BeforeValidator(parse.oci_region_id)]] = Field(
        default_factory=dict, alias="OCI_API_REGION_<KEY>"
    )
    artifacts_endpoint_variables: dict[str, _ArtifactsUrl] = Field(
        default_factory=dict, alias="OCI_ARTIFACTS_ENDPOINT_<KEY>"
    )
    limits_endpoint_variables: dict[str, _LimitsUrl] = Field(
        default_factory=dict, alias="OCI_LIMITS_ENDPOINT_<KEY>"
    )
    # OCIR usage (storage, repositories, images) read by the leader pod; 0 turns it off
    usage_interval_seconds: Seconds = Field(900.0, alias="SYNC_USAGE_INTERVAL_SECONDS")
    # The CLI's and the service's fallback auth file (as skopeo reads it)
    registry_auth_file: Path | None = Field(None, alias="REGISTRY_AUTH_FILE")

    _given: frozenset[str] = PrivateAttr(frozenset())
    _problems: tuple[Problem, ...] = PrivateAttr(())

    FAMILIES: ClassVar[Mapping[str, str]] = _FAMILIES

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``environ`` (the process's, at the entry point). Never raises: each bad
        variable takes its default and is remembered for :meth:`require`."""
        inputs = _inputs(environ)
        given = frozenset(name for name, value in inputs.items() if value != {})
        problems: list[Problem] = []
        while True:
            try:
                settings = cls(**inputs, **_defaults(inputs))
            except ValidationError as error:
                found = [_problem(item, inputs) for item in error.errors()]
                dropped = [_drop(inputs, problem) for problem in found]
                if not any(dropped):
                    raise  # not one variable's fault: a bug here, not a setting
                problems.extend(found)
                continue
            settings._given = given
            settings._problems = tuple(problems)
            return settings

    @classmethod
    def variables(cls) -> set[str]:
        """Every variable name (and family) this model accepts, for the manifests' test."""
        names = {str(field.alias) for field in cls.model_fields.values()}
        return names | set(INFORMATIONAL) | set(FALLBACKS)

    # -- what each command needs -------------------------------------------------

    def given(self, variable: str) -> bool:
        """Whether ``variable`` was set (non-blank) in the environment read."""
        return variable in self._given

    def problems(self, variables: Iterable[str]) -> list[str]:
        """The problems of ``variables`` (a family by its name, e.g. OCIR_ENDPOINT_<KEY>)."""
        wanted = set(variables)
        return [p.message for p in self._problems if p.group in wanted]

    def require(
        self,
        variables: Iterable[str],
        *,
        required: Iterable[str] = (),
        header: str = SERVICE_HEADER,
        extra: Iterable[str] = (),
    ) -> Settings:
        """``self`` when ``variables`` are good and ``required`` set; else one ConfigError
        naming every missing and bad one (and the ``extra`` problems the caller found)."""
        required = tuple(required)
        messages = [
            f"{name} is required: {_REQUIRED_HINTS.get(name, 'not set')}"
            for name in required
            if not self.given(name) and not self.problems([name])
        ]
        messages += self.problems({*variables, *required})
        messages += extra
        if messages:
            raise ConfigError(f"{header}\n  - " + "\n  - ".join(messages))
        return self

    def require_service(self) -> Settings:
        """Everything ``serve`` and ``reconcile`` need, or one ConfigError naming it all."""
        extra = []
        if (
            self.api_key is None
            and not self.allow_unauthenticated
            and not self.problems(["SYNC_API_KEY", "SYNC_ALLOW_UNAUTHENTICATED"])
        ):
            extra.append(
                "SYNC_API_KEY is required (the shared secret callers send as X-API-Key); "
                "set SYNC_ALLOW_UNAUTHENTICATED=true to run without one"
            )
        extra += sources.problems(
            self.ecr_endpoint_variables,
            self.ecr_endpoint,
            self.ecr_sources,
            shared=self.shared_destinations,
        )
        variables = [str(field.alias) for field in type(self).model_fields.values()]
        required = _SERVICE_REQUIRED
        if self.registry_auth is RegistryAuth.TOKEN_EXCHANGE:  # no user, no long-lived token
            required = tuple(n for n in required if n not in ("OCI_USERNAME", "OCI_AUTH_TOKEN"))
        return self.require(variables, required=required, extra=extra)

    # -- derived values ----------------------------------------------------------

    @property
    def ocir_endpoints(self) -> dict[str, Endpoint]:
        """Region key → endpoint from ``OCIR_ENDPOINT_<KEY>`` (e.g. ``OCIR_ENDPOINT_MEL``)."""
        return _by_key(self.ocir_endpoint_variables, "OCIR_ENDPOINT_<KEY>")

    @property
    def api_regions(self) -> dict[str, str]:
        """Region key → OCI region identifier (``OCI_API_REGION_<KEY>``)."""
        return _by_key(self.api_region_variables, "OCI_API_REGION_<KEY>")

    @property
    def artifacts_endpoints(self) -> dict[str, str]:
        """Region key → Artifacts API URL (``OCI_ARTIFACTS_ENDPOINT_<KEY>``)."""
        return _by_key(self.artifacts_endpoint_variables, "OCI_ARTIFACTS_ENDPOINT_<KEY>")

    @property
    def limits_endpoints(self) -> dict[str, str]:
        """Region key → Limits API URL (``OCI_LIMITS_ENDPOINT_<KEY>``)."""
        return _by_key(self.limits_endpoint_variables, "OCI_LIMITS_ENDPOINT_<KEY>")

    @property
    def token_endpoints(self) -> dict[str, str]:
        """Region key → Container Registry API URL (``OCIR_TOKEN_ENDPOINT_<KEY>``)."""
        return _by_key(self.token_endpoint_variables, "OCIR_TOKEN_ENDPOINT_<KEY>")

    @property
    def ecr_sources(self) -> list[tuple[str, str]]:
        """Every allowed (AWS account, AWS region), in a stable order."""
        return sources.sources(self.allowed_accounts, self.allowed_regions)

    @property
    def ecr_endpoints(self) -> dict[tuple[str, str], Endpoint]:
        """(account, region) → ECR registry endpoint, from ECR_ENDPOINT_<ACCOUNT>_<REGION>
        and, with one allowed account and region, ECR_ENDPOINT."""
        return sources.endpoints(self.ecr_endpoint_variables, self.ecr_endpoint, self.ecr_sources)

    @property
    def insecure_registries(self) -> frozenset[str]:
        """Hosts spoken to over plain HTTP: SYNC_INSECURE_REGISTRIES and http:// endpoints."""
        hosts = set(self.insecure_variable)
        hosts |= {e.host for e in self.ocir_endpoints.values() if e.insecure}
        hosts |= {e.host for e in self.ecr_endpoints.values() if e.insecure}
        return frozenset(hosts)

    def region_endpoint(self, key: str) -> str:
        """The registry host of region ``key``."""
        endpoint = self.ocir_endpoints.get(key)
        return endpoint.host if endpoint else f"{key}.ocir.io"


def _by_key(variables: Mapping[str, Any], family: str) -> dict[str, Any]:
    prefix = _FAMILIES[family]
    return {name.removeprefix(prefix).lower(): value for name, value in variables.items()}


def _inputs(environ: Mapping[str, str]) -> dict[str, Any]:
    """The model's input: non-blank variables, stripped, the families gathered, and the
    two fallbacks (AWS_DEFAULT_REGION, the HOSTNAME ordinal) applied."""
    values: dict[str, Any] = {k: str(v).strip() for k, v in environ.items() if str(v).strip()}
    for family, prefix in _FAMILIES.items():
        values[family] = {k: v for k, v in values.items() if k.startswith(prefix)}
    if "SYNC_ALLOWED_REGIONS" not in values and "AWS_DEFAULT_REGION" in values:
        values["SYNC_ALLOWED_REGIONS"] = values["AWS_DEFAULT_REGION"]
    return values


def _defaults(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults that depend on other variables (not "given": a missing one stays missing)."""
    if "SYNC_RECONCILE_LEADER" in inputs:
        return {}
    if "SYNC_DATABASE_URL" in inputs:  # a lock in the shared database picks one at a time
        return {"SYNC_RECONCILE_LEADER": True}
    return {"SYNC_RECONCILE_LEADER": _leader(inputs.get("HOSTNAME", ""))}


def _leader(hostname: str) -> bool:
    """Without SYNC_RECONCILE_LEADER or a shared database: pod 0 of a StatefulSet
    reconciles, as does a process whose HOSTNAME has no ordinal."""
    ordinal = _ORDINAL.search(hostname)
    return ordinal is None or ordinal.group(1) == "0"


def _problem(error: Any, inputs: Mapping[str, Any]) -> Problem:
    """A pydantic error as ``NAME='value': why`` (a secret's value is never shown)."""
    location = error["loc"]
    field = Settings.model_fields.get(str(location[0]))
    group = str(field.alias) if field is not None else str(location[0])
    variable = str(location[1]) if group in _FAMILIES and len(location) > 1 else group
    raw = inputs[group].get(variable) if group in _FAMILIES else inputs.get(group)
    context = error.get("ctx") or {}
    why = str(context["error"]) if "error" in context else str(error["msg"])
    shown = variable if variable in _SECRETS else f"{variable}={raw!r}"
    return Problem(variable, group, f"{shown}: {why}")


def _drop(inputs: dict[str, Any], problem: Problem) -> bool:
    """Forget a bad input so that its default stands in while the others are read."""
    found = inputs[problem.group] if problem.group in _FAMILIES else inputs
    return found.pop(problem.variable, None) is not None
