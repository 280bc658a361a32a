"""Signing OCI API calls as one of the supported principals, shared by every OCI client.

The repository creator (Artifacts API) and the registry token exchange (the
Container Registry API) sign with the same identity: an API key from an OCI
config file, instance principals, resource principals or OKE workload identity
(``OCI_API_AUTH``).  :class:`OciSigning` reads the config file or obtains the
principal's signer once, on first use, and hands any SDK client class what it
needs for one region.

The ``oci`` SDK is imported on first use only (it takes longer to import than
the rest of the CLI); everything here blocks, so callers run it in a thread.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecr_ocir_sync.errors import (
    AuthError,
    ConfigError,
    ProtocolError,
    RateLimitedError,
    RegistryError,
    UnavailableError,
)
from ecr_ocir_sync.settings import ApiAuth

#: How to get the SDK, for the messages that say what needs it.
INSTALL_EXTRA = (
    "install the extra with pip install 'ecr-ocir-sync[oci]' (the container image has it)"
)

__all__ = ["INSTALL_EXTRA", "OciPrincipal", "OciSigning", "oci_sdk", "require_sdk"]

# Connect and read timeouts of one OCI API call, in seconds.
TIMEOUT = (10.0, 30.0)


def oci_sdk(missing: str) -> Any:  # the oci module (untyped)
    """The OCI SDK, imported now; its absence is ConfigError(``missing``)."""
    try:
        import oci  # noqa: PLC0415 - lazy: the SDK is the slowest import of the project
    except ImportError as exc:
        raise ConfigError(missing) from exc
    return oci


def require_sdk(missing: str) -> None:
    """A ConfigError now (at start-up) when the OCI SDK is not installed; no import."""
    if importlib.util.find_spec("oci") is None:
        raise ConfigError(missing)


@dataclass(frozen=True, slots=True)
class OciPrincipal:
    """Who signs OCI API calls, and the region identifiers they go to."""

    auth: ApiAuth = ApiAuth.CONFIG_FILE
    config_file: Path = Path("~/.oci/config")
    profile: str = "DEFAULT"
    # region key → OCI region identifier, over the SDK's table (``OCI_API_REGION_<KEY>``)
    regions: Mapping[str, str] = field(default_factory=dict)


class OciSigning:
    """The SDK config and signer of one :class:`OciPrincipal`, built once (thread-safe)."""

    def __init__(self, principal: OciPrincipal, *, missing: str) -> None:
        """``missing``: what needs the SDK, said when it is not installed."""
        require_sdk(missing)
        self.principal = principal
        self._missing = missing
        self._lock = threading.Lock()
        self._config: dict[str, Any] | None = None
        self._signer: Any = None

    def client(self, factory: Callable[..., Any], region_key: str, endpoint: str | None) -> Any:
        """An SDK client (``factory``: e.g. ``oci.artifacts.ArtifactsClient``) for
        ``region_key``, signed as the principal, with the SDK's retries off.

        Raises ConfigError (unusable settings) or AuthError / UnavailableError (the
        principal's credentials could not be obtained)."""
        oci = oci_sdk(self._missing)
        region_id = self.region_id(region_key)
        options: dict[str, Any] = {
            "retry_strategy": oci.retry.NoneRetryStrategy(),
            "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
            "timeout": TIMEOUT,
        }
        if endpoint is not None:
            options["service_endpoint"] = endpoint
        if self.principal.auth is ApiAuth.CONFIG_FILE:
            config = {**self._config_file(), "region": region_id}
        else:
            config = {"region": region_id}
            options["signer"] = self._principal_signer()
        try:
            return factory(config, **options)
        except (oci.exceptions.ClientError, ValueError, OSError) as exc:
            raise ConfigError(
                f"cannot use the OCI API settings for region {region_key} ({region_id}): "
                f"{exc}; {self.settings_hint()}"
            ) from exc

    def region_id(self, region_key: str) -> str:
        oci = oci_sdk(self._missing)
        key = region_key.strip().lower()
        override = self.principal.regions.get(key)
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

    def tenancy_id(self) -> str | None:
        """The tenancy's OCID as the credentials tell it (config file or signer)."""
        if self.principal.auth is ApiAuth.CONFIG_FILE:
            return str(self._config_file().get("tenancy") or "") or None
        tenancy = getattr(self._principal_signer(), "tenancy_id", None)
        return str(tenancy) if tenancy else None

    @property
    def user(self) -> str | None:
        """The config file's user OCID, once read (for policy hints)."""
        return None if self._config is None else self._config.get("user")

    def _config_file(self) -> dict[str, Any]:
        oci = oci_sdk(self._missing)
        with self._lock:
            if self._config is None:
                location = self.principal.config_file.expanduser()
                profile = self.principal.profile
                try:
                    self._config = dict(oci.config.from_file(str(location), profile))
                except (oci.exceptions.ClientError, ValueError, OSError) as exc:
                    raise ConfigError(
                        f"cannot read profile {profile} of OCI config file {location}: "
                        f"{exc}; {self.settings_hint()}"
                    ) from exc
            return self._config

    def _principal_signer(self) -> Any:
        oci = oci_sdk(self._missing)
        with self._lock:
            if self._signer is not None:
                return self._signer
            signers = oci.auth.signers
            auth = self.principal.auth
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
                    f"{self.settings_hint()}"
                ) from exc
            return self._signer

    def settings_hint(self) -> str:
        auth = self.principal.auth
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

    def policy(self, verb_and_resource: str, where: str) -> str:
        """The IAM policy statement that lets this principal ``verb_and_resource``
        (e.g. ``manage repos``) in ``where`` (``tenancy`` or ``compartment id …``)."""
        auth = self.principal.auth
        if auth is ApiAuth.CONFIG_FILE:
            user = self.user or "the user of OCI_CONFIG_FILE"
            return f"Allow group <a group of {user}> to {verb_and_resource} in {where}"
        if auth is ApiAuth.WORKLOAD_IDENTITY:
            return (
                f"Allow any-user to {verb_and_resource} in {where} where all "
                "{request.principal.type = 'workload', "
                "request.principal.cluster_id = '<cluster OCID>', "
                "request.principal.namespace = '<namespace>', "
                "request.principal.service_account = '<service account>'}"
            )
        matching = "the node instances" if auth is ApiAuth.INSTANCE_PRINCIPAL else "the resource"
        return (
            f"Allow dynamic-group <a dynamic group matching {matching}> to "
            f"{verb_and_resource} in {where}"
        )

    def error(self, exc: Exception, failed: str, denied: Callable[[str], str]) -> RegistryError:
        """``exc`` from an SDK call as the error class it means; ``failed`` says what
        failed, ``denied(said)`` the whole message of a 403 or 404 (name the policy)."""
        oci = oci_sdk(self._missing)
        if isinstance(exc, oci.exceptions.ServiceError):
            return self._service_error(exc, failed, denied)
        if isinstance(exc, oci.exceptions.RequestException | oci.exceptions.ConnectTimeout):
            return UnavailableError(
                f"{failed}: the OCI API could not be reached ({exc}); retrying later"
            )
        return ProtocolError(f"{failed}: unexpected {type(exc).__name__}: {exc}")

    def _service_error(self, exc: Any, failed: str, denied: Callable[[str], str]) -> RegistryError:
        status = int(exc.status)
        said = f"{status} {exc.code}: {exc.message} (opc-request-id {exc.request_id})"
        if status == 401:
            return AuthError(
                f"{failed}: the OCI API refused the credentials, {said}; {self.settings_hint()}",
                status=status,
            )
        if status in (403, 404):
            return AuthError(denied(said), status=status)
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
