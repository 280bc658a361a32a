"""sha256 digests: validation, computation and a verifier for streamed bytes."""

from __future__ import annotations

import hashlib
import re
from typing import NewType

from ecr_ocir_sync.errors import IntegrityError, InvalidReferenceError

__all__ = ["Digest", "DigestVerifier", "digest_of", "parse_digest"]

Digest = NewType("Digest", str)

_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


def parse_digest(text: str) -> Digest:
    """Return ``text`` as a Digest, or raise saying what is wrong with it."""
    if not _DIGEST.fullmatch(text):
        raise InvalidReferenceError(
            f"invalid digest {text!r}: expected 'sha256:' followed by 64 lowercase hex digits"
        )
    if not _SHA256.fullmatch(text):
        raise InvalidReferenceError(
            f"unsupported digest {text!r}: only sha256 (64 lowercase hex digits) is supported"
        )
    return Digest(text)


def digest_of(data: bytes) -> Digest:
    """The sha256 digest of ``data``."""
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


class DigestVerifier:
    """Checks streamed bytes against an expected size and digest.

    Call :meth:`update` with every chunk as it passes and :meth:`verify` at EOF.
    ``update`` fails as soon as more bytes than promised have arrived, so a
    runaway source is cut off early; ``verify`` fails on a short read or a
    digest mismatch.  Either way nothing downstream may be committed.
    """

    __slots__ = ("_hash", "_received", "digest", "size", "where")

    def __init__(self, digest: Digest, size: int, where: str) -> None:
        self.digest = digest
        self.size = size
        self.where = where
        self._hash = hashlib.sha256()
        self._received = 0

    def update(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self.size:
            raise IntegrityError(
                f"reading blob {self.digest} from {self.where}: more than the "
                f"{self.size} bytes its descriptor declares; nothing was committed"
            )
        self._hash.update(chunk)

    @property
    def received(self) -> int:
        return self._received

    def prefix_hexdigest(self) -> str:
        """The sha256 of the bytes so far (a checkpoint; the stream goes on)."""
        return self._hash.copy().hexdigest()

    def verify(self) -> None:
        if self._received != self.size:
            raise IntegrityError(
                f"reading blob {self.digest} from {self.where}: got {self._received} bytes, "
                f"descriptor declares {self.size}; nothing was committed"
            )
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            raise IntegrityError(
                f"reading blob {self.digest} from {self.where}: content has digest {actual}; "
                "the source is corrupt, nothing was committed"
            )
