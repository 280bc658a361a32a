"""skopeo as the independent oracle of what landed in a registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path


def _tls(host_ref: str) -> list[str]:
    return ["--tls-verify=false"] if host_ref.startswith("127.0.0.1") else []


def raw_manifest(reference: str, creds: str | None = None) -> bytes:
    """``skopeo inspect --raw`` of ``reference`` (``host/repo:tag``)."""
    command = ["skopeo", "inspect", "--raw", *_tls(reference)]
    if creds:
        command += ["--creds", creds]
    done = subprocess.run(
        [*command, f"docker://{reference}"], capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def manifest_digest(reference: str, creds: str | None = None) -> str:
    return "sha256:" + hashlib.sha256(raw_manifest(reference, creds)).hexdigest()


def exists(reference: str, creds: str | None = None) -> bool:
    command = ["skopeo", "inspect", "--raw", *_tls(reference)]
    if creds:
        command += ["--creds", creds]
    done = subprocess.run(
        [*command, f"docker://{reference}"], capture_output=True, check=False, timeout=60
    )
    if done.returncode == 0:
        return True
    stderr = done.stderr.decode()
    assert "manifest unknown" in stderr or "not found" in stderr.lower(), stderr
    return False


def pull_all(reference: str, into: Path, creds: str | None = None) -> None:
    """``skopeo copy --all`` out of ``reference`` into an OCI layout: every blob must verify."""
    # No --preserve-digests: a Docker manifest list must be converted to land in an OCI
    # layout; every blob is still read and verified against its digest on the way.
    command = ["skopeo", "copy", "--all"]
    if reference.startswith("127.0.0.1"):
        command.append("--src-tls-verify=false")
    if creds:
        command += ["--src-creds", creds]
    command += [f"docker://{reference}", f"oci:{into}:pulled"]
    done = subprocess.run(command, capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()


def list_tags(repository: str, creds: str | None = None) -> list[str]:
    """``skopeo list-tags`` of ``repository`` (``host/repo``), sorted."""
    command = ["skopeo", "list-tags", *_tls(repository)]
    if creds:
        command += ["--creds", creds]
    done = subprocess.run(
        [*command, f"docker://{repository}"], capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return sorted(json.loads(done.stdout)["Tags"] or [])
