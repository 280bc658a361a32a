"""A scripted stand-in for the OCI Artifacts API, on 127.0.0.1, for the real ``oci`` SDK.

The SDK is pointed at it with the client's ``service_endpoint``.  A test lists
the requests it expects, in order, with the answer to each; the server answers
those and records every request it sees: method, path, query, JSON body, and
the OCI request signature (``Authorization: Signature keyId=…``), verified
against a public key when one is given.  A request that is not the next one in
the script is recorded as a violation and answered ``400 UnexpectedRequest``;
:meth:`OciApiServer.check_finished` fails the test on any violation and on
expected requests never sent.

It also writes what the SDK needs to sign requests: an OCI config file with a
fresh RSA API key (see :func:`write_api_key_config`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

API = "/20160918"
REPOSITORIES = f"{API}/container/repositories"
LIMIT_VALUES = "/20190729/limitValues"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaa3vi3ft3yi3sq4nhiql4nvbzjz6gipbn72h7werl6njs6xsq4wgdq"
USER = "ocid1.user.oc1..aaaaaaaazsd5fi4fm4bl3qm3z5ei5j7ktqa3u5tsw5qr7hmhcyjo7yp5bxqa"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaa7ohyc3ca5prb2wqu2jyzydmymmhlqd3ouzvp2ha3x5tnb4qfkwta"
NAMESPACE = "axaxnpcrorw5"

_SIGNATURE_FIELD = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """One request as it reached the server."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    key_id: str | None  # from ``Authorization: Signature keyId="…"``; None when unsigned
    signature_valid: bool | None  # None when no verification key was given

    @property
    def signed(self) -> bool:
        return self.key_id is not None


Respond = Answer | Callable[[Seen], Answer]


@dataclass
class _Expected:
    method: str
    path: str
    query: dict[str, str] | None
    answer: Respond


