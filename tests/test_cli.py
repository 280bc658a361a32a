"""The command line, run as a user runs it: a real process against real registries."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PASSWORD, USER
from tests.support import skopeo
from tests.support.images import build_image, layer_bytes
from tests.support.ports import free_port

CLI = str(Path(sys.executable).parent / "ecr-ocir-sync")
CREDS = f"{USER}:{PASSWORD}"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OCI_", "AWS_"))}
    environment.pop("REGISTRY_AUTH_FILE", None)
    environment["HOME"] = environment.get("TEST_HOME", "/nonexistent")
    environment.update(env or {})
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def authfile(tmp_path: Path, host: str, user: str = USER, password: str = PASSWORD) -> Path:
    path = tmp_path / "auth.json"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def test_copy_prints_a_json_summary_per_destination(
    source, dest_open, dest_basic, push_source, tmp_path
):
    image = build_image([layer_bytes(50_000, 100)])
    push_source.image("app", "1", image)
    insecure = [f"--insecure={h}" for h in (source.host, dest_open.host, dest_basic.host)]

    done = run(
        "copy",
        *insecure,
        "--authfile",
        str(authfile(tmp_path, dest_basic.host)),
        "--json",
        f"{source.host}/app:1",
        f"{dest_open.host}/ns/app",
        f"{dest_basic.host}/ns/app",
    )

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] is True
    assert summary["digest"] == image.digest
    assert summary["bytes_read"] == image.size
    assert [d["status"] for d in summary["destinations"]] == ["succeeded", "succeeded"]
    assert {d["blobs_copied"] for d in summary["destinations"]} == {2}
    assert all(d["seconds"] > 0 for d in summary["destinations"])
    assert skopeo.manifest_digest(f"{dest_basic.host}/ns/app:1", CREDS) == image.digest


def test_registry_auth_file_variable_supplies_logins(source, dest_basic, push_source, tmp_path):
    push_source.image("app", "1", build_image([layer_bytes(5_000, 101)]))

    done = run(
        "copy",
        f"--insecure={source.host}",
        f"--insecure={dest_basic.host}",
        f"{source.host}/app:1",
        f"{dest_basic.host}/app",
        env={"REGISTRY_AUTH_FILE": str(authfile(tmp_path, dest_basic.host))},
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok      {dest_basic.host}/app")


def test_exit_status_is_one_when_a_destination_fails_and_the_reason_is_printed(
    source, dest_open, dest_basic, push_source, tmp_path
):
    push_source.image("app", "1", build_image([layer_bytes(5_000, 102)]))

    done = run(
        "copy",
        f"--insecure={source.host}",
        f"--insecure={dest_open.host}",
        f"--insecure={dest_basic.host}",
        "--authfile",
        str(authfile(tmp_path, dest_basic.host, password="wrong")),
        f"{source.host}/app:1",
        f"{dest_open.host}/app",
        f"{dest_basic.host}/app",
    )

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ok      {dest_open.host}/app")
    assert lines[1].startswith(f"FAILED  {dest_basic.host}/app: ")
    assert "401 Unauthorized" in lines[1]
    assert "check the credentials" in lines[1]
    assert "wrong" not in done.stdout + done.stderr


def test_a_registry_that_demands_a_login_without_one_says_how_to_give_it(
    source, dest_basic, push_source
):
    push_source.image("app", "1", build_image([layer_bytes(5_000, 103)]))

    done = run(
        "copy",
        f"--insecure={source.host}",
        f"--insecure={dest_basic.host}",
        f"{source.host}/app:1",
        f"{dest_basic.host}/app",
    )

    assert done.returncode == 1
    assert "requires a login and none is configured" in done.stdout
    assert "--authfile" in done.stdout


def test_a_malformed_reference_is_a_one_line_usage_error():
    done = run("copy", "app:latest", "mel.ocir.io/ns/app")

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "must start with the registry host" in done.stderr


def test_an_uppercase_repository_is_rejected_with_the_rule():
    done = run("copy", "localhost:5000/App:1", "mel.ocir.io/ns/app")

    assert done.returncode == 2
    assert "must be lowercase" in done.stderr


def test_an_unreachable_source_fails_with_the_host_named(dest_open):
    dead = f"127.0.0.1:{free_port()}"

    done = run(
        "copy",
        f"--insecure={dead}",
        f"--insecure={dest_open.host}",
        f"{dead}/app:1",
        f"{dest_open.host}/app",
    )

    assert done.returncode == 1
    assert f"reading manifest 1 from {dead}/app" in done.stdout


def test_without_destinations_every_configured_ocir_region_gets_the_image(
    source, dest_open, push_source, start_registry
):
    syd = start_registry("syd", username="ns/mirror", password="token-test-only")
    image = build_image([layer_bytes(5_000, 104)])
    push_source.image("team/app", "1", image)

    done = run(
        "copy",
        f"--insecure={source.host}",
        f"{source.host}/team/app:1",
        env={
            "OCI_REPO_REGION_KEY": "mel,syd",
            "OCI_TENANCY": "ns",
            "OCI_USERNAME": "mirror",
            "OCI_AUTH_TOKEN": "token-test-only",
            "OCIR_ENDPOINT_MEL": f"http://{dest_open.host}",
            "OCIR_ENDPOINT_SYD": f"http://{syd.host}",
        },
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert skopeo.manifest_digest(f"{dest_open.host}/ns/team/app:1") == image.digest
    creds = "ns/mirror:token-test-only"
    assert skopeo.manifest_digest(f"{syd.host}/ns/team/app:1", creds) == image.digest


def test_copy_to_named_destinations_does_not_judge_the_services_settings(
    source, dest_open, push_source
):
    image = build_image([layer_bytes(5_000, 107)])
    push_source.image("app", "1", image)

    done = run(
        "copy",
        f"--insecure={source.host}",
        f"--insecure={dest_open.host}",
        f"{source.host}/app:1",
        f"{dest_open.host}/ns/app:1",
        env={"SYNC_WORKERS": "many", "OCI_REPO_REGION_KEY": "mel,mel", "OCI_API_AUTH": "no"},
    )

    assert done.returncode == 0, done.stderr
    assert skopeo.manifest_digest(f"{dest_open.host}/ns/app:1") == image.digest


def test_copy_names_a_bad_endpoint_it_would_use(source):
    done = run(
        "copy",
        f"{source.host}/app:1",
        f"{source.host}/ns/app:1",
        env={"OCIR_ENDPOINT_MEL": "mel.example", "SYNC_WORKERS": "many"},
    )

    assert done.returncode == 2
    assert "OCIR_ENDPOINT_MEL='mel.example': expected a registry URL" in done.stderr
    assert "SYNC_WORKERS" not in done.stderr


def test_without_destinations_or_regions_the_error_says_what_to_set(source):
    done = run("copy", f"--insecure={source.host}", f"{source.host}/app:1")

    assert done.returncode == 2
    assert "set OCI_REPO_REGION_KEY" in done.stderr


def test_delete_removes_the_tag_at_each_destination(dest_open, source, push_source):
    image = build_image([layer_bytes(5_000, 105)])
    push_source.image("app", "1", image)

    done = run("delete", f"--insecure={source.host}", f"{source.host}/app:1")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ok      {source.host}/app:1: deleted {image.digest}"
    assert not skopeo.exists(f"{source.host}/app:1")


def test_help_names_the_commands_and_where_credentials_come_from():
    done = run("--help")

    assert done.returncode == 0
    assert "copy" in done.stdout
    assert "delete" in done.stdout
    assert "OCI_AUTH_TOKEN" in done.stdout
    assert "GetAuthorizationToken" in done.stdout


def test_config_check_explains_where_an_image_goes():
    done = run(
        "config",
        "check",
        "--rules",
        str(Path(__file__).parent.parent / "docs" / "rules.example.yaml"),
        "team/web:v1.4.0",
        env={"OCI_REPO_REGION_KEY": "mel,syd", "OCI_TENANCY": "ns"},
    )

    assert done.returncode == 0, done.stderr
    assert "  mel: mel.ocir.io/ns/mirror/web:v1.4.0" in done.stdout


def test_copy_brings_the_cosign_signature_along_unless_told_not_to(source, dest_open, push_source):
    from tests.support.artifacts import SigningKey, signature, tag_for  # noqa: PLC0415

    image = build_image([layer_bytes(5_000, 106)])
    digest = push_source.image("signed", "1", image)
    sig = signature(f"{source.host}/signed", digest, SigningKey.generate())
    push_source.image("signed", tag_for(digest, "sig"), sig)
    insecure = [f"--insecure={source.host}", f"--insecure={dest_open.host}"]

    bare = run(
        "copy", *insecure, "--no-referrers", f"{source.host}/signed:1", f"{dest_open.host}/bare"
    )
    full = run("copy", *insecure, f"{source.host}/signed:1", f"{dest_open.host}/full")

    assert (bare.returncode, full.returncode) == (0, 0), bare.stderr + full.stderr
    assert not skopeo.exists(f"{dest_open.host}/bare:{tag_for(digest, 'sig')}")
    assert skopeo.manifest_digest(f"{dest_open.host}/full:{tag_for(digest, 'sig')}") == sig.digest
