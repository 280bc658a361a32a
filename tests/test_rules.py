"""Sync rules: which ECR image goes to which OCIR regions, under which name."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecr_ocir_sync.cli.config_check import explain_image
from ecr_ocir_sync.errors import ConfigError
from ecr_ocir_sync.oci.digest import Digest
from ecr_ocir_sync.rules.loader import RulesFileError, load_rules
from ecr_ocir_sync.rules.model import RuleSet
from ecr_ocir_sync.rules.patterns import compile_glob
from ecr_ocir_sync.rules.policy import DeletePolicy
from ecr_ocir_sync.rules.versions import tag_version
from ecr_ocir_sync.service.wiring import build_placer
from ecr_ocir_sync.settings import Settings

KEYS = ("mel", "syd")
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "rules.example.yaml"
DIGEST = Digest("sha256:" + "a" * 64)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def load(tmp_path: Path, text: str, *, keys=KEYS, namespace="ns", delete="mirror") -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return load_rules(path, region_keys=keys, namespace=namespace, delete_policy=delete)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RulesFileError) as caught:
        load(tmp_path, text)
    assert caught.value.problems, "a RulesFileError always lists its problems"
    return list(caught.value.problems)


def only_problem(tmp_path: Path, text: str) -> str:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


def destinations(rules: RuleSet, image: str) -> dict[str, str] | None:
    """``repo:tag`` or ``repo`` (no tag: digest-only) → region → repository, or None."""
    repository, _, tag = image.partition(":")
    placement = rules.place(repository, tag or None)
    return None if placement is None else dict(placement.destinations)


def one_rule(body: str) -> str:
    """A file with a single rule whose body (YAML, indented under the list item) is given."""
    indented = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return f"version: 1\nrules:\n  - name: only\n{indented}\n"


def pushed(*tags_and_minutes: tuple[str, int]) -> list[tuple[str, datetime]]:
    return [(tag, T0 + timedelta(minutes=minutes)) for tag, minutes in tags_and_minutes]


# --- the environment-only default ------------------------------------------------------------


def test_without_a_file_every_repository_and_tag_goes_to_every_region_under_its_own_name():
    rules = load_rules(None, region_keys=KEYS, namespace="ns", delete_policy="mirror")

    assert destinations(rules, "team/deep/web:anything-1") == {
        "mel": "ns/team/deep/web",
        "syd": "ns/team/deep/web",
    }


def test_without_a_file_a_digest_only_image_is_placed_too():
    rules = load_rules(None, region_keys=KEYS, namespace="ns", delete_policy="mirror")

    assert destinations(rules, "app") == {"mel": "ns/app", "syd": "ns/app"}


def test_without_a_file_the_delete_policy_comes_from_the_environment():
    rules = load_rules(None, region_keys=KEYS, namespace="ns", delete_policy="ignore")

    placement = rules.place("app", "1")

    assert placement is not None
    assert placement.delete_policy is DeletePolicy.IGNORE


def test_without_a_file_referrers_are_copied():
    rules = load_rules(None, region_keys=KEYS, namespace="ns", delete_policy="mirror")

    placement = rules.place("app", "1")

    assert placement is not None
    assert placement.referrers is True


def test_without_a_file_every_repository_can_match():
    rules = load_rules(None, region_keys=KEYS, namespace="ns", delete_policy="mirror")

    assert rules.matches_repository("any/thing")
    assert rules.source is None


# --- a table of images -----------------------------------------------------------------------

TABLE_RULES = r"""
version: 1
defaults:
  regions: [mel, syd]
rules:
  - name: releases
    repositories:
      include: ["team/*", "platform/**"]
      exclude: ["team/scratch-*"]
    tags:
      include: ['^v?\d+\.\d+\.\d+$']
    regions: [mel]
    mapping:
      strip_prefix: "team/"
      add_prefix: "mirror/"
  - name: nightly
    repositories:
      include: ["team/*"]
    tags:
      include: ['nightly-.*']
  - name: base
    repositories:
      include: ["base/*"]
