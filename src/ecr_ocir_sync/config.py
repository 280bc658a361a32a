"""Settings from the environment, with the original service's variable names.

This module only reads and validates; it never reaches the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ecr_ocir_sync.errors import ConfigError

__all__ = ["Endpoint", "ocir_endpoints", "parse_endpoint"]

_OCIR_ENDPOINT_PREFIX = "OCIR_ENDPOINT_"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registry host and whether it is spoken to over plain HTTP."""

    host: str
    insecure: bool


def parse_endpoint(variable: str, value: str) -> Endpoint:
    """``https://mel.ocir.io`` or ``http://127.0.0.1:5001`` → Endpoint; anything else is named."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(
            f"{variable}={value!r}: expected a registry URL such as https://mel.ocir.io "
            "or http://127.0.0.1:5001 (no path)"
        )
    return Endpoint(parts.netloc, parts.scheme == "http")


def ocir_endpoints(environ: Mapping[str, str] = os.environ) -> dict[str, Endpoint]:
    """Region key → endpoint from ``OCIR_ENDPOINT_<KEY>`` (e.g. ``OCIR_ENDPOINT_MEL``)."""
    return {
        name.removeprefix(_OCIR_ENDPOINT_PREFIX).lower(): parse_endpoint(name, value)
        for name, value in environ.items()
        if name.startswith(_OCIR_ENDPOINT_PREFIX) and value
    }
