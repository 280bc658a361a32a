"""The credential chain every entry point uses: OCIR login, ECR tokens, auth file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ecr_ocir_sync.cloud.ecr_auth import EcrCredentialProvider
from ecr_ocir_sync.cloud.ocir_auth import OcirCredentials
from ecr_ocir_sync.cloud.ocir_tokens import OcirTokenExchange, OcirTokenSettings
from ecr_ocir_sync.registry.credentials import (
    CredentialChain,
    CredentialProvider,
    DockerAuthFile,
    default_authfile,
)

if TYPE_CHECKING:
    from ecr_ocir_sync.settings import Settings

__all__ = ["CredentialSettings", "OcirLogin", "build_credentials"]


@dataclass(frozen=True, slots=True)
class OcirLogin:
    namespace: str
    username: str
    auth_token: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OcirLogin | None:
        """The original service's ``OCI_TENANCY`` / ``OCI_USERNAME`` / ``OCI_AUTH_TOKEN``;
        None unless all three are set."""
        token = settings.auth_token.get_secret_value() if settings.auth_token else ""
        if settings.namespace and settings.username and token:
            return cls(settings.namespace, settings.username, token)
        return None


@dataclass(frozen=True, slots=True)
class CredentialSettings:
    """Everything that decides which credentials a registry host gets."""

    authfile: Path | None = None  # --authfile, else REGISTRY_AUTH_FILE; None: ~/.docker
    # Registry host → (account, region) for ECR endpoints that do not look like ECR.
    ecr_hosts: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ecr_api_endpoint: str | None = None
    ocir: OcirLogin | None = None
    ocir_hosts: Mapping[str, str] = field(default_factory=dict)
    # OCI_REGISTRY_AUTH=token_exchange: OCIR tokens from OCI IAM instead of ``ocir``'s login
    ocir_tokens: OcirTokenSettings | None = None


def build_credentials(settings: CredentialSettings) -> CredentialProvider:
    """OCIR tokens or login first (for OCIR hosts), then ECR tokens, then the auth file."""
    providers: list[CredentialProvider] = []
    if settings.ocir_tokens is not None:
        providers.append(OcirTokenExchange(settings.ocir_tokens))
    elif settings.ocir is not None:
        login = settings.ocir
        providers.append(
            OcirCredentials(login.namespace, login.username, login.auth_token, settings.ocir_hosts)
        )
    providers.append(
        EcrCredentialProvider(
            hosts=dict(settings.ecr_hosts), endpoint_url=settings.ecr_api_endpoint
        )
    )
    authfile = settings.authfile or default_authfile()
    if authfile is not None:
        providers.append(DockerAuthFile(authfile))
    return CredentialChain(providers)
