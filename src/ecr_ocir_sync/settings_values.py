"""The value grammars of :mod:`ecr_ocir_sync.settings`: flags, numbers, lists, URLs, OCIDs.

Each parser takes the variable's text (already stripped, never blank) and returns the
value, or raises ValueError saying what was expected; the settings model puts the
variable's name and value in front of that message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_STATUS_URL",
    "FLAG_WORDS",
    "Endpoint",
    "account_ids",
    "api_url",
    "artifacts_url",
    "at_least",
    "aws_regions",
    "endpoint",
    "flag",
    "limits_url",
    "oci_region_id",
    "ocid",
    "region_keys",
    "registry_api_url",
    "word_of",
]

E = TypeVar("E", bound=StrEnum)

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
FLAG_WORDS = _TRUE + _FALSE
"""Every flag's words, any case: true, 1, yes, on turn it on; false, 0, no, off turn it off."""
# SYNC_STATUS_URL's default, here so that `status --help` names it without loading the model.
DEFAULT_STATUS_URL = "http://127.0.0.1:8080"

_ACCOUNT = re.compile(r"\d{12}")
_AWS_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")
_OCI_REGION = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+-\d+")
# ocid1.<type>.<realm>.[region][.future].<unique id>; the root compartment is the tenancy.
_COMPARTMENT = re.compile(
    r"ocid1\.(?P<type>compartment|tenancy)\.oc\d+\.[a-z0-9-]*(?:\.[a-z0-9-]*)?\.[a-z0-9]+"
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registry host and whether it is spoken to over plain HTTP."""

    host: str
    insecure: bool


def flag(value: object) -> object:
    """The one boolean grammar (:data:`FLAG_WORDS`); anything else is refused."""
    if not isinstance(value, str):
        return value
    word = value.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(FLAG_WORDS)} (any case)")


def at_least(kind: Callable[[str], int | float], low: float) -> Callable[[object], object]:
    """A number of type ``kind`` no smaller than ``low``."""

    def parse(value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            number = kind(value)
        except ValueError:
            raise ValueError("is not a number") from None
        if number < low:
            raise ValueError(f"must be at least {low:g}")
        return number

    return parse


def word_of(enum: type[E], case: Callable[[str], str]) -> Callable[[object], object]:
    """One of ``enum``'s values, after ``case`` (str.lower or str.upper)."""
    words = [member.value for member in enum]

    def parse(value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return enum(case(value))
        except ValueError:
            raise ValueError(
                f"expected {', '.join(words[:-1])} or {words[-1]}"
                if len(words) > 1
                else f"expected {words[0]}"
            ) from None

    return parse


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")]


def region_keys(value: object) -> object:
    """``"mel, syd"`` → ``("mel", "syd")``; empty entries and duplicates are refused."""
    if not isinstance(value, str):
        return value
    keys = [key.lower() for key in _items(value)]
    if any(not key for key in keys):
        raise ValueError("expected comma-separated region keys, e.g. 'mel,syd'")
    if len(set(keys)) != len(keys):
        raise ValueError("names a region twice")
    return tuple(keys)


def _listed(pattern: re.Pattern[str], what: str, example: str) -> Callable[[object], object]:
    def parse(value: object) -> object:
        if not isinstance(value, str):
            return value
        items = [item for item in _items(value) if item]
        bad = [item for item in items if not pattern.fullmatch(item)]
        if bad or not items:
            named = ", ".join(repr(item) for item in bad) or "nothing"
            raise ValueError(f"{named} is not {what}; comma-separated, e.g. {example}")
        return frozenset(items)

    return parse


account_ids = _listed(_ACCOUNT, "an AWS account ID", "123456789012,210987654321")
aws_regions = _listed(_AWS_REGION, "an AWS region", "ap-southeast-2")


def endpoint(value: object) -> object:
    """``https://mel.ocir.io`` or ``http://127.0.0.1:5001`` → Endpoint; no path."""
    if not isinstance(value, str):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(
            "expected a registry URL such as https://mel.ocir.io or http://127.0.0.1:5001 (no path)"
        )
    return Endpoint(parts.netloc, parts.scheme == "http")


def api_url(expected: str) -> Callable[[object], object]:
    """A validator of an OCI API's URL, no path; kept without a trailing slash."""

    def check(value: object) -> object:
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc and parts.path in ("", "/"):
            return value.rstrip("/")
        raise ValueError(f"expected {expected} (no path)")

    return check


artifacts_url = api_url(
    "the Artifacts API's URL such as https://artifacts.ap-melbourne-1.oci.oraclecloud.com"
)
limits_url = api_url(
    "the Limits API's URL such as https://limits.ap-melbourne-1.oci.oraclecloud.com"
)
registry_api_url = api_url("the Container Registry API's URL such as https://mel.ocir.io")


def oci_region_id(value: object) -> object:
    if isinstance(value, str) and not _OCI_REGION.fullmatch(value):
        raise ValueError("expected an OCI region identifier such as ap-melbourne-1")
    return value


def ocid(value: object) -> object:
    """A compartment OCID, or the tenancy's (the root compartment)."""
    if isinstance(value, str) and not _COMPARTMENT.fullmatch(value):
        raise ValueError(
            "expected a compartment OCID such as ocid1.compartment.oc1..aaaa… (or the "
            "tenancy's ocid1.tenancy.oc1..aaaa… for the root compartment)"
        )
    return value
