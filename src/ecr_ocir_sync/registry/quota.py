"""Recognising a write refused because a registry limit is reached.

What is documented: the OCI API (repository creation through the Artifacts
API) answers ``400 LimitExceeded`` ("exceeds the Oracle-defined limit for this
tenancy") or ``400 QuotaExceeded`` ("exceeds the administrator-defined quota
for this compartment"), both marked not to be retried.  What OCIR's registry
endpoint answers when a push hits the storage, repository or image limit is
**not** documented.  Registries in general refuse with a distribution error
(``DENIED`` on 403, sometimes ``TOOMANYREQUESTS`` on 429) whose message names
the limit, or with ``507 Insufficient Storage``.  So a registry answer counts
as a quota refusal only when it is one of those *and* its message speaks of a
quota or limit being exceeded or reached: a plain 403 stays an authorisation
problem and a plain 429 stays a rate limit, retried as before.
"""

from __future__ import annotations

import re

from ecr_ocir_sync.errors import QuotaLimit

__all__ = ["OCI_LIMIT_CODES", "advice", "quota_limit"]

# OCI API error codes (docs.oracle.com …/API/References/apierrors.htm): both 400, "Retry: No".
OCI_LIMIT_CODES = frozenset({"LimitExceeded", "QuotaExceeded"})
_REGISTRY_CODES = frozenset({"DENIED", "TOOMANYREQUESTS"})
_INSUFFICIENT_STORAGE = 507

_LIMIT_WORD = re.compile(r"\b(quota|limit|capacity)s?\b", re.IGNORECASE)
_REACHED_WORD = re.compile(
    r"\b(exceed\w*|reached|full|maximum|max|over|no space|insufficient)\b", re.IGNORECASE
)
_RATE_WORD = re.compile(r"\b(rate|requests per|throttl\w*|too many requests)\b", re.IGNORECASE)
_KINDS = (
    (QuotaLimit.STORAGE, re.compile(r"storage|size|bytes|\b[gmt]i?b\b|space", re.IGNORECASE)),
    (QuotaLimit.IMAGES, re.compile(r"image|manifest|\btags?\b", re.IGNORECASE)),
    (QuotaLimit.REPOSITORIES, re.compile(r"repositor|\brepos?\b", re.IGNORECASE)),
)


def _kind(message: str) -> QuotaLimit:
    return next((kind for kind, words in _KINDS if words.search(message)), QuotaLimit.UNKNOWN)


def quota_limit(status: int, code: str, message: str) -> QuotaLimit | None:
    """The limit an error answer says was reached, or None when it is not a quota refusal."""
    if code in OCI_LIMIT_CODES:
        return _kind(message)
    if status == _INSUFFICIENT_STORAGE:
        return QuotaLimit.STORAGE
    if code.upper() not in _REGISTRY_CODES or status not in (400, 403, 429):
        return None
    if _RATE_WORD.search(message) or not _LIMIT_WORD.search(message):
        return None
    if not _REACHED_WORD.search(message):
        return None
    return _kind(message)


def advice(limit: QuotaLimit) -> str:
    """What to do about a reached limit, for the error message."""
    what = {
        QuotaLimit.STORAGE: "the region's storage limit",
        QuotaLimit.REPOSITORIES: "the region's repository-count limit",
        QuotaLimit.IMAGES: "the image-count limit",
        QuotaLimit.UNKNOWN: "an OCIR limit",
    }[limit]
    return (
        f"OCIR refused the write: {what} is reached (quota, not retried). Raise the limit "
        "(OCI console: Governance > Limits, Quotas and Usage, service Container Registry, "
        "or a quota policy of the compartment) or free room: delete images no longer needed "
        "in that region, or mirror fewer tags (the sync rules' tag filters, or a rule's retain "
        "to delete older ones at OCIR); then retry the job"
    )
