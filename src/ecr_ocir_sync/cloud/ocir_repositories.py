"""OCIR container repositories created ahead of the first push, in a chosen compartment.

A push creates a missing OCIR repository on its own, but always in the
tenancy's root compartment, mutable, and only where the tenancy allows it.
With ``OCI_COMPARTMENT_ID`` set, :class:`OcirRepositories` makes sure each
``<namespace>/<repository>`` exists in that compartment (immutable when
``OCI_REPO_IMMUTABLE=true``) through the OCI Artifacts API before the first
push to a region, and remembers what exists so later pushes cost nothing.

The ``oci`` SDK is the optional extra ``ecr-ocir-sync[oci]`` (about 500 MB
installed, for this feature alone): its absence is a ConfigError naming the
extra when the feature is configured. It is imported on first use only (it takes
longer to import than the rest of the CLI) and is blocking, so every call runs
in a worker thread.
Its own retries and circuit breaker are off: a 429 or 5xx becomes a retryable
error and the job's backoff decides when to try again.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecr_ocir_sync.errors import (
    AuthError,
    ConfigError,
    ProtocolError,
    QuotaExceededError,
    QuotaLimit,
    RateLimitedError,
    RegistryError,
    UnavailableError,
)
from ecr_ocir_sync.registry.quota import OCI_LIMIT_CODES, advice, quota_limit
from ecr_ocir_sync.settings import ApiAuth

__all__ = [
    "GONE_STATES",
    "ApiAuth",
    "OcirRepositories",
    "OcirRepositorySettings",
    "load_sdk",
]

log = logging.getLogger("ecr_ocir_sync.cloud.ocir_repositories")

# Connect and read timeouts of one Artifacts API call, in seconds.
_TIMEOUT = (10.0, 30.0)
# A repository in one of these states is on its way out; any other state counts as existing.
GONE_STATES = frozenset({"DELETING", "DELETED"})


@dataclass(frozen=True, slots=True)
class OcirRepositorySettings:
    """Where and how repositories are created (``service.wiring.repository_settings``
    builds it from the settings, which validated every value)."""

    compartment_id: str
    immutable: bool = False
    auth: ApiAuth = ApiAuth.CONFIG_FILE
    config_file: Path = Path("~/.oci/config")
    profile: str = "DEFAULT"
    # region key → OCI region identifier, over the SDK's table (``OCI_API_REGION_<KEY>``)
    regions: Mapping[str, str] = field(default_factory=dict)
    # region key → Artifacts API URL, over the SDK's endpoint (``OCI_ARTIFACTS_ENDPOINT_<KEY>``)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # region key → Limits API URL, over the SDK's endpoint (``OCI_LIMITS_ENDPOINT_<KEY>``)
    limits_endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def in_root(self) -> bool:
        """Whether the compartment is the tenancy itself (the root compartment)."""
        return self.compartment_id.startswith("ocid1.tenancy.")


_MISSING_SDK = (
    "OCI_COMPARTMENT_ID is set, so OCIR repositories are created through the OCI SDK, "
    "which is not installed: install the extra with pip install 'ecr-ocir-sync[oci]' "
    "(the container image has it), or unset OCI_COMPARTMENT_ID to let each push create "
    "its repository in the root compartment"
)


def load_sdk() -> Any:
    """The ``oci`` SDK (for the other OCI API readers); a ConfigError when it is missing."""
    return _oci()


def _oci() -> Any:  # the oci module (untyped)
    """The OCI SDK, imported now; its absence is a ConfigError naming the extra."""
    try:
        import oci  # noqa: PLC0415 - lazy: the SDK is the slowest import of the project
    except ImportError as exc:
        raise ConfigError(_MISSING_SDK) from exc
    return oci


@dataclass(slots=True)
class _RegionClient:
    api: Any  # oci.artifacts.ArtifactsClient
    region_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)  # one call at a time


class OcirRepositories:
    """Makes sure a repository exists in the configured compartment before it is pushed to.

    Call :meth:`ensure` before each push of a repository to a region; it costs
    an API call only the first time a (region, repository) is seen by this
    process.  Concurrent calls for the same pair wait for one lookup.
    """

    def __init__(self, settings: OcirRepositorySettings, *, namespace: str) -> None:
        # Built at start-up when the feature is on: a missing SDK stops the start, not a job.
        if importlib.util.find_spec("oci") is None:
            raise ConfigError(_MISSING_SDK)
        self.settings = settings
        self.namespace = namespace
        self._known: set[tuple[str, str]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._clients: dict[str, _RegionClient] = {}
        self._build_lock = threading.Lock()  # clients, the config file and the signer
        self._config: dict[str, Any] | None = None
        self._signer: Any = None

    async def ensure(self, region_key: str, repository: str) -> None:
        """Create ``<namespace>/<repository>`` in region ``region_key`` unless it exists.

        Raises AuthError (a missing IAM policy, named in the message),
        RateLimitedError / UnavailableError (retryable), ProtocolError
        (anything else the API refused) or ConfigError (unusable OCI settings).
        """
        key = (region_key, repository)
        if key in self._known:
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._known:
                return
            await asyncio.to_thread(self._ensure_blocking, region_key, repository)
            self._known.add(key)
            # Whoever still waits holds this lock already and will find the key known.
            self._locks.pop(key, None)

    async def prepare(self, region_keys: Iterable[str]) -> None:
        """Resolve each region and load the credentials now (no API call), to fail at start-up."""
        for region_key in region_keys:
            await asyncio.to_thread(self._client, region_key)

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        with self._build_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.api.base_client.session.close()

    # -- in a worker thread ----------------------------------------------------

    def _ensure_blocking(self, region_key: str, repository: str) -> None:
        oci = _oci()

        client = self._client(region_key)
        where = (
            f"{self._place(region_key, client.region_id)} repository {self.namespace}/{repository}"
        )
        with client.lock:
            try:
                answer = client.api.list_container_repositories(
                    self.settings.compartment_id, display_name=repository
                )
            except Exception as exc:
                raise self.api_error(exc, "look up the container repository", where) from exc
            for item in answer.data.items or ():
                if item.display_name == repository and item.lifecycle_state not in GONE_STATES:
                    return
            details = oci.artifacts.models.CreateContainerRepositoryDetails(
                compartment_id=self.settings.compartment_id,
                display_name=repository,
                is_immutable=self.settings.immutable,
                is_public=False,
            )
            try:
                client.api.create_container_repository(details)
            except oci.exceptions.ServiceError as exc:
                if exc.status != 409:
                    raise self.api_error(exc, "create the container repository", where) from exc
                log.info(
                    "%s already exists (created meanwhile, or earlier in another "
                    "compartment); left as it is",
                    where,
                )
                return
            except Exception as exc:
                raise self.api_error(exc, "create the container repository", where) from exc
        log.info(
            "created %s in compartment %s%s",
            where,
            self.settings.compartment_id,
            " (immutable)" if self.settings.immutable else "",
        )

    def _client(self, region_key: str) -> _RegionClient:
        with self._build_lock:
            client = self._clients.get(region_key)
            if client is None:
                client = self._build_client(region_key)
                self._clients[region_key] = client
            return client

    def _build_client(self, region_key: str) -> _RegionClient:
        oci = _oci()

        endpoint = self.settings.endpoints.get(region_key.strip().lower())
        api, region_id = self.sdk_client(region_key, oci.artifacts.ArtifactsClient, endpoint)
        return _RegionClient(api, region_id)

    def sdk_client(self, region_key: str, factory: Any, endpoint: str | None) -> tuple[Any, str]:
        """(an SDK client built by ``factory`` for ``region_key``, the region's identifier),
        signed as repository creation is; ``endpoint`` overrides the SDK's. Blocking."""
        oci = _oci()

        region_id = self._region_id(region_key)
        options: dict[str, Any] = {
            "retry_strategy": oci.retry.NoneRetryStrategy(),
            "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
            "timeout": _TIMEOUT,
        }
        if endpoint is not None:
            options["service_endpoint"] = endpoint
        if self.settings.auth is ApiAuth.CONFIG_FILE:
            config = {**self._config_file(), "region": region_id}
        else:
            config = {"region": region_id}
            options["signer"] = self._principal_signer()
        try:
            return factory(config, **options), region_id
        except (oci.exceptions.ClientError, ValueError, OSError) as exc:
            raise ConfigError(
                f"cannot use the OCI API settings for region {region_key} ({region_id}): "
                f"{exc}; {self._settings_hint()}"
            ) from exc

    def tenancy_id(self) -> str | None:
        """The tenancy's OCID (the Limits API's compartment), when the credentials tell it."""
        if self.settings.in_root:
            return self.settings.compartment_id
        if self.settings.auth is ApiAuth.CONFIG_FILE:
            return str(self._config_file().get("tenancy") or "") or None
        tenancy = getattr(self._principal_signer(), "tenancy_id", None)
        return str(tenancy) if tenancy else None

    def _region_id(self, region_key: str) -> str:
        oci = _oci()

        key = region_key.strip().lower()
        override = self.settings.regions.get(key)
        if override is not None:
            return override
        if key in oci.regions.REGIONS_SHORT_NAMES:
            return str(oci.regions.REGIONS_SHORT_NAMES[key])
        if key in oci.regions.REGIONS:
            return key
        raise ConfigError(
            f"OCIR region key {region_key!r} is not a region the OCI SDK knows; set "
            f"OCI_API_REGION_{key.upper()} to its region identifier (e.g. ap-melbourne-1)"
        )

    def _config_file(self) -> dict[str, Any]:
        oci = _oci()

        if self._config is None:
            location = self.settings.config_file.expanduser()
            try:
                self._config = dict(oci.config.from_file(str(location), self.settings.profile))
            except (oci.exceptions.ClientError, ValueError, OSError) as exc:
                raise ConfigError(
                    f"cannot read profile {self.settings.profile} of OCI config file "
                    f"{location}: {exc}; {self._settings_hint()}"
                ) from exc
        return self._config

    def _principal_signer(self) -> Any:
        oci = _oci()

        if self._signer is not None:
            return self._signer
        signers = oci.auth.signers
        auth = self.settings.auth
        try:
            if auth is ApiAuth.INSTANCE_PRINCIPAL:
                self._signer = signers.InstancePrincipalsSecurityTokenSigner()
            elif auth is ApiAuth.RESOURCE_PRINCIPAL:
                self._signer = signers.get_resource_principals_signer()
            else:
                self._signer = signers.get_oke_workload_identity_resource_principal_signer()
        except (oci.exceptions.RequestException, oci.exceptions.ServiceError) as exc:
            raise UnavailableError(
                f"cannot obtain {auth.value} credentials for the OCI API: {exc}; retrying later"
            ) from exc
        except Exception as exc:
            raise AuthError(
                f"cannot obtain {auth.value} credentials for the OCI API: {exc}; "
                f"{self._settings_hint()}"
            ) from exc
        return self._signer

    # -- messages ----------------------------------------------------------------

    def _place(self, region_key: str, region_id: str) -> str:
        return f"OCIR {region_key} ({region_id})"

    def _settings_hint(self) -> str:
        auth = self.settings.auth
        if auth is ApiAuth.CONFIG_FILE:
            return (
                "check OCI_CONFIG_FILE / OCI_CONFIG_PROFILE: user, tenancy, fingerprint and "
                "key_file of an API signing key uploaded to that user"
            )
        if auth is ApiAuth.INSTANCE_PRINCIPAL:
            return "instance principals work only on an OCI instance (an OKE node)"
        if auth is ApiAuth.RESOURCE_PRINCIPAL:
            return "resource principals need the OCI_RESOURCE_PRINCIPAL_* variables of the resource"
        return "workload identity needs an OKE enhanced cluster and the pod's service account token"

    def policy(self) -> str:
        """The IAM policy statement the OCI API identity needs."""
        where = (
            "tenancy" if self.settings.in_root else f"compartment id {self.settings.compartment_id}"
        )
        auth = self.settings.auth
        if auth is ApiAuth.CONFIG_FILE:
            user = (self._config or {}).get("user", "the user of OCI_CONFIG_FILE")
            return f"Allow group <a group of {user}> to manage repos in {where}"
        if auth is ApiAuth.WORKLOAD_IDENTITY:
            return (
                f"Allow any-user to manage repos in {where} where all "
                "{request.principal.type = 'workload', "
                "request.principal.cluster_id = '<cluster OCID>', "
                "request.principal.namespace = '<namespace>', "
                "request.principal.service_account = '<service account>'}"
            )
        matching = "the node instances" if auth is ApiAuth.INSTANCE_PRINCIPAL else "the resource"
        return (
            f"Allow dynamic-group <a dynamic group matching {matching}> to manage repos in {where}"
        )

    def api_error(self, exc: Exception, action: str, where: str) -> RegistryError:
        oci = _oci()

        failed = f"{where}: cannot {action}"
        if isinstance(exc, oci.exceptions.ServiceError):
            return self._service_error(exc, failed)
        if isinstance(exc, oci.exceptions.RequestException | oci.exceptions.ConnectTimeout):
            return UnavailableError(
                f"{failed}: the OCI API could not be reached ({exc}); retrying later"
            )
        return ProtocolError(f"{failed}: unexpected {type(exc).__name__}: {exc}")

    def _service_error(self, exc: Any, failed: str) -> RegistryError:
        status = int(exc.status)
        said = f"{status} {exc.code}: {exc.message} (opc-request-id {exc.request_id})"
        if exc.code in OCI_LIMIT_CODES:
            limit = quota_limit(status, str(exc.code), str(exc.message))
            # Creating a repository counts against the repository limit unless it says otherwise.
            if limit in (None, QuotaLimit.UNKNOWN):
                limit = QuotaLimit.REPOSITORIES
            return QuotaExceededError(
                f"{failed}: {said}; {advice(limit)}", limit=limit, status=status
            )
        if status == 401:
            return AuthError(
                f"{failed}: the OCI API refused the credentials, {said}; {self._settings_hint()}",
                status=status,
            )
        if status in (403, 404):
            return AuthError(
                f"{failed} in compartment {self.settings.compartment_id}: {said}. Either the "
                "compartment does not exist or the OCI API identity may not manage repositories "
                f"there: add the IAM policy '{self.policy()}'",
                status=status,
            )
        if status == 429:
            return RateLimitedError(
                f"{failed}: the OCI API is throttling, {said}; retrying later",
                status=status,
                retry_after=_retry_after(exc.headers),
            )
        if status >= 500:
            return UnavailableError(
                f"{failed}: the OCI API failed, {said}; retrying later", status=status
            )
        return ProtocolError(f"{failed}: the OCI API refused, {said}", status=status)


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
