"""Settings from the environment, with the original service's variable names.

This module only reads and validates; it never reaches the network.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.rules.policy import DeletePolicy

__all__ = [
    "Endpoint",
    "ServiceSettings",
    "ocir_endpoints",
    "parse_endpoint",
]

T = TypeVar("T")
_ACCOUNT = re.compile(r"\d{12}")
_AWS_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")
_MIN_API_KEY = 16

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


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything ``serve`` needs; built by :meth:`from_env`, which names every problem."""

    namespace: str
    username: str
    auth_token: str = field(repr=False)
    region_keys: tuple[str, ...]
    allowed_accounts: frozenset[str]
    allowed_regions: frozenset[str]
    api_key: str | None = field(repr=False)
    data_dir: Path
    oci_region: str | None = None
    ecr_endpoint: Endpoint | None = None
    ocir_endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    insecure_registries: frozenset[str] = frozenset()
    workers: int = 4
    max_attempts: int = 10
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0
    request_attempts: int = 5
    request_retry_seconds: float = 0.5
    lease_seconds: float = 60.0
    retention_hours: float = 168.0
    drain_seconds: float = 25.0
    max_body_bytes: int = 65536
    max_pending_jobs: int = 10000  # more unfinished jobs: /sync answers 503 + Retry-After
    ops_port: int = 8081  # health, readiness, metrics; 0 serves them on the API port
    header_timeout_seconds: float = 10.0  # a request's headers must arrive within this
    body_timeout_seconds: float = 10.0  # and its body within this after them
    keep_alive_seconds: int = 5  # an idle kept-alive connection is closed after this
    max_concurrency: int = 512  # connections + requests in flight per port; more get 503
    api_docs: bool = False  # /docs and /openapi.json on the API port
    delete_policy: DeletePolicy = DeletePolicy.MIRROR
    log_level: str = "INFO"
    reconcile_interval_seconds: float = 3600.0  # 0 turns the periodic pass off
    reconcile_leader: bool = True  # only one pod of a StatefulSet reconciles

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceSettings:
        return _Reader(environ).settings()

    def region_endpoint(self, key: str) -> str:
        """The registry host of region ``key``."""
        endpoint = self.ocir_endpoints.get(key)
        return endpoint.host if endpoint else f"{key}.ocir.io"


