"""The one error tree of the project.

::

    SyncError                       retryable=False unless noted
    ├── ConfigError                 bad settings; stops start-up
    ├── InvalidReferenceError       an image name, tag or digest outside the grammar
    ├── IntegrityError              bytes whose size or sha256 differ from the descriptor
    └── RegistryError               anything a registry said or failed to say
        ├── AuthError               401/403 after one re-authentication
        ├── NotFoundError           404 / MANIFEST_UNKNOWN / BLOB_UNKNOWN
        ├── RateLimitedError        429 (retryable, carries Retry-After)
        ├── UnavailableError        5xx, connection reset, timeout (retryable)
        ├── QuotaExceededError      an OCIR limit is reached (storage, repositories, images)
        └── ProtocolError           an answer that breaks the distribution spec

Workers and the engine read ``retryable`` and ``retry_after``; nothing else
needs to know which class it holds.  httpx exceptions are converted in
:mod:`ecr_ocir_sync.registry.transport` only.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AuthError",
    "ConfigError",
    "IntegrityError",
    "InvalidReferenceError",
    "NotFoundError",
    "ProtocolError",
    "QuotaExceededError",
    "QuotaLimit",
    "RateLimitedError",
    "RegistryError",
    "SyncError",
    "UnavailableError",
]


class SyncError(Exception):
    """Base of every error this project raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ConfigError(SyncError):
    """Settings are missing or malformed; the message names the setting."""


class InvalidReferenceError(SyncError):
    """An image reference, repository name, tag or digest breaks the grammar."""


class IntegrityError(SyncError):
    """Bytes read do not match the size or digest their descriptor promised."""


class RegistryError(SyncError):
    """A registry refused, failed or answered something unusable."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class AuthError(RegistryError):
    """Credentials were refused (after one re-authentication) or are missing."""


class NotFoundError(RegistryError):
    """The repository, manifest or blob does not exist."""


class RateLimitedError(RegistryError):
    """429 Too Many Requests: retry after ``retry_after`` seconds."""

    retryable = True


class UnavailableError(RegistryError):
    """The registry could not be reached or failed on its side (5xx)."""

    retryable = True


class QuotaLimit(StrEnum):
    """Which limit a registry said was reached."""

    STORAGE = "storage"
    REPOSITORIES = "repositories"
    IMAGES = "images"
    UNKNOWN = "unknown"  # the refusal names a limit but not which one


class QuotaExceededError(RegistryError):
    """The registry refused a write because a limit is reached: retrying cannot help until
    someone raises the limit or frees room, so it is final for this attempt."""

    def __init__(self, message: str, *, limit: QuotaLimit, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.limit = limit


class ProtocolError(RegistryError):
    """The registry answered something the distribution spec does not allow."""
