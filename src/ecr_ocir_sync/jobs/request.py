"""What a job is asked to do: one image event, validated, in the store's own terms."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ecr_ocir_sync.oci.digest import Digest

__all__ = ["EVENT_ACTIONS", "Action", "Origin", "SyncRequest"]


class Action(StrEnum):
    PUSH = "PUSH"
    DELETE = "DELETE"  # the tag is gone from ECR
    # ECR still has the tag, but its rule's retain no longer keeps it (never an event).
    EXPIRE = "EXPIRE"


#: The actions an ECR event carries (EventBridge's ``action-type``); EXPIRE is never one.
EVENT_ACTIONS = frozenset({Action.PUSH, Action.DELETE})


class Origin(StrEnum):
    """Where a job's request came from, which decides whether event order applies to it."""

    EVENT = "event"  # an ECR event: the newest event per tag wins
    # A reconciliation repair, built from ECR's current listing: no event supersedes it
    # (its run checks ECR's state again, which is what decides).
    RECONCILE = "reconcile"


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """One accepted event: what happened to which image, and when."""

    action: Action
    account: str
    region: str
    repository: str
    tag: str | None
    digest: Digest | None
    event_time: float | None  # seconds since the epoch, when the event says
    event_id: str | None
    origin: Origin = Origin.EVENT

    @property
    def image_key(self) -> str:
        """Events with the same key concern the same tag (or untagged digest)."""
        return f"{self.account}/{self.region}/{self.repository}:{self.tag or self.digest}"
