"""ECR credentials from ``GetAuthorizationToken``, cached and refreshed before expiry.

boto3 is imported on first use only: it costs more start-up time than the
rest of the CLI together.  Its default credential chain applies, so
environment keys, IRSA web identity and instance roles all work.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecr_ocir_sync.errors import AuthError, UnavailableError
from ecr_ocir_sync.registry.credentials import Credentials

__all__ = ["ECR_HOST", "EcrCredentialProvider", "EcrToken", "ecr_host"]

ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
)

# Refresh this long before the token's 12-hour expiry so no copy starts on a dying token.
_REFRESH_MARGIN = 30 * 60.0


def ecr_host(account: str, region: str) -> str:
    """The registry host of an AWS account in a region."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


@dataclass(frozen=True, slots=True)
class EcrToken:
    credentials: Credentials
    expires_at: float


class EcrCredentialProvider:
    """Answers for the ECR registry hosts it was given (real or overridden endpoints)."""

    def __init__(
        self,
        *,
        hosts: dict[str, tuple[str, str]],
        endpoint_url: str | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = _REFRESH_MARGIN,
    ) -> None:
        """``hosts`` maps a registry host to its (account, region)."""
        self._hosts = dict(hosts)
        self._endpoint_url = endpoint_url
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._tokens: dict[tuple[str, str], EcrToken] = {}
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def credentials(self, host: str) -> Credentials | None:
        account_region = self._hosts.get(host)
        if account_region is None:
            match = ECR_HOST.fullmatch(host)
            if match is None:
                return None
            account_region = (match["account"], match["region"])
        async with self._lock:
            token = self._tokens.get(account_region)
            if token is None or self._clock() >= token.expires_at - self._refresh_margin:
                token = await asyncio.to_thread(self._fetch, *account_region)
                self._tokens[account_region] = token
            return token.credentials

    def invalidate(self, host: str) -> None:
        account_region = self._hosts.get(host)
        if account_region is not None:
            self._tokens.pop(account_region, None)

    def _fetch(self, account: str, region: str) -> EcrToken:
        import boto3  # noqa: PLC0415 - lazy: keeps the CLI's cold start short
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        client: Any = boto3.client("ecr", region_name=region, endpoint_url=self._endpoint_url)
        try:
            answer = client.get_authorization_token(registryIds=[account])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise AuthError(
                f"ECR GetAuthorizationToken for account {account} in {region}: {code}; "
                "the AWS identity needs ecr:GetAuthorizationToken"
            ) from exc
        except BotoCoreError as exc:
            raise UnavailableError(
                f"ECR GetAuthorizationToken for account {account} in {region}: {exc}"
            ) from exc
        self.fetches += 1
        data = answer["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        expires = data.get("expiresAt")
        expires_at = expires.timestamp() if expires is not None else self._clock() + 12 * 3600
        return EcrToken(Credentials(user, password), expires_at)
