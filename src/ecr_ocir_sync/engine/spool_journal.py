"""What a spool file holds, written beside it so that a new process can use it.

A process can die at any byte (kill -9, a node failure).  The journal of a
blob's spool file says how many of its first bytes were verified as they
were read (``verified``, with the sha256 of exactly those bytes) and where
each destination's upload session stood.  It is written atomically (a new
file renamed over the old) at checkpoints, never ahead of the bytes it
describes, so after a crash it under-states rather than over-states.  The
next process re-hashes the file's first ``verified`` bytes before using any
of them: a file changed or lost (page cache gone with the node) is read from
the source again instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ecr_ocir_sync.oci.digest import Digest, parse_digest

__all__ = ["EMPTY_SHA256", "SpoolJournal", "StoredUpload"]

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256().hexdigest()
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """An upload session a destination had open, and the bytes it had confirmed."""

    location: str
    offset: int


@dataclass(slots=True)
class SpoolJournal:
    """The journal of one resumable spool file (``<hex>.spool`` beside ``<hex>.json``)."""

    path: Path
    digest: Digest
    size: int
    verified: int = 0
    prefix_sha256: str = EMPTY_SHA256
    uploads: dict[str, StoredUpload] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SpoolJournal | None:
        """The journal at ``path``, or None when it is missing, unreadable or inconsistent."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            journal = cls(
                path,
                parse_digest(data["digest"]),
                int(data["size"]),
                int(data["verified"]),
                str(data["prefix_sha256"]),
                {
                    str(key): StoredUpload(str(value["location"]), int(value["offset"]))
                    for key, value in dict(data["uploads"]).items()
                },
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("spool journal %s is unusable (%s); its blob is read again", path, error)
            return None
        if data.get("format") != _FORMAT or not 0 <= journal.verified <= journal.size:
            log.warning("spool journal %s is not one this version wrote; ignored", path)
            return None
        return journal

    def checkpoint(self, verified: int, prefix_sha256: str) -> None:
        """The first ``verified`` bytes are on the spool file and hash to ``prefix_sha256``."""
        self.verified = verified
        self.prefix_sha256 = prefix_sha256
        self.save()

    def forget_progress(self) -> None:
        """The file's bytes could not be trusted: nothing of it is used."""
        self.verified = 0
        self.prefix_sha256 = EMPTY_SHA256
        self.save()

    def record_upload(self, key: str, location: str, offset: int) -> None:
        self.uploads[key] = StoredUpload(location, offset)
        self.save()

    def forget_upload(self, key: str) -> None:
        if self.uploads.pop(key, None) is not None:
            self.save()

    def stored_upload(self, key: str) -> StoredUpload | None:
        return self.uploads.get(key)

    @property
    def useful(self) -> bool:
        """Whether a later attempt would gain anything from this journal."""
        return self.verified > 0 or bool(self.uploads)

    def save(self) -> None:
        data = {
            "format": _FORMAT,
            "digest": self.digest,
            "size": self.size,
            "verified": self.verified,
            "prefix_sha256": self.prefix_sha256,
            "uploads": {
                key: {"location": upload.location, "offset": upload.offset}
                for key, upload in self.uploads.items()
            },
        }
        temporary = self.path.with_suffix(".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out)
            temporary.replace(self.path)  # atomic: a crash leaves the old or the new
        except OSError as error:
            # The copy goes on: a journal left behind only under-states what may be
            # resumed (an older checkpoint, a session the registry is asked about).
            log.warning("spool journal %s not written (%s)", self.path, error)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".tmp").unlink(missing_ok=True)