"""


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("team/web:1.4.0", {"mel": "ns/mirror/web"}),
        ("team/web:v2.0.1", {"mel": "ns/mirror/web"}),
        ("platform/a/b:1.0.0", {"mel": "ns/mirror/platform/a/b"}),
        ("team/web:nightly-5", {"mel": "ns/team/web", "syd": "ns/team/web"}),
        ("base/alpine:whatever", {"mel": "ns/base/alpine", "syd": "ns/base/alpine"}),
        ("team/web", {"mel": "ns/mirror/web"}),  # no tag: the repository decides
        ("team/web:latest", None),
        ("team/scratch-1:1.0.0", None),
        ("team/a/b:1.0.0", None),
        ("base/a/b:1", None),
        ("other/web:1.0.0", None),
    ],
)
def test_images_are_placed_by_the_first_rule_they_match(tmp_path, image, expected):
    rules = load(tmp_path, TABLE_RULES)

    assert destinations(rules, image) == expected


# --- defaults --------------------------------------------------------------------------------


def test_defaults_fill_in_what_a_rule_does_not_set(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        defaults: {regions: [syd], delete: ignore, referrers: false}
        rules:
          - name: all
        """,
    )

    placement = rules.place("app", "1")

    assert placement is not None
    assert dict(placement.destinations) == {"syd": "ns/app"}
    assert placement.delete_policy is DeletePolicy.IGNORE
    assert placement.referrers is False


def test_a_rules_own_keys_win_over_the_defaults(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        defaults: {regions: [syd], delete: ignore, referrers: false}
        rules:
          - {name: all, regions: [mel], delete: mirror, referrers: true}
        """,
    )

    placement = rules.place("app", "1")

    assert placement is not None
    assert placement.region_keys == ("mel",)
    assert placement.delete_policy is DeletePolicy.MIRROR
    assert placement.referrers is True


def test_defaults_merge_key_by_key_inside_a_section(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        defaults:
          tags: {exclude: ['-dirty$']}
        rules:
          - name: versions
            tags: {include: ['\\d+']}
        """,
    )

    assert destinations(rules, "app:12") is not None
    assert destinations(rules, "app:12-dirty") is None


def test_an_empty_exclude_in_a_rule_drops_the_default_exclude(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        defaults:
          tags: {exclude: ['-dirty$']}
        rules:
          - {name: everything, tags: {exclude: []}}
        """,
    )

    assert destinations(rules, "app:12-dirty") is not None


def test_without_regions_anywhere_a_rule_uses_every_region(tmp_path):
    rules = load(tmp_path, one_rule("repositories: {include: ['app']}"))

    assert destinations(rules, "app:1") == {"mel": "ns/app", "syd": "ns/app"}


# --- rule order ------------------------------------------------------------------------------


def test_the_first_matching_rule_wins(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        rules:
          - {name: first, repositories: {include: ["team/*"]}, regions: [mel]}
          - {name: second, repositories: {include: ["team/web"]}, regions: [syd]}
        """,
    )

    placement = rules.place("team/web", "1")

    assert placement is not None
    assert placement.rule.name == "first"
    assert placement.region_keys == ("mel",)


def test_an_image_matching_no_rule_is_not_placed(tmp_path):
    rules = load(tmp_path, one_rule("repositories: {include: ['team/*']}"))

    assert rules.place("other/web", "1") is None


# --- repository globs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "repository", "matches"),
    [
        ("team/*", "team/web", True),
        ("team/*", "team/a/web", False),
        ("team/*", "team", False),
        ("team/**", "team/a/web", True),
        ("team/**", "team/web", True),
        ("**/web", "web", True),
        ("**/web", "a/b/web", True),
        ("**/web", "a/b/webapp", False),
        ("*", "web", True),
        ("*", "team/web", False),
        ("**", "team/a/b", True),
        ("team/web-?", "team/web-1", True),
        ("team/web-?", "team/web-12", False),
        ("team/[ab]pp", "team/app", True),
        ("team/[!ab]pp", "team/app", False),
        ("team/[!ab]pp", "team/xpp", True),
        ("team?web", "team/web", False),
        ("team.web", "teamxweb", False),
    ],
)
def test_globs_star_stays_in_a_segment_and_double_star_crosses_them(pattern, repository, matches):
    assert compile_glob(pattern).matches(repository) is matches