class _Reader:
    """Reads every variable, collecting all problems before raising one ConfigError."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ
        self.problems: list[str] = []

    def text(self, name: str, *, required: bool = False, secret: bool = False) -> str:
        value = self.env.get(name, "").strip()
        if required and not value:
            what = "secret" if secret else "setting"
            self.problems.append(f"{name} is required ({what} not set)")
        return value

    def number(self, name: str, default: T, convert: Callable[[str], T], low: float) -> T:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = convert(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        if value < low:  # type: ignore[operator]
            self.problems.append(f"{name}={raw!r} must be at least {low}")
        return value

    def flag(self, name: str) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if raw not in ("", "true", "false", "1", "0", "yes", "no"):
            self.problems.append(f"{name}={raw!r}: expected true or false")
        return raw in ("true", "1", "yes")

    def listed(
        self, name: str, pattern: re.Pattern[str], example: str, fallback: str = ""
    ) -> frozenset[str]:
        raw = self.env.get(name, "").strip() or fallback
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if not items:
            self.problems.append(f"{name} is required: comma-separated, e.g. {example}")
        for item in items:
            if not pattern.fullmatch(item):
                self.problems.append(f"{name}: {item!r} is not valid, e.g. {example}")
        return frozenset(items)

    def _leader(self) -> bool:
        """``SYNC_RECONCILE_LEADER`` if set, else pod 0 of a StatefulSet (or a lone process)."""
        explicit = self.env.get("SYNC_RECONCILE_LEADER", "").strip().lower()
        if explicit:
            if explicit not in ("true", "false"):
                self.problems.append(f"SYNC_RECONCILE_LEADER={explicit!r}: expected true or false")
            return explicit == "true"
        ordinal = re.search(r"-(\d+)$", self.env.get("HOSTNAME", ""))
        return ordinal is None or ordinal.group(1) == "0"

    def settings(self) -> ServiceSettings:
        from ecr_ocir_sync.rules.regions import parse_region_keys  # noqa: PLC0415 - leaf import

        namespace = self.text("OCI_TENANCY", required=True)
        username = self.text("OCI_USERNAME", required=True)
        auth_token = self.text("OCI_AUTH_TOKEN", required=True, secret=True)
        keys_text = self.text("OCI_REPO_REGION_KEY", required=True)
        region_keys: list[str] = []
        if keys_text:
            try:
                region_keys = parse_region_keys(keys_text)
            except ConfigError as error:
                self.problems.append(error.message)
        accounts = self.listed("SYNC_ALLOWED_ACCOUNTS", _ACCOUNT, "123456789012,210987654321")
        regions = self.listed(
            "SYNC_ALLOWED_REGIONS",
            _AWS_REGION,
            "ap-southeast-2",
            fallback=self.env.get("AWS_DEFAULT_REGION", ""),
        )
        api_key = self.text("SYNC_API_KEY") or None
        open_ok = self.env.get("SYNC_ALLOW_UNAUTHENTICATED", "").lower() in ("1", "true", "yes")
        if api_key is None and not open_ok:
            self.problems.append(
                "SYNC_API_KEY is required (the shared secret callers send as X-API-Key); "
                "set SYNC_ALLOW_UNAUTHENTICATED=true to run without one"
            )
        elif api_key is not None and len(api_key) < _MIN_API_KEY:
            self.problems.append(f"SYNC_API_KEY must be at least {_MIN_API_KEY} characters")
        policy_text = self.env.get("SYNC_DELETE_POLICY", "mirror").strip().lower()
        if policy_text not in {p.value for p in DeletePolicy}:
            self.problems.append(f"SYNC_DELETE_POLICY={policy_text!r}: expected mirror or ignore")
            policy_text = "mirror"
        endpoints: dict[str, Endpoint] = {}
        ecr_endpoint: Endpoint | None = None
        try:
            endpoints = ocir_endpoints(self.env)
            raw_ecr = self.env.get("ECR_ENDPOINT", "").strip()
            ecr_endpoint = parse_endpoint("ECR_ENDPOINT", raw_ecr) if raw_ecr else None
        except ConfigError as error:
            self.problems.append(error.message)
        insecure = {h.strip() for h in self.env.get("SYNC_INSECURE_REGISTRIES", "").split(",")}
        insecure |= {e.host for e in endpoints.values() if e.insecure}
        if ecr_endpoint is not None and ecr_endpoint.insecure:
            insecure.add(ecr_endpoint.host)
        level = self.env.get("SYNC_LOG_LEVEL", "INFO").strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            self.problems.append(
                f"SYNC_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING or ERROR"
            )
        settings = ServiceSettings(
            namespace=namespace,
            username=username,
            auth_token=auth_token,
            region_keys=tuple(region_keys),
            allowed_accounts=accounts,
            allowed_regions=regions,
            api_key=api_key,
            data_dir=Path(self.env.get("SYNC_DATA_DIR", "").strip() or "/var/lib/ecr-ocir-sync"),
            oci_region=self.text("OCI_REGION") or None,
            ecr_endpoint=ecr_endpoint,
            ocir_endpoints=endpoints,
            insecure_registries=frozenset(h for h in insecure if h),
            workers=self.number("SYNC_WORKERS", 4, int, 1),
            max_attempts=self.number("SYNC_MAX_ATTEMPTS", 10, int, 1),
            retry_base_seconds=self.number("SYNC_RETRY_BASE_SECONDS", 5.0, float, 0),
            retry_max_seconds=self.number("SYNC_RETRY_MAX_SECONDS", 600.0, float, 0),
            request_attempts=self.number("SYNC_REQUEST_ATTEMPTS", 5, int, 1),
            request_retry_seconds=self.number("SYNC_REQUEST_RETRY_SECONDS", 0.5, float, 0),
            lease_seconds=self.number("SYNC_LEASE_SECONDS", 60.0, float, 1),
            retention_hours=self.number("SYNC_RETENTION_HOURS", 168.0, float, 0),
            drain_seconds=self.number("SYNC_DRAIN_SECONDS", 25.0, float, 0),
            max_body_bytes=self.number("SYNC_MAX_BODY_BYTES", 65536, int, 1024),
            max_pending_jobs=self.number("SYNC_MAX_PENDING_JOBS", 10000, int, 1),
            ops_port=self.number("SYNC_OPS_PORT", 8081, int, 0),
            header_timeout_seconds=self.number("SYNC_HEADER_TIMEOUT_SECONDS", 10.0, float, 0.1),
            body_timeout_seconds=self.number("SYNC_BODY_TIMEOUT_SECONDS", 10.0, float, 0.1),
            keep_alive_seconds=self.number("SYNC_KEEP_ALIVE_SECONDS", 5, int, 1),
            max_concurrency=self.number("SYNC_MAX_CONCURRENCY", 512, int, 2),
            api_docs=self.flag("SYNC_API_DOCS"),
            delete_policy=DeletePolicy(policy_text),
            log_level=level,
            reconcile_interval_seconds=self.number(
                "SYNC_RECONCILE_INTERVAL_SECONDS", 3600.0, float, 0
            ),
            reconcile_leader=self._leader(),
        )
        if self.problems:
            raise ConfigError(
                "cannot start, fix these settings:\n  - " + "\n  - ".join(self.problems)
            )
        return settings