class OciApiServer:
    """``expect()`` the requests in order, ``start()``, point the SDK at ``url``."""

    def __init__(self, *, verify_key: rsa.RSAPublicKey | None = None) -> None:
        self.verify_key = verify_key
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self._expected: deque[_Expected] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the script ---------------------------------------------------------------

    def expect(
        self, method: str, path: str, answer: Respond, *, query: dict[str, str] | None = None
    ) -> OciApiServer:
        """The next request must be ``method path`` (and, when given, exactly ``query``)."""
        with self._lock:
            self._expected.append(_Expected(method, path, query, answer))
        return self

    def check_finished(self) -> None:
        with self._lock:
            assert not self.violations, self.violations
            left = [f"{e.method} {e.path}" for e in self._expected]
        assert not left, f"expected requests never sent: {left}"

    def requests(self, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if method is None or seen.method == method]

    # -- the server ---------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OciApiServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="oci-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _answer(self, seen: Seen) -> Answer:
        with self._lock:
            self.seen.append(seen)
            got = f"{seen.method} {seen.path} {seen.query}"
            if not self._expected:
                return self._violate(f"unexpected request after the script ended: {got}")
            wanted = self._expected[0]
            if (wanted.method, wanted.path) != (seen.method, seen.path) or (
                wanted.query is not None and wanted.query != seen.query
            ):
                query = "any query" if wanted.query is None else wanted.query
                return self._violate(f"expected {wanted.method} {wanted.path} {query}, got {got}")
            self._expected.popleft()
        return wanted.answer(seen) if callable(wanted.answer) else wanted.answer

    def _violate(self, text: str) -> Answer:
        self.violations.append(text)
        return error(400, "UnexpectedRequest", text)

    def _verify(self, method: str, target: str, headers: Any, fields: dict[str, str]) -> bool:
        assert self.verify_key is not None
        lines = []
        for name in fields.get("headers", "").split():
            value = f"{method.lower()} {target}" if name == "(request-target)" else headers[name]
            lines.append(f"{name}: {value}")
        try:
            self.verify_key.verify(
                base64.b64decode(fields.get("signature", "")),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def _handler(server: OciApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            authorization = self.headers.get("Authorization", "")
            fields = dict(_SIGNATURE_FIELD.findall(authorization))
            signed = authorization.startswith("Signature ") and "keyId" in fields
            valid = None
            if signed and server.verify_key is not None:
                valid = server._verify(self.command, self.path, self.headers, fields)
            seen = Seen(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                body=body,
                key_id=fields["keyId"] if signed else None,
                signature_valid=valid,
            )
            answer = server._answer(seen)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            headers = {"opc-request-id": uuid.uuid4().hex.upper(), **answer.headers}
            if payload:
                headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(payload))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            """Quiet: the test reads ``seen``, not stderr."""

    return Handler


# -- answers ---------------------------------------------------------------------


def summary(
    name: str,
    compartment_id: str = COMPARTMENT,
    state: str = "AVAILABLE",
    *,
    size: int = 1024,
    images: int = 1,
    billable_gb: int = 0,
) -> dict[str, Any]:
    """A ContainerRepositorySummary as ListContainerRepositories returns it."""
    return {
        "compartmentId": compartment_id,
        "displayName": name,
        "id": f"ocid1.containerrepo.oc1.ap-melbourne-1.0.{NAMESPACE}.{uuid.uuid4().hex}",
        "imageCount": images,
        "isPublic": False,
        "layerCount": 2,
        "layersSizeInBytes": size,
        "lifecycleState": state,
        "timeCreated": "2024-05-01T00:00:00.000Z",
        "billableSizeInGBs": billable_gb,
        "namespace": NAMESPACE,
    }


def listing(*items: dict[str, Any], next_page: str | None = None) -> Answer:
    """A ContainerRepositoryCollection of ``items`` (one page; more follow with ``next_page``)."""
    return Answer(
        200,
        {
            "items": list(items),
            "repositoryCount": len(items),
            "remainingItemsCount": 0,
            "imageCount": sum(item["imageCount"] for item in items),
            "layerCount": 2 * len(items),
            "layersSizeInBytes": sum(item["layersSizeInBytes"] for item in items),
        },
        {"opc-next-page": next_page} if next_page else {},
    )


def limit_values(**values: int) -> Answer:
    """ListLimitValues' answer: a list of LimitValueSummary, region-scoped (``a_b`` → ``a-b``)."""
    return Answer(
        200,
        [
            {"name": name.replace("_", "-"), "scopeType": "REGION", "value": value}
            for name, value in values.items()
        ],
    )


def created(seen: Seen) -> Answer:
    """A ContainerRepository built from the CreateContainerRepositoryDetails it was sent."""
    details = seen.body or {}
    return Answer(
        200,
        {
            "compartmentId": details.get("compartmentId"),
            "createdBy": USER,
            "displayName": details.get("displayName"),
            "id": f"ocid1.containerrepo.oc1.ap-melbourne-1.0.{NAMESPACE}.{uuid.uuid4().hex}",
            "imageCount": 0,
            "isImmutable": bool(details.get("isImmutable")),
            "isPublic": bool(details.get("isPublic")),
            "layerCount": 0,
            "layersSizeInBytes": 0,
            "lifecycleState": "AVAILABLE",
            "timeCreated": "2024-05-01T00:00:00.000Z",
            "billableSizeInGBs": 0,
            "namespace": NAMESPACE,
        },
    )


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    """An OCI error document, as every OCI API sends it."""
    return Answer(status, {"code": code, "message": message}, headers or {})


# -- credentials -------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKeyConfig:
    path: Path
    profile: str
    user: str
    tenancy: str
    fingerprint: str
    public_key: rsa.RSAPublicKey

    @property
    def key_id(self) -> str:
        """The keyId the SDK signs with: ``<tenancy>/<user>/<fingerprint>``."""
        return f"{self.tenancy}/{self.user}/{self.fingerprint}"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def fingerprint(key: rsa.RSAPublicKey) -> str:
    """OCI's API key fingerprint: MD5 of the DER public key, colon-separated."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def write_api_key_config(
    directory: Path, *, profile: str = "DEFAULT", region: str = "us-ashburn-1"
) -> ApiKeyConfig:
    """An OCI config file whose ``profile`` holds a fresh API signing key (written beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key()
    key_file = directory / "oci_api_key.pem"
    key_file.write_bytes(pem(key))
    key_file.chmod(0o600)
    public = key.public_key()
    print_ = fingerprint(public)
    config = directory / "config"
    config.write_text(
        f"[{profile}]\n"
        f"user={USER}\n"
        f"fingerprint={print_}\n"
        f"tenancy={TENANCY}\n"
        f"region={region}\n"
        f"key_file={key_file}\n"
    )
    return ApiKeyConfig(config, profile, USER, TENANCY, print_, public)