def test_a_repository_exclude_beats_its_include(tmp_path):
    rules = load(
        tmp_path, one_rule("repositories: {include: ['team/*'], exclude: ['team/scratch-*']}")
    )

    assert destinations(rules, "team/scratch-1:1") is None
    assert destinations(rules, "team/web:1") is not None


# --- tag filters -----------------------------------------------------------------------------


def test_a_tag_include_must_match_the_whole_tag(tmp_path):
    rules = load(tmp_path, one_rule(r"tags: {include: ['\d+\.\d+']}"))

    assert destinations(rules, "app:1.4") is not None
    assert destinations(rules, "app:1.4-rc1") is None


def test_a_tag_exclude_matches_anywhere_in_the_tag(tmp_path):
    rules = load(tmp_path, one_rule("tags: {exclude: ['rc']}"))

    assert destinations(rules, "app:1.4-rc1") is None
    assert destinations(rules, "app:1.4") is not None


def test_a_tag_exclude_beats_its_include(tmp_path):
    rules = load(tmp_path, one_rule(r"tags: {include: ['v.*'], exclude: ['-rc']}"))

    assert destinations(rules, "app:v1-rc1") is None


@pytest.mark.parametrize(
    ("tag", "matches"),
    [
        ("1.0.0", True),
        ("v1.4.2", True),
        ("V2.9.9", True),
        ("2.9.9+build.7", True),  # build metadata is ignored
        ("3.0.0", False),
        ("v0.9.0", False),
        ("latest", False),
        ("1e3f9a2", False),
        ("1.0", False),  # not MAJOR.MINOR.PATCH
        ("2024.01.05", False),  # leading zeros
        ("2.0.0-rc.1", False),  # a pre-release, and the range names none
        ("v1.2.3-amd64", False),  # the pre-release 'amd64' of 1.2.3
    ],
)
def test_a_semver_range_matches_semantic_versions_with_an_optional_v(tmp_path, tag, matches):
    rules = load(tmp_path, one_rule("tags: {semver: '>=1.0, <3'}"))

    assert (destinations(rules, f"app:{tag}") is not None) is matches


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("1.0.0-rc.1", "1.0.0-rc.1"),
        ("v1.2.3-amd64", "1.2.3-amd64"),
        ("v2.0.0+linux", "2.0.0+linux"),
        ("2024.1.5", "2024.1.5"),
        ("2024.01.05", None),
        ("1.2", None),
        ("1.2.3.4", None),
        ("vv1.2.3", None),
    ],
)
def test_a_tag_is_a_version_when_it_is_semver_after_an_optional_v(tag, version):
    found = tag_version(tag)

    assert (None if found is None else str(found)) == version


@pytest.mark.parametrize(
    ("tag", "matches"),
    [
        ("2.0.0-rc.2", True),
        ("2.0.0", True),
        ("3.0.0", True),
        ("2.0.0-rc.0", False),
        ("2.1.0-rc.1", False),  # a pre-release of another version than the one named
    ],
)
def test_a_range_naming_a_prerelease_admits_that_versions_prereleases_only(tmp_path, tag, matches):
    rules = load(tmp_path, one_rule("tags: {semver: '>=2.0.0-rc.1'}"))

    assert (destinations(rules, f"app:{tag}") is not None) is matches


