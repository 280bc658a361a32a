"""The credential chain every entry point uses: OCIR login, ECR tokens, auth file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ecr_ocir_sync.cloud.ecr_auth import EcrCredentialProvider
from ecr_ocir_sync.cloud.ocir_auth import OcirCredentials
from ecr_ocir_sync.registry.credentials import (
    CredentialChain,
    CredentialProvider,
    DockerAuthFile,
    default_authfile,
)

__all__ = ["CredentialSettings", "OcirLogin", "build_credentials", "ocir_login_from_env"]


@dataclass(frozen=True, slots=True)
class OcirLogin:
    namespace: str
    username: str
    auth_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CredentialSettings:
    """Everything that decides which credentials a registry host gets."""

    authfile: Path | None = None
    # Registry host → (account, region) for ECR endpoints that do not look like ECR.
    ecr_hosts: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ecr_api_endpoint: str | None = None
    ocir: OcirLogin | None = None
    ocir_hosts: Mapping[str, str] = field(default_factory=dict)


def ocir_login_from_env(environ: Mapping[str, str] = os.environ) -> OcirLogin | None:
    """The original service's ``OCI_TENANCY`` / ``OCI_USERNAME`` / ``OCI_AUTH_TOKEN``."""
    namespace = environ.get("OCI_TENANCY", "")
    username = environ.get("OCI_USERNAME", "")
    token = environ.get("OCI_AUTH_TOKEN", "")
    if namespace and username and token:
        return OcirLogin(namespace, username, token)
    return None


def build_credentials(settings: CredentialSettings) -> CredentialProvider:
    """OCIR login first (for OCIR hosts), then ECR tokens, then the auth file."""
    providers: list[CredentialProvider] = []
    if settings.ocir is not None:
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
