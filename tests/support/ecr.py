"""A stand-in ECR: a real registry for the image bytes, moto for the ECR API listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.support.images import Image, Pusher
from tests.support.registry import RegistryServer
from tests.support.service import ACCOUNT, REGION

__all__ = ["ACCOUNT", "REGION", "FakeEcr"]


@dataclass
class FakeEcr:
    """Pushes go to both sides so the API and the registry agree, as in real ECR."""

    registry: RegistryServer
    api: Any  # a boto3 ECR client bound to moto

    def push(self, repository: str, tag: str, image: Image) -> str:
        pusher = Pusher(self.registry.url)
        try:
            pusher.image(repository, tag, image)
        finally:
            pusher.close()
        existing = self.api.describe_repositories()["repositories"]
        if repository not in {r["repositoryName"] for r in existing}:
            self.api.create_repository(repositoryName=repository)
        self.api.put_image(
            repositoryName=repository,
            imageManifest=image.manifest.decode(),
            imageManifestMediaType=image.media_type,
            imageTag=tag,
            imageDigest=image.digest,
        )
        return image.digest

    def pushed_at(self, repository: str, tag: str, when: datetime) -> None:
        """Set when ECR says ``tag``'s image was pushed (imagePushedAt): moto keeps its
        state per process, so this reaches an in-process moto server too."""
        from moto.ecr.models import ecr_backends  # noqa: PLC0415 - moto's own state

        images = ecr_backends[ACCOUNT][REGION].repositories[repository].images
        (image,) = [image for image in images if tag in image.image_tags]
        image.image_pushed_at = int(when.timestamp())