@pytest.mark.parametrize(
    ("semver", "inside", "outside"),
    [
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0", "2.0.0-rc.1"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "1.0.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("=1.2", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.9"]),
        ("1.2.3", ["1.2.3", "v1.2.3+b.1"], ["1.2.4"]),
        ("!=1.3.0", ["1.2.9", "1.3.1"], ["1.3.0"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<2", ["1.99.0"], ["2.0.0", "2.0.0-rc.1"]),
        ("<1 || >=3", ["0.9.0", "3.1.0"], ["1.0.0", "2.9.9"]),
        ("=1.2.3-amd64", ["1.2.3-amd64"], ["1.2.3", "1.2.3-arm64"]),
    ],
)
def test_semver_ranges_follow_the_documented_syntax(tmp_path, semver, inside, outside):
    rules = load(tmp_path, one_rule(f"tags: {{semver: '{semver}'}}"))

    assert [tag for tag in inside if destinations(rules, f"app:{tag}") is None] == []
    assert [tag for tag in outside if destinations(rules, f"app:{tag}") is not None] == []


def test_a_digest_only_image_matches_on_repository_only(tmp_path):
    rules = load(
        tmp_path,
        one_rule(r"""
        repositories: {include: ['app']}
        tags: {include: ['v\d+'], semver: '>=1'}
        """),
    )

    assert destinations(rules, "app") == {"mel": "ns/app", "syd": "ns/app"}


# --- latest N (reconciliation) ---------------------------------------------------------------


def test_latest_keeps_the_newest_tags_by_push_time(tmp_path):
    rule = load(tmp_path, one_rule("tags: {latest: 2}")).rules[0]

    kept = rule.select_tags(pushed(("a", 1), ("b", 3), ("c", 2), ("d", 0)))

    assert kept == ["b", "c"]


def test_latest_breaks_push_time_ties_by_version_then_tag(tmp_path):
    rule = load(tmp_path, one_rule("tags: {latest: 3}")).rules[0]

    kept = rule.select_tags(
        pushed(("1.9.0", 5), ("latest", 5), ("1.10.0", 5), ("zz", 5), ("0.1.0", 1))
    )

    assert kept == ["1.10.0", "1.9.0", "zz"]


def test_latest_counts_only_tags_passing_the_filters(tmp_path):
    rule = load(tmp_path, one_rule("tags: {exclude: ['-rc'], latest: 1}")).rules[0]

    kept = rule.select_tags(pushed(("1.0", 1), ("2.0-rc", 9)))

    assert kept == ["1.0"]


def test_without_latest_every_passing_tag_is_selected_newest_first(tmp_path):
    rule = load(tmp_path, one_rule("tags: {exclude: ['-rc']}")).rules[0]

    assert rule.select_tags(pushed(("1", 1), ("2", 2), ("3-rc", 3))) == ["2", "1"]


def test_latest_does_not_limit_an_event_for_a_push(tmp_path):
    rules = load(tmp_path, one_rule("tags: {latest: 1}"))

    assert destinations(rules, "app:an-old-tag") is not None


def test_reconciliation_gives_each_tag_to_its_first_matching_rule(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        rules:
          - {name: releases, tags: {include: ['v.*']}, regions: [mel]}
          - {name: rest, regions: [syd]}
        """,
    )

    selected = rules.select("app", pushed(("v1", 1), ("main", 2)))

    assert [(tag, p.rule.name) for tag, p in selected] == [("v1", "releases"), ("main", "rest")]


def test_a_tag_cut_by_latest_does_not_fall_through_to_a_later_rule(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        rules:
          - {name: releases, tags: {include: ['v.*'], latest: 1}}
          - {name: rest}
        """,
    )

    selected = rules.select("app", pushed(("v1", 1), ("v2", 2)))

    assert [tag for tag, _ in selected] == ["v2"]


def test_repositories_no_rule_can_match_are_known_before_listing_tags(tmp_path):
    rules = load(tmp_path, one_rule("repositories: {include: ['team/**'], exclude: ['team/x']}"))

    assert rules.matches_repository("team/a/b")
    assert not rules.matches_repository("team/x")
    assert not rules.matches_repository("other/a")


# --- mapping ---------------------------------------------------------------------------------


def test_strip_prefix_then_add_prefix_makes_the_destination(tmp_path):
    rules = load(tmp_path, one_rule("mapping: {strip_prefix: 'team/', add_prefix: 'mirror/'}"))

    assert destinations(rules, "team/web:1") == {"mel": "ns/mirror/web", "syd": "ns/mirror/web"}


def test_strip_prefix_leaves_names_without_it_alone(tmp_path):
    rules = load(tmp_path, one_rule("mapping: {strip_prefix: 'team/'}"))

    assert destinations(rules, "other/web:1") == {"mel": "ns/other/web", "syd": "ns/other/web"}


def test_add_prefix_is_plain_text(tmp_path):
    rules = load(tmp_path, one_rule("mapping: {add_prefix: 'mirror-'}"))

    assert destinations(rules, "web:1") == {"mel": "ns/mirror-web", "syd": "ns/mirror-web"}


def test_rename_applies_before_the_prefixes(tmp_path):
    rules = load(
        tmp_path,
        one_rule("""
        mapping:
          rename: {"team/old-name": "new-name"}
          strip_prefix: "team/"
          add_prefix: "mirror/"
        """),
    )

    assert destinations(rules, "team/old-name:1") == {
        "mel": "ns/mirror/new-name",
        "syd": "ns/mirror/new-name",
    }


def test_rename_is_exact(tmp_path):
    rules = load(tmp_path, one_rule("mapping: {rename: {'team/old': 'new'}}"))

    assert destinations(rules, "team/old-x:1") == {"mel": "ns/team/old-x", "syd": "ns/team/old-x"}


def test_a_mapping_that_empties_a_name_is_refused_when_placing(tmp_path):
    rules = load(tmp_path, one_rule("mapping: {strip_prefix: 'team/web'}"))

    with pytest.raises(ConfigError, match=r"rules\[0\] 'only' maps ECR repository 'team/web'"):
        rules.place("team/web", "1")


# --- per-rule delete policy and referrers ----------------------------------------------------


def test_each_rule_carries_its_own_delete_policy_and_referrers(tmp_path):
    rules = load(
        tmp_path,
        """
        version: 1
        rules:
          - {name: keep, repositories: {include: ['keep/*']}, delete: ignore, referrers: false}
          - {name: rest}
        """,
        delete="mirror",
    )

    kept, rest = rules.place("keep/a", "1"), rules.place("other", "1")

    assert kept is not None
    assert rest is not None
    assert (kept.delete_policy, kept.referrers) == (DeletePolicy.IGNORE, False)
    assert (rest.delete_policy, rest.referrers) == (DeletePolicy.MIRROR, True)


def test_a_rule_without_delete_uses_the_environment_policy(tmp_path):
    rules = load(tmp_path, one_rule("regions: [mel]"), delete="ignore")

    placement = rules.place("app", "1")

    assert placement is not None
    assert placement.delete_policy is DeletePolicy.IGNORE


# --- references and explanations -------------------------------------------------------------


def test_placement_references_use_each_regions_host(tmp_path):
    placement = load(tmp_path, one_rule("mapping: {add_prefix: 'm/'}")).place("web", "1")

    assert placement is not None
    references = placement.references("1", hosts={"syd": "127.0.0.1:5001"})
    assert {k: str(v) for k, v in references.items()} == {
        "mel": "mel.ocir.io/ns/m/web:1",
        "syd": "127.0.0.1:5001/ns/m/web:1",
    }


def test_placement_references_accept_a_host_function_and_a_digest(tmp_path):
    placement = load(tmp_path, one_rule("regions: [mel]")).place("web", None)

    assert placement is not None
    references = placement.references(None, DIGEST, hosts=lambda key: f"{key}.example")
    assert str(references["mel"]) == f"mel.example/ns/web@{DIGEST}"


def test_explain_names_the_filter_each_rule_failed_on(tmp_path):
    rules = load(tmp_path, TABLE_RULES)

    lines = explain_image(rules, "team/web", "latest")

    assert any(
        "rules[0] 'releases': no match: tag 'latest' fully matches none of tags.include" in line
        for line in lines
    ), lines
    assert any("rules[2] 'base': no match: repository 'team/web'" in line for line in lines)
    assert lines[-1] == "result: no rule matches team/web:latest, so it is not synced"


def test_explain_shows_full_destination_references_with_overridden_hosts(tmp_path):
    rules = load(tmp_path, TABLE_RULES)

    lines = explain_image(rules, "team/web", "nightly-1", hosts={"syd": "127.0.0.1:5001"})

    assert "  rules[1] 'nightly': MATCH" in lines
    assert "  mel: mel.ocir.io/ns/team/web:nightly-1" in lines
    assert "  syd: 127.0.0.1:5001/ns/team/web:nightly-1" in lines


def test_explain_says_when_a_later_rule_also_matches(tmp_path):
    rules = load(tmp_path, TABLE_RULES)

    lines = explain_image(rules, "team/web", None)

    assert "  rules[0] 'releases': MATCH" in lines
    assert "  rules[1] 'nightly': matches too, but rules[0] 'releases' comes first" in lines


def test_explain_says_a_tagless_image_matches_on_repository_only(tmp_path):
    lines = explain_image(load(tmp_path, TABLE_RULES), "team/web", None, digest=DIGEST)

    assert any("no tag" in line for line in lines)
    assert f"  mel: mel.ocir.io/ns/mirror/web@{DIGEST}" in lines


# --- invalid files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "version: 1\nrules: [{name: a}]\nrule: []\n",
            "unknown key 'rule' (did you mean 'rules'?)",
        ),
        (one_rule("tag: {}"), "rules[0] (rule 'only'): unknown key 'tag' (did you mean 'tags'?)"),
        (one_rule("tags: {lastest: 3}"), "rules[0].tags (rule 'only'): unknown key 'lastest'"),
        (one_rule("repositories: {inclde: []}"), "rules[0].repositories (rule 'only'): unknown"),
        (one_rule("mapping: {prefix: a}"), "rules[0].mapping (rule 'only'): unknown key 'prefix'"),
        ("version: 1\ndefaults: {name: x}\nrules: [{}]\n", "defaults: unknown key 'name'"),
        (one_rule("regions: [mel, iad]"), "rules[0].regions[1] (rule 'only'): region 'iad' is not"),
        (one_rule("regions: [mel, mel]"), "rules[0].regions[1] (rule 'only'): region 'mel' is "),
        (one_rule("regions: []"), "rules[0].regions (rule 'only'): is empty"),
        (
            one_rule("tags: {include: ['^v(']}"),
            (
                "rules[0].tags.include[0] (rule 'only'): '^v(' is not a valid regular expression: "
                "missing ), unterminated subpattern at position 2"
            ),
        ),
        (one_rule("tags: {exclude: ['[']}"), "rules[0].tags.exclude[0] (rule 'only'): '['"),
        (one_rule("tags: {semver: '>=1,<'}"), "rules[0].tags.semver (rule 'only'): '>=1,<' is not"),
        (
            one_rule("tags: {semver: '>=1.2.0rc1'}"),
            (
                "rules[0].tags.semver (rule 'only'): '>=1.2.0rc1' is not a version range "
                "('1.2.0rc1' is not a version such as 1, 1.2, 1.2.3 or 1.2.3-rc.1)"
            ),
        ),
        (one_rule("tags: {semver: '>=1 ||'}"), "rules[0].tags.semver (rule 'only'): '>=1 ||' is"),
        (one_rule("tags: {semver: 2}"), "rules[0].tags.semver (rule 'only'): must be a non-empty"),
        (one_rule("tags: {latest: -1}"), "rules[0].tags.latest (rule 'only'): must be a whole"),
        (one_rule("tags: {latest: true}"), "rules[0].tags.latest (rule 'only'): must be a whole"),
        (one_rule("tags: {include: []}"), "rules[0].tags.include (rule 'only'): is empty"),
        (one_rule("tags: {include: v1}"), "rules[0].tags.include (rule 'only'): must be a list"),
        (one_rule("tags: {include: [1.0]}"), "rules[0].tags.include[0] (rule 'only'): must be a "),
        (one_rule("tags: v1"), "rules[0].tags (rule 'only'): must be a mapping of include, "),
        (
            one_rule("repositories: {include: ['Team/*']}"),
            "rules[0].repositories.include[0] (rule 'only'): pattern 'Team/*' has uppercase",
        ),
        (
            one_rule("repositories: {include: ['a/[z-a]']}"),
            "rules[0].repositories.include[0] (rule 'only'): pattern 'a/[z-a]' is malformed",
        ),
        (
            one_rule("mapping: {add_prefix: 'Mirror/'}"),
            "rules[0].mapping.add_prefix (rule 'only'): 'Mirror/' makes names like 'ns/Mirror/x'",
        ),
        (
            one_rule("mapping: {rename: {team/a: 'B'}}"),
            "rules[0].mapping.rename['team/a'] (rule 'only'): maps 'team/a' to 'ns/B', which",
        ),
        (
            one_rule("mapping: {rename: {Team/A: b}}"),
            "rules[0].mapping.rename['Team/A'] (rule 'only'): 'Team/A' is not an ECR repository",
        ),
        (
            one_rule("repositories: {include: [team/web]}\nmapping: {strip_prefix: team/web}"),
            "rules[0].repositories.include[0] (rule 'only'): 'team/web' maps to 'ns/', which",
        ),
        (one_rule("mapping: {strip_prefix: 3}"), "rules[0].mapping.strip_prefix (rule 'only'): "),
        (one_rule("delete: remove"), "rules[0].delete (rule 'only'): must be mirror or ignore"),
        (one_rule("delete: off"), "YAML reads unquoted no/off/false as false"),
        (one_rule("referrers: 'yes'"), "rules[0].referrers (rule 'only'): must be true or false"),
        (one_rule("name: ''"), "rules[0].name: must be a non-empty string"),
        ("version: 1\nrules: [{name: a}, {name: a}]\n", "rules[1].name (rule 'a'): 'a' is also"),
        ("version: 1\nrules: [{}, {name: b}]\n", "rules[1] (rule 'b'): is never reached: rules[0]"),
        ("version: 1\nrules: [not-a-rule]\n", "rules[0]: must be a mapping, not a string"),
        ("version: 1\nrules: []\n", "rules: must be a non-empty list of rules"),
        ("version: 1\n", "rules: must be a non-empty list of rules (got missing)"),
        ("rules: [{}]\n", "'version' is required; add 'version: 1' (supported: 1)"),
        ("", "the file is empty"),
        ("- a\n- b\n", "the file must be a mapping of version, defaults and rules, not a list"),
    ],
)
def test_an_invalid_file_names_the_key_path_and_the_problem(tmp_path, text, says):
    found = problems(tmp_path, text)

    assert any(says in problem for problem in found), found


