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
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecr_ocir_sync.cloud.oci_signing import INSTALL_EXTRA, OciPrincipal, OciSigning, oci_sdk
from ecr_ocir_sync.errors import QuotaExceededError, QuotaLimit, RegistryError
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
    def principal(self) -> OciPrincipal:
        """Who signs the OCI API calls."""
        return OciPrincipal(self.auth, self.config_file, self.profile, self.regions)

    @property
    def in_root(self) -> bool:
        """Whether the compartment is the tenancy itself (the root compartment)."""
        return self.compartment_id.startswith("ocid1.tenancy.")


_MISSING_SDK = (
    "OCI_COMPARTMENT_ID is set, so OCIR repositories are created through the OCI SDK, "
    f"which is not installed: {INSTALL_EXTRA}, or unset OCI_COMPARTMENT_ID to let each "
    "push create its repository in the root compartment"
)


def load_sdk() -> Any:
    """The ``oci`` SDK (for the other OCI API readers); a ConfigError when it is missing."""
    return oci_sdk(_MISSING_SDK)


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
        self.signing = OciSigning(settings.principal, missing=_MISSING_SDK)
        self.settings = settings
        self.namespace = namespace
        self._known: set[tuple[str, str]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._clients: dict[str, _RegionClient] = {}
        self._build_lock = threading.Lock()  # the clients

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
        oci = load_sdk()

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
        oci = load_sdk()
        endpoint = self.settings.endpoints.get(region_key.strip().lower())
        api, region_id = self.sdk_client(region_key, oci.artifacts.ArtifactsClient, endpoint)
        return _RegionClient(api, region_id)

    def sdk_client(self, region_key: str, factory: Any, endpoint: str | None) -> tuple[Any, str]:
        """(an SDK client built by ``factory`` for ``region_key``, the region's identifier),
        signed as repository creation is; ``endpoint`` overrides the SDK's. Blocking."""
        api = self.signing.client(factory, region_key, endpoint)
        return api, self.signing.region_id(region_key)

    def tenancy_id(self) -> str | None:
        """The tenancy's OCID (the Limits API's compartment), when the credentials tell it."""
        if self.settings.in_root:
            return self.settings.compartment_id
        return self.signing.tenancy_id()

    # -- messages ----------------------------------------------------------------

    def _place(self, region_key: str, region_id: str) -> str:
        return f"OCIR {region_key} ({region_id})"

    def policy(self) -> str:
        """The IAM policy statement the OCI API identity needs."""
        where = (
            "tenancy" if self.settings.in_root else f"compartment id {self.settings.compartment_id}"
        )
        return self.signing.policy("manage repos", where)

    def api_error(self, exc: Exception, action: str, where: str) -> RegistryError:
        """``exc`` from an Artifacts API call, as the error class it means."""
        oci = load_sdk()
        failed = f"{where}: cannot {action}"
        if isinstance(exc, oci.exceptions.ServiceError) and exc.code in OCI_LIMIT_CODES:
            status = int(exc.status)
            said = f"{status} {exc.code}: {exc.message} (opc-request-id {exc.request_id})"
            limit = quota_limit(status, str(exc.code), str(exc.message))
            # Creating a repository counts against the repository limit unless it says otherwise.
            if limit in (None, QuotaLimit.UNKNOWN):
                limit = QuotaLimit.REPOSITORIES
            return QuotaExceededError(
                f"{failed}: {said}; {advice(limit)}", limit=limit, status=status
            )

        def denied(said: str) -> str:
            return (
                f"{failed} in compartment {self.settings.compartment_id}: {said}. Either the "
                "compartment does not exist or the OCI API identity may not manage "
                f"repositories there: add the IAM policy '{self.policy()}'"
            )

        return self.signing.error(exc, failed, denied)
