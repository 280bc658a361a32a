"""Listing what ECR holds, through the ECR API (boto3), for reconciliation.

Paginated; throttling is retried by botocore's adaptive retry mode, which
backs off and slows the client down as ECR answers ThrottlingException.
boto3 is imported on first use only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecr_ocir_sync.errors import AuthError, UnavailableError
from ecr_ocir_sync.oci.digest import Digest

__all__ = ["EcrCatalog", "EcrImage"]


@dataclass(frozen=True, slots=True)
class EcrImage:
    """One image in an ECR repository: its digest, its tags and when it was pushed."""

    repository: str
    digest: Digest
    tags: tuple[str, ...]
    pushed_at: datetime


class EcrCatalog:
    """Repositories and images of one account in one region."""

    def __init__(self, account: str, region: str, *, endpoint_url: str | None = None) -> None:
        self.account = account
        self.region = region
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self.requests = 0

    def _ecr(self) -> Any:
        if self._client is None:
            import boto3  # noqa: PLC0415 - lazy: only reconciliation needs the ECR API
            from botocore.config import Config  # noqa: PLC0415

            self._client = boto3.client(
                "ecr",
                region_name=self.region,
                endpoint_url=self._endpoint_url,
                config=Config(retries={"mode": "adaptive", "max_attempts": 10}),
            )
        return self._client

    def _pages(self, operation: str, key: str, **parameters: Any) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        where = f"ECR {operation} in account {self.account}, {self.region}"
        try:
            for page in (
                self._ecr().get_paginator(operation).paginate(registryId=self.account, **parameters)
            ):
                self.requests += 1
                yield from page.get(key, [])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise AuthError(
                    f"{where}: {code}; the identity needs ecr:DescribeRepositories and "
                    "ecr:DescribeImages"
                ) from error
            raise UnavailableError(f"{where}: {code or error}") from error
        except BotoCoreError as error:
            raise UnavailableError(f"{where}: {error}") from error

    def _repositories(self) -> list[str]:
        return sorted(
            repository["repositoryName"]
            for repository in self._pages("describe_repositories", "repositories")
        )

    def _images(self, repository: str) -> list[EcrImage]:
        return [
            EcrImage(
                repository,
                Digest(detail["imageDigest"]),
                tuple(detail.get("imageTags") or ()),
                detail["imagePushedAt"],
            )
            for detail in self._pages("describe_images", "imageDetails", repositoryName=repository)
        ]

    async def repositories(self) -> list[str]:
        """Every repository name, sorted (the planner filters them with the rules' globs)."""
        return await asyncio.to_thread(self._repositories)

    async def images(self, repository: str) -> list[EcrImage]:
        return await asyncio.to_thread(self._images, repository)