@pytest.mark.parametrize("version", ["2", "0", "'1'", "1.5", "true"])
def test_an_unknown_version_is_refused_naming_the_supported_ones(tmp_path, version):
    problem = only_problem(tmp_path, f"version: {version}\nrules: [{{tags: 3}}]\n")

    assert problem.startswith("line 1: version: ")
    assert problem.endswith("is not supported; supported versions: 1")


def test_problems_carry_the_line_they_are_on(tmp_path):
    problem = only_problem(
        tmp_path,
        """\
        version: 1
        rules:
          - name: web
            tags:
              include: ['ok', '(']
        """,
    )

    assert problem.startswith("line 5: rules[0].tags.include[1] (rule 'web'): '(' is not")


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path):
    problem = only_problem(
        tmp_path,
        """\
        version: 1
        rules:
          - name: web
            tags: {include: ['a']}
            tags: {exclude: ['b']}
        """,
    )

    assert problem.startswith("line 5: rules[0] (rule 'web'): key 'tags' appears twice")
    assert "(also on line 4)" in problem


def test_a_yaml_syntax_error_names_line_and_column(tmp_path):
    problem = only_problem(tmp_path, 'version: 1\nrules:\n  - tags: {include: ["\\d"]}\n')

    assert problem.startswith("line 3, column ")
    assert "write regular expressions in single quotes" in problem


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    found = problems(
        tmp_path,
        """\
        version: 1
        defaults: {regions: [iad]}
        rules:
          - {name: a, tags: {latest: 0}}
          - {name: b, delete: sometimes}
        """,
    )

    assert [problem.split(":")[0] for problem in found] == ["line 2", "line 4", "line 5"]


