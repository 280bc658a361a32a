"""``config check [--rules FILE] [IMAGE]``: validate the sync rules, explain an image."""

from __future__ import annotations

import argparse
import io
import textwrap
from pathlib import Path

import pytest

from ecr_ocir_sync.cli.config_check import add_config_command, parse_image, run_config_command
from ecr_ocir_sync.errors import InvalidReferenceError
from ecr_ocir_sync.settings import Settings

ENV = {"OCI_REPO_REGION_KEY": "mel,syd", "OCI_TENANCY": "ns"}
DIGEST = "sha256:" + "b" * 64
ECR = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com"

RULES = r"""
version: 1
rules:
  - name: releases
    repositories: {include: ["team/*"]}
    tags: {include: ['v?\d+\.\d+']}
    regions: [mel]
    mapping: {strip_prefix: "team/", add_prefix: "mirror/"}
  - name: base
    repositories: {include: ["base/**"]}
"""


def parser() -> argparse.ArgumentParser:
    """Built as cli/main.py builds it: a `command` subparser with add_config_command."""
    top = argparse.ArgumentParser(prog="ecr-ocir-sync")
    add_config_command(top.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return top


def check(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = parser().parse_args(["config", "check", *argv])
    settings = Settings.from_environ(ENV if env is None else env)
    code = run_config_command(args, settings, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def test_a_valid_file_is_reported_ok_with_its_rule_count(rules_file):
    code, out, err = check("--rules", str(rules_file))

    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "rules file OK: 2 rules"
    assert "  rules[1] 'base': repositories 'base/**'; tags all; regions mel, syd" in out


def test_an_invalid_file_exits_2_listing_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent("""\
        version: 1
        rules:
          - {name: a, regions: [iad]}
          - {name: b, tags: {semver: '>>1'}}
        """)
    )

    code, out, err = check("--rules", str(path))

    assert (code, out) == (2, "")
    assert err.startswith(f"ecr-ocir-sync: error: rules file {path} has 2 problems; fix:\n")
    assert (
        "line 3: rules[0].regions[0] (rule 'a'): region 'iad' is not in OCI_REPO_REGION_KEY" in err
    )
    assert "line 4: rules[1].tags.semver (rule 'b'): '>>1' is not a version range" in err


def test_an_unknown_version_exits_2_naming_the_supported_ones(tmp_path):
    path = tmp_path / "v2.yaml"
    path.write_text("version: 2\nrules: []\n")

    code, _, err = check("--rules", str(path))

    assert code == 2
    assert "line 1: version: 2 is not supported; supported versions: 1" in err


def test_without_a_rules_file_the_environment_default_is_shown():
    code, out, _ = check()

    assert code == 0
    assert out.startswith("no rules file (no --rules, SYNC_RULES_FILE unset): the default rule")
    assert "regions mel, syd; delete mirror; referrers on" in out


def test_the_rules_file_comes_from_sync_rules_file_without_the_flag(rules_file):
    code, out, _ = check(env={**ENV, "SYNC_RULES_FILE": str(rules_file)})

    assert code == 0
    assert out.startswith("rules file OK: 2 rules")


def test_an_image_is_explained_with_full_references_and_endpoint_overrides(rules_file):
    env = {**ENV, "OCIR_ENDPOINT_SYD": "http://127.0.0.1:5001"}

    code, out, _ = check("--rules", str(rules_file), "base/alpine:3.19", env=env)

    assert code == 0
    assert "  rules[0] 'releases': no match: repository 'base/alpine' matches none of " in out
    assert "  rules[1] 'base': MATCH" in out
    assert "  mel: mel.ocir.io/ns/base/alpine:3.19" in out
    assert "  syd: 127.0.0.1:5001/ns/base/alpine:3.19" in out


def test_a_full_ecr_reference_is_explained_by_its_repository_and_tag(rules_file):
    code, out, _ = check("--rules", str(rules_file), f"{ECR}/team/web:v1.4")

    assert code == 0
    assert "image team/web:v1.4;" in out.splitlines()[0]
    assert "  mel: mel.ocir.io/ns/mirror/web:v1.4" in out


def test_an_image_matching_no_rule_exits_1_saying_it_is_not_synced(rules_file):
    code, out, _ = check("--rules", str(rules_file), "team/web:latest")

    assert code == 1
    assert "tag 'latest' fully matches none of tags.include" in out
    assert out.splitlines()[-1] == "result: no rule matches team/web:latest, so it is not synced"


def test_an_image_given_by_digest_matches_on_repository_only(rules_file):
    code, out, _ = check("--rules", str(rules_file), f"team/web@{DIGEST}")

    assert code == 0
    assert f"  mel: mel.ocir.io/ns/mirror/web@{DIGEST}" in out


def test_a_non_ecr_host_is_noted(rules_file):
    _, out, _ = check("--rules", str(rules_file), "mel.ocir.io/ns/team/web:1.0")

    assert out.startswith(
        "note: mel.ocir.io is not an ECR host; rules see repository 'ns/team/web'"
    )


def test_a_malformed_image_exits_2(rules_file):
    code, out, err = check("--rules", str(rules_file), "Team/Web:1")

    assert (code, out) == (2, "")
    assert "invalid repository name 'Team/Web'" in err


def test_missing_settings_are_all_named_at_once():
    code, _, err = check(env={"SYNC_DELETE_POLICY": "later", "OCIR_ENDPOINT_MEL": "ftp://x"})

    assert code == 2
    assert "config check needs these settings:" in err
    for says in (
        "OCI_REPO_REGION_KEY is required",
        "OCI_TENANCY is required",
        "SYNC_DELETE_POLICY='later': expected mirror or ignore",
        "OCIR_ENDPOINT_MEL='ftp://x'",
    ):
        assert says in err


def test_the_delete_policy_of_the_environment_shows_in_the_default_rule():
    _, out, _ = check(env={**ENV, "SYNC_DELETE_POLICY": "ignore"})

    assert "delete ignore" in out


def test_a_missing_rules_file_exits_2_naming_it(tmp_path):
    code, _, err = check("--rules", str(tmp_path / "nope.yaml"))

    assert code == 2
    assert f"rules file {tmp_path / 'nope.yaml'} does not exist" in err


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("team/web:1.4", ("team/web", "1.4", None)),
        ("team/web", ("team/web", None, None)),
        (f"team/web@{DIGEST}", ("team/web", None, DIGEST)),
        (f"team/web:1.4@{DIGEST}", ("team/web", "1.4", DIGEST)),
        (f"{ECR}/team/web:1.4", ("team/web", "1.4", None)),
        ("localhost:5000/app:1", ("app", "1", None)),
    ],
)
def test_images_are_read_as_repository_tag_and_digest(text, parts):
    assert parse_image(text) == parts


@pytest.mark.parametrize("text", ["team/web:", "team/web:-x", "team/web@sha256:zz", "/web"])
def test_malformed_images_are_refused(text):
    with pytest.raises(InvalidReferenceError):
        parse_image(text)


def test_config_requires_the_check_action():
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["config"])

    assert caught.value.code == 2
