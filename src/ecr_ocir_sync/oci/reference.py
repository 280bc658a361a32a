"""Image references ``host[:port]/repo/path[:tag][@sha256:…]`` per the distribution grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ecr_ocir_sync.errors import InvalidReferenceError
from ecr_ocir_sync.oci.digest import Digest, parse_digest

__all__ = [
    "ImageReference",
    "check_repository",
    "check_tag",
    "parse_reference",
]

_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
# ASCII only, as the distribution grammar says: ``\w`` would also take accented
# letters, CJK or Arabic-Indic digits.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAX_NAME = 255


def check_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository path, else raise saying why."""
    if not name:
        raise InvalidReferenceError("repository name is empty")
    if len(name) > _MAX_NAME:
        raise InvalidReferenceError(
            f"repository name {name[:40]!r}… is {len(name)} characters; the limit is {_MAX_NAME}"
        )
    for component in name.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReferenceError(
                f"invalid repository name {name!r}: component {component!r} must be lowercase "
                "letters and digits, separated by '.', '_', '__' or '-'"
            )
    return name


def check_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else raise saying why."""
    if not _TAG.fullmatch(tag):
        raise InvalidReferenceError(
            f"invalid tag {tag!r}: up to 128 ASCII letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return tag


@dataclass(frozen=True, slots=True)
class ImageReference:
    """One image in one registry, addressed by tag, digest or both."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def manifest_reference(self) -> str:
        """What goes after ``/manifests/``: the digest when known, else the tag."""
        if self.digest is not None:
            return self.digest
        if self.tag is not None:
            return self.tag
        return "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str | None) -> ImageReference:
        return replace(self, tag=tag)

    def with_digest(self, digest: Digest | None) -> ImageReference:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_reference(text: str) -> ImageReference:
    """Parse ``host[:port]/repo/path[:tag][@digest]``; the host is required."""
    original = text
    if "://" in text:
        raise InvalidReferenceError(
            f"invalid image reference {original!r}: drop the scheme, "
            "e.g. 'mel.ocir.io/ns/app:1.0' (use --insecure HOST for plain HTTP)"
        )
    digest: Digest | None = None
    if "@" in text:
        text, _, digest_text = text.partition("@")
        digest = parse_digest(digest_text)
    host, slash, path = text.partition("/")
    if not slash or not _looks_like_host(host):
        raise InvalidReferenceError(
            f"invalid image reference {original!r}: it must start with the registry host, "
            "e.g. '123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.0' or 'localhost:5000/app'"
        )
    if not _HOST.fullmatch(host):
        raise InvalidReferenceError(f"invalid registry host {host!r} in {original!r}")
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        check_tag(tag)
    try:
        check_repository(path)
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(f"in image reference {original!r}: {exc.message}") from None
    return ImageReference(registry=host, repository=path, tag=tag, digest=digest)
