"""What a deletion in ECR does at the destinations (``SYNC_DELETE_POLICY``, a rule's ``delete``)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DeletePolicy"]


class DeletePolicy(StrEnum):
    MIRROR = "mirror"  # an image deleted in ECR is deleted in every region
    IGNORE = "ignore"  # deletions are acknowledged and not propagated