def test_the_error_message_lists_every_problem_under_the_file_name(tmp_path):
    with pytest.raises(RulesFileError) as caught:
        load(tmp_path, one_rule("tags: {latest: 0}\ndelete: x"))

    message = caught.value.message
    assert message.startswith(f"rules file {tmp_path / 'rules.yaml'} has 2 problems; fix:\n  - ")
    assert isinstance(caught.value, ConfigError)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"rules file .*nope.yaml does not exist; fix --rules"):
        load_rules(tmp_path / "nope.yaml", region_keys=KEYS, namespace="ns", delete_policy="mirror")


# --- the example and the file location -------------------------------------------------------


def test_the_documented_example_loads():
    rules = load_rules(EXAMPLE, region_keys=KEYS, namespace="ns", delete_policy="mirror")

    assert [rule.name for rule in rules.rules] == [
        "team-releases",
        "team-everything-else",
        "base-images",
    ]
    assert destinations(rules, "team/old-name:v1.2.3") == {"mel": "ns/mirror/new-name"}


def test_the_rules_flag_wins_over_the_environment(tmp_path):
    flag = tmp_path / "flag.yaml"
    flag.write_text(one_rule("regions: [mel]"))

    placer = build_placer(settings(SYNC_RULES_FILE=str(tmp_path / "env.yaml")), flag)

    assert placer.rules.source == flag


