"""Where registry credentials come from: static logins, Docker auth files, chains.

A provider is asked only when a registry challenges, so an open registry
needs none.  Passwords never appear in a ``repr`` or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ecr_ocir_sync.errors import ConfigError

__all__ = [
    "CredentialChain",
    "CredentialProvider",
    "Credentials",
    "DockerAuthFile",
    "StaticCredentials",
    "default_authfile",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password (or token) for Basic auth or a token request."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


class CredentialProvider(Protocol):
    """Gives credentials for a registry host, or None when it has none for it."""

    async def credentials(self, host: str) -> Credentials | None: ...

    def invalidate(self, host: str) -> None:
        """Forget cached credentials for ``host`` (they were refused)."""


class StaticCredentials:
    """Fixed credentials per host."""

    def __init__(self, logins: Mapping[str, Credentials]) -> None:
        self._logins = dict(logins)

    async def credentials(self, host: str) -> Credentials | None:
        return self._logins.get(host)

    def invalidate(self, host: str) -> None:
        """Static credentials cannot be refreshed."""


def _auth_key_host(key: str) -> str:
    """``https://index.docker.io/v1/`` → ``index.docker.io``; ``host:5000`` stays."""
    for prefix in ("https://", "http://"):
        key = key.removeprefix(prefix)
    return key.split("/", 1)[0]


def default_authfile() -> Path | None:
    """``~/.docker/config.json`` when it exists: where skopeo and crane look when neither
    ``--authfile`` nor ``REGISTRY_AUTH_FILE`` (the caller's settings) names a file."""
    docker = Path.home() / ".docker" / "config.json"
    return docker if docker.exists() else None


class DockerAuthFile:
    """Logins from a Docker-style ``config.json`` (``auths`` → ``auth`` = base64 user:pass)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._logins = self._load(path)

    @staticmethod
    def _load(path: Path) -> dict[str, Credentials]:
        try:
            document = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"reading auth file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"auth file {path} is not valid JSON: {exc}") from None
        auths = document.get("auths", {}) if isinstance(document, dict) else {}
        logins: dict[str, Credentials] = {}
        for key, entry in auths.items() if isinstance(auths, dict) else ():
            if not isinstance(entry, dict):
                continue
            if entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    raise ConfigError(
                        f"auth file {path}: the 'auth' entry for {key!r} is not base64 of "
                        "'user:password'"
                    ) from None
            else:
                user, password = entry.get("username", ""), entry.get("password", "")
            if user:
                logins[_auth_key_host(key)] = Credentials(user, password)
        return logins

    async def credentials(self, host: str) -> Credentials | None:
        return self._logins.get(host)

    def invalidate(self, host: str) -> None:
        """A file's logins do not refresh."""


class CredentialChain:
    """Asks each provider in turn; the first with credentials for a host wins."""

    def __init__(self, providers: Sequence[CredentialProvider]) -> None:
        self._providers = list(providers)

    async def credentials(self, host: str) -> Credentials | None:
        for provider in self._providers:
            found = await provider.credentials(host)
            if found is not None:
                return found
        return None

    def invalidate(self, host: str) -> None:
        for provider in self._providers:
            provider.invalidate(host)
