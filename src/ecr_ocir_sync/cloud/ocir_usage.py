"""How full each OCIR region is, from the OCI API (the principals repository creation uses).

The Artifacts API's ``ListContainerRepositories`` reports, per repository of
the compartment (``OCI_COMPARTMENT_ID``, where the mirror creates its
repositories), the bytes of its layers, its billable size and its image
count.  The Limits API's ``ListLimitValues`` for service ``container-registry``
gives the tenancy's limits in the region.  Its limit names are not documented
for this service, so a limit is used only when its name says what it is: one
naming storage and a unit (``…-gb`` / ``…-tb``) becomes the storage limit, one
naming repositories the repository limit; otherwise the limit is reported
unknown with the names found, rather than guessed.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Any

from ecr_ocir_sync.cloud.ocir_repositories import GONE_STATES, OcirRepositories, load_sdk

__all__ = ["LIMITS_SERVICE", "OcirUsage", "RegionUsage"]

LIMITS_SERVICE = "container-registry"
_UNITS = {"gb": 10**9, "tb": 10**12, "gib": 2**30, "tib": 2**40}
_STORAGE_NAME = re.compile(r"storage.*?[-_](?P<unit>gi?b|ti?b)$|^(?P<unit2>gi?b|ti?b)[-_].*storage")
_REPOSITORY_NAME = re.compile(r"repo(sitor(y|ies))?[-_]?(count)?$|^repo")


@dataclass(frozen=True, slots=True)
class RegionUsage:
    """One region's figures; a limit is None when the Limits API does not give it."""

    region: str
    used_bytes: int  # the layers of every repository of the compartment
    billable_bytes: int  # OCI's billable size (whole GB) of the same
    repositories: int
    images: int
    storage_limit_bytes: int | None
    repository_limit: int | None
    limit_note: str | None = None  # why a limit is missing

    @property
    def storage_fraction(self) -> float | None:
        """Used / limit, when the limit is known."""
        if not self.storage_limit_bytes:
            return None
        return max(self.used_bytes, self.billable_bytes) / self.storage_limit_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "used_bytes": self.used_bytes,
            "billable_bytes": self.billable_bytes,
            "repositories": self.repositories,
            "images": self.images,
            "storage_limit_bytes": self.storage_limit_bytes,
            "repository_limit": self.repository_limit,
            "storage_fraction": self.storage_fraction,
            "limit_note": self.limit_note,
        }


def storage_limit_bytes(name: str, value: int) -> int | None:
    """Bytes of a storage limit whose name carries its unit; None when it does not."""
    match = _STORAGE_NAME.search(name.lower())
    if match is None:
        return None
    return value * _UNITS[match.group("unit") or match.group("unit2")]


class OcirUsage:
    """Reads :class:`RegionUsage` per region with the credentials of ``repositories``."""

    def __init__(self, repositories: OcirRepositories) -> None:
        self._repositories = repositories
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    async def read(self, region_key: str) -> RegionUsage:
        """The region's figures. Raises the errors of :meth:`OcirRepositories.ensure` when the
        Artifacts API fails; a Limits API failure only leaves the limits unknown."""
        return await asyncio.to_thread(self._read_blocking, region_key)

    def _client(self, region_key: str, kind: str) -> Any:
        oci = load_sdk()  # lazy: the SDK is the slowest import of the project
        settings = self._repositories.settings
        key = region_key.strip().lower()
        with self._lock:
            client = self._clients.get((key, kind))
            if client is None:
                if kind == "artifacts":
                    factory, endpoint = oci.artifacts.ArtifactsClient, settings.endpoints.get(key)
                else:
                    factory, endpoint = oci.limits.LimitsClient, settings.limits_endpoints.get(key)
                client, _ = self._repositories.sdk_client(region_key, factory, endpoint)
                self._clients[(key, kind)] = client
            return client

    def _read_blocking(self, region_key: str) -> RegionUsage:
        settings = self._repositories.settings
        api = self._client(region_key, "artifacts")
        used = billable = repositories = images = 0
        page: str | None = None
        where = f"OCIR {region_key} compartment {settings.compartment_id}"
        while True:
            try:
                answer = api.list_container_repositories(settings.compartment_id, page=page)
            except Exception as exc:
                raise self._repositories.api_error(exc, "list the repositories", where) from exc
            for item in answer.data.items or ():
                if item.lifecycle_state in GONE_STATES:
                    continue
                repositories += 1
                used += int(item.layers_size_in_bytes or 0)
                billable += int(item.billable_size_in_gbs or 0) * 10**9
                images += int(item.image_count or 0)
            page = answer.next_page
            if not page:
                break
        storage, repository_limit, note = self._limits(region_key)
        return RegionUsage(
            region_key, used, billable, repositories, images, storage, repository_limit, note
        )

    def _limits(self, region_key: str) -> tuple[int | None, int | None, str | None]:
        tenancy = self._repositories.tenancy_id()
        if tenancy is None:
            return None, None, "the tenancy's OCID is not known to these credentials"
        api = self._client(region_key, "limits")
        values: list[Any] = []
        page: str | None = None
        try:
            while True:
                answer = api.list_limit_values(
                    tenancy, LIMITS_SERVICE, scope_type="REGION", page=page
                )
                values.extend(answer.data or ())
                page = answer.next_page
                if not page:
                    break
        except Exception as exc:  # noqa: BLE001 - the limit is optional: say why it is missing
            status = getattr(exc, "status", None)
            detail = f"{status} {getattr(exc, 'code', '')}" if status else type(exc).__name__
            return None, None, f"the Limits API did not give the limits ({detail})"
        storage = repository_limit = None
        for value in values:
            name = str(value.name or "").lower()
            if storage is None and "storage" in name:
                storage = storage_limit_bytes(name, int(value.value))
            elif repository_limit is None and _REPOSITORY_NAME.search(name):
                repository_limit = int(value.value)
        note = None
        if storage is None:
            names = ", ".join(sorted(str(v.name) for v in values)) or "none"
            note = f"no {LIMITS_SERVICE} storage limit with a unit among the limits ({names})"
        return storage, repository_limit, note
