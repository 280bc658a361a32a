"""OCIR logins and hosts: ``<key>.ocir.io``, user ``<namespace>/<user>``, auth token."""

from __future__ import annotations

from collections.abc import Mapping

from ecr_ocir_sync.registry.credentials import Credentials

__all__ = ["OcirCredentials", "ocir_login"]


def ocir_login(namespace: str, username: str) -> str:
    """``<namespace>/<user>`` unless the user already starts with the namespace.

    A federated ``oracleidentitycloudservice/jane`` contains a slash but still
    needs the namespace in front, so the test is the prefix, not any slash.
    """
    return username if username.startswith(f"{namespace}/") else f"{namespace}/{username}"


class OcirCredentials:
    """One OCIR login, offered to every ``*.ocir.io`` host and any overridden endpoint."""

    def __init__(
        self, namespace: str, username: str, auth_token: str, extra_hosts: Mapping[str, str] = {}
    ) -> None:
        self._credentials = Credentials(ocir_login(namespace, username), auth_token)
        self._extra_hosts = frozenset(extra_hosts.values())

    async def credentials(self, host: str) -> Credentials | None:
        if host.endswith(".ocir.io") or host in self._extra_hosts:
            return self._credentials
        return None

    def invalidate(self, host: str) -> None:
        """An auth token does not refresh; a 401 is final."""
