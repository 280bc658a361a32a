"""Where an ECR image goes: the one answer events, reconciliation and the runner share.

Without a rules file every repository and tag goes to every region of
``OCI_REPO_REGION_KEY`` as ``<namespace>/<repository>``; the rules file
(:mod:`ecr_ocir_sync.rules`) narrows and maps that.
"""

from __future__ import annotations

from collections.abc import Sequence

from ecr_ocir_sync.config import DeletePolicy, ServiceSettings
from ecr_ocir_sync.registry.ecr_api import EcrImage

__all__ = ["EnvironmentPlacer"]


class EnvironmentPlacer:
    """The original service's behaviour: everything, everywhere, same names."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings

    def destinations(self, repository: str, tag: str | None) -> dict[str, tuple[str, str]] | None:
        settings = self._settings
        path = f"{settings.namespace}/{repository}"
        return {key: (settings.region_endpoint(key), path) for key in settings.region_keys}

    def select_tags(self, repository: str, images: Sequence[EcrImage]) -> set[str]:
        return {tag for image in images for tag in image.tags}

    def mirrors_deletes(self, repository: str, tag: str | None) -> bool:
        return self._settings.delete_policy is DeletePolicy.MIRROR

    def referrers(self, repository: str, tag: str | None) -> bool:
        return True
