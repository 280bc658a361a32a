"""A tiny token server for the distribution registry's ``auth: token`` mode.

It plays the part of Docker Hub's ``auth.docker.io`` or Harbor's token
service: on ``GET /token?service=…&scope=…`` with a Basic login it issues an
RS256 JWT whose ``x5c`` header carries a self-signed certificate.  The
registry trusts that certificate because its PEM is the registry's
``rootcertbundle``.  What distribution 2.8 checks (registry/auth/token):
``iss`` is the configured issuer, ``aud`` is the configured service (one
string), ``exp``/``nbf`` are within a minute's leeway, and the ``x5c`` leaf
verifies against the root bundle and holds the signing key.

Every token request is counted per requested scope (and every token issued,
and every login refused) so tests can tell whether the client cached a token
or fetched a new one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DEFAULT_SERVICE = "test-registry"
DEFAULT_ISSUER = "test-token-issuer"


def _signing_pair() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An RSA key and a self-signed certificate for it, valid from an hour ago for a day."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecr-ocir-sync test token issuer")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def parse_scope(scope: str) -> dict[str, Any]:
    """``repository:ns/app:pull,push`` → the JWT ``access`` entry granting exactly that."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name or not actions:
        raise ValueError(f"malformed scope {scope!r}")
    return {"type": kind, "name": name, "actions": actions.split(",")}


class TokenServer:
    """Issues registry tokens to one user; ``start()`` it before the registry that trusts it."""

    def __init__(
        self,
        root: Path,
        *,
        username: str,
        password: str,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        expires_in: int = 300,
    ) -> None:
        self.username = username
        self.password = password
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self._key, self._certificate = _signing_pair()
        self._x5c = base64.b64encode(
            self._certificate.public_bytes(serialization.Encoding.DER)
        ).decode("ascii")
        root.mkdir(parents=True, exist_ok=True)
        self.rootcertbundle = root / "token-root.pem"
        self.rootcertbundle.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()  # "*" counts every request
        self._issued: Counter[str] = Counter()  # "*" counts every token
        self._refused = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what tests look at ---------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the token server first"
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_config(self) -> dict[str, str]:
        """The ``auth: token:`` settings for RegistryServer(token_auth=…)."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.rootcertbundle),
        }

    def requests(self, scope: str | None = None) -> int:
        """Token requests naming ``scope`` (every token request when None), refused or not."""
        with self._lock:
            return int(self._requests["*" if scope is None else scope])

    def requests_by_scope(self) -> dict[str, int]:
        """A snapshot of the per-scope request counters (``*`` counts every request)."""
        with self._lock:
            return dict(self._requests)

    def issued(self, scope: str | None = None) -> int:
        """Tokens issued for ``scope`` (every token issued when None)."""
        with self._lock:
            return int(self._issued["*" if scope is None else scope])

    @property
    def refused(self) -> int:
        """Token requests turned away for a missing or wrong login."""
        with self._lock:
            return self._refused

    # -- issuing ----------------------------------------------------------------

    def authorised(self, header: str | None) -> str | None:
        """The user name if ``header`` is Basic auth with the configured login."""
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        user_ok = hmac.compare_digest(user.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user if user_ok and password_ok else None

    def issue(self, subject: str, service: str, scopes: list[str]) -> dict[str, Any]:
        """The token document for ``scopes`` (already split), counted per scope."""
        access = [parse_scope(scope) for scope in scopes]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"x5c": [self._x5c]})
        with self._lock:
            self._issued["*"] += 1
            for scope in scopes:
                self._issued[scope] += 1
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"token": token, "expires_in": self.expires_in, "issued_at": issued_at}

    def count_request(self, scopes: list[str], *, refused: bool) -> None:
        with self._lock:
            self._requests["*"] += 1
            for scope in scopes:
                self._requests[scope] += 1
            self._refused += refused

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> TokenServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None


def _handler_for(tokens: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._answer(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            query = parse_qs(url.query)
            # One scope per parameter, though some clients join several with spaces.
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            user = tokens.authorised(self.headers.get("Authorization"))
            tokens.count_request(scopes, refused=user is None)
            if user is None:
                self._answer(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "login refused"}]},
                    {"WWW-Authenticate": 'Basic realm="token"'},
                )
                return
            service = (query.get("service") or [""])[0]
            if service != tokens.service:
                self._answer(400, {"errors": [{"code": "UNSUPPORTED", "message": service}]})
                return
            try:
                document = tokens.issue(user, service, scopes)
            except ValueError as exc:
                self._answer(400, {"errors": [{"code": "INVALID_SCOPE", "message": str(exc)}]})
                return
            self._answer(200, document)

        def _answer(
            self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Keep test output clean; the counters say what happened."""

    return Handler