def test_the_rules_file_comes_from_the_environment_without_a_flag():
    assert Settings.from_environ({"SYNC_RULES_FILE": "env.yaml"}).rules_file == Path("env.yaml")


def test_without_flag_or_variable_there_is_no_rules_file():
    assert Settings.from_environ({"SYNC_RULES_FILE": " "}).rules_file is None


# --- the Placer adapter ----------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """What RulesPlacer.select_tags reads of an ECR image (registry.ecr_api.EcrImage)."""

    tags: tuple[str, ...]
    pushed_at: datetime


def settings(**overrides: str) -> Settings:
    env = {
        "OCI_TENANCY": "ns",
        "OCI_USERNAME": "u",
        "OCI_AUTH_TOKEN": "t",
        "OCI_REPO_REGION_KEY": "mel,syd",
        "OCIR_ENDPOINT_SYD": "http://127.0.0.1:5001",
        "SYNC_ALLOWED_ACCOUNTS": "123456789012",
        "SYNC_ALLOWED_REGIONS": "ap-southeast-2",
        "SYNC_ALLOW_UNAUTHENTICATED": "true",
        **overrides,
    }
    return Settings.from_environ(env).require_service()


def test_the_placer_without_a_file_sends_everything_everywhere_with_region_hosts():
    placer = build_placer(settings())

    assert placer.destinations("team/web", "1") == {
        "mel": ("mel.ocir.io", "ns/team/web"),
        "syd": ("127.0.0.1:5001", "ns/team/web"),
    }
    assert placer.mirrors_deletes("team/web", "1") is True
    assert placer.referrers("team/web", None) is True


def test_the_placer_reads_the_file_named_by_sync_rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(one_rule("repositories: {include: ['team/*']}\ndelete: ignore"))

    placer = build_placer(settings(SYNC_RULES_FILE=str(path)))

    assert placer.destinations("other/web", "1") is None
    assert placer.mirrors_deletes("team/web", "1") is False
    assert placer.mirrors_deletes("other/web", "1") is False
    assert placer.wants_repository("team/web")
    assert not placer.wants_repository("other/web")


def test_the_placer_selects_tags_by_rule_and_push_time(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(one_rule("tags: {exclude: ['-rc'], latest: 2}"))
    placer = build_placer(settings(), path)
    images = [
        Image(("1.0.0", "stable"), T0),
        Image(("1.1.0",), T0 + timedelta(minutes=1)),
        Image(("1.2.0-rc",), T0 + timedelta(minutes=2)),
    ]

    assert placer.select_tags("app", images) == {"1.1.0", "1.0.0"}
