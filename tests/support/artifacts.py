"""Supply-chain artifacts built by hand, as cosign and OCI 1.1 clients write them.

Each is a :class:`tests.support.images.Image` (manifest bytes + blobs), so
:class:`tests.support.images.Pusher` pushes it like any image:

- a cosign signature (tag ``sha256-<hex>.sig``): one ``simplesigning`` layer
  per signature, the ECDSA signature in the layer's annotation;
- a cosign attestation (``.att``): a DSSE envelope layer around an in-toto
  statement;
- a cosign attached SBOM (``.sbom``): an SPDX document layer;
- an OCI 1.1 referrer: ``artifactType``, the empty config and a ``subject``,
  pushed by digest, and the fallback index (tag ``sha256-<hex>``) that OCI 1.1
  clients keep on registries without the referrers API.

:func:`verify_signatures` checks a signature manifest as ``cosign verify --key``
does (without the transparency log): each payload's signature verifies with
the public key, and the payload names the image's digest.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.images import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    Index,
    sha256,
)

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v0.2"
SPDX = "text/spdx+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"


def tag_for(digest: str, suffix: str | None = None) -> str:
    """``sha256:<hex>`` → ``sha256-<hex>`` (the fallback tag), or ``sha256-<hex>.<suffix>``."""
    tag = digest.replace(":", "-", 1)
    return f"{tag}.{suffix}" if suffix else tag


@dataclass(frozen=True)
class SigningKey:
    """An ECDSA P-256 key pair, what ``cosign generate-key-pair`` makes."""

    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def _cosign_manifest(layers: list[tuple[bytes, str, dict[str, str]]], *, oci: bool) -> Image:
    """A manifest as cosign's ``static`` layers make it: a config naming each layer."""
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [sha256(data) for data, _, _ in layers]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "size": len(config),
            "digest": sha256(config),
        },
        "layers": [
            {
                "mediaType": media_type,
                "size": len(data),
                "digest": sha256(data),
                "annotations": annotations,
            }
            for data, media_type, annotations in layers
        ],
    }
    blobs = {sha256(config): config, **{sha256(data): data for data, _, _ in layers}}
    return Image(json.dumps(manifest).encode(), str(manifest["mediaType"]), blobs)


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """The payload cosign signs: the image's name and the digest it vouches for."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def signature(reference: str, digest: str, key: SigningKey, *, oci: bool = True) -> Image:
    """A ``.sig`` manifest signing ``digest`` (image name ``reference``, no tag)."""
    payload = simple_signing_payload(reference, digest)
    return _cosign_manifest(
        [(payload, SIMPLESIGNING, {SIGNATURE_ANNOTATION: key.sign(payload)})], oci=oci
    )


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the envelope's signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def attestation(reference: str, digest: str, key: SigningKey) -> Image:
    """An ``.att`` manifest: a signed in-toto SLSA provenance statement about ``digest``."""
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": SLSA_PROVENANCE,
            "subject": [{"name": reference, "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicate": {"builder": {"id": "https://ci.example/builder"}},
        },
        separators=(",", ":"),
    ).encode()
    envelope = json.dumps(
        {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"keyid": "", "sig": key.sign(_pae(IN_TOTO, statement))}],
        },
        separators=(",", ":"),
    ).encode()
    return _cosign_manifest([(envelope, DSSE, {"predicateType": SLSA_PROVENANCE})], oci=True)


def sbom(name: str) -> Image:
    """An ``.sbom`` manifest as ``cosign attach sbom`` writes it: one SPDX document layer."""
    document = json.dumps(
        {"spdxVersion": "SPDX-2.3", "name": name, "packages": [{"name": "busybox"}]}
    ).encode()
    return _cosign_manifest([(document, SPDX, {})], oci=True)


@dataclass
class Referrer:
    """An OCI 1.1 referrer of a subject, and how an index lists it."""

    image: Image
    artifact_type: str
    annotations: dict[str, str]

    @property
    def digest(self) -> str:
        return self.image.digest

    def descriptor(self) -> dict[str, object]:
        return {
            "mediaType": OCI_MANIFEST,
            "digest": self.image.digest,
            "size": len(self.image.manifest),
            "artifactType": self.artifact_type,
            "annotations": self.annotations,
        }


def oci_referrer(
    subject: Image | Index, artifact_type: str, payload: bytes, created: str
) -> Referrer:
    """An OCI 1.1 artifact whose ``subject`` is ``subject``, as ``oras attach`` pushes it."""
    annotations = {"org.opencontainers.image.created": created}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": sha256(payload), "size": len(payload)}],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": len(subject.manifest),
        },
        "annotations": annotations,
    }
    blobs = {sha256(EMPTY_JSON): EMPTY_JSON, sha256(payload): payload}
    return Referrer(
        Image(json.dumps(manifest).encode(), OCI_MANIFEST, blobs), artifact_type, annotations
    )


def fallback_index(referrers: list[Referrer]) -> Index:
    """The index an OCI 1.1 client keeps under ``sha256-<hex>`` where there is no API."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [referrer.descriptor() for referrer in referrers],
    }
    return Index(json.dumps(document).encode(), OCI_INDEX, [r.image for r in referrers])


def verify_signatures(
    manifest: bytes, fetch_blob: Callable[[str], bytes], key: SigningKey, digest: str
) -> int:
    """How many signatures in the ``.sig`` ``manifest`` verify with ``key`` and vouch for
    ``digest``; raises AssertionError on any that does not."""
    verified = 0
    for layer in json.loads(manifest)["layers"]:
        if layer["mediaType"] != SIMPLESIGNING:
            continue
        payload = fetch_blob(layer["digest"])
        assert sha256(payload) == layer["digest"], "payload does not match its digest"
        signed = base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION])
        try:
            key.public.verify(signed, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AssertionError("signature does not verify with the public key") from None
        vouched = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
        assert vouched == digest, f"payload vouches for {vouched}, not {digest}"
        verified += 1
    return verified
