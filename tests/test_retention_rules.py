"""The ``retain`` rule: its syntax, its problems, and which tags it keeps and expires."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecr_ocir_sync.cli.config_check import describe_rule, explain_image
from ecr_ocir_sync.rules.loader import RulesFileError, load_rules
from ecr_ocir_sync.rules.model import RuleSet

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def load(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return load_rules(path, region_keys=("mel", "syd"), namespace="ns", delete_policy="mirror")


def only_problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(RulesFileError) as caught:
        load(tmp_path, text)
    (problem,) = caught.value.problems
    return problem


def retaining(retain: str, tags: str = "") -> str:
    extra = f"\n    tags: {tags}" if tags else ""
    return f"version: 1\nrules:\n  - name: web\n    retain: {retain}{extra}\n"


def days_ago(*tags_and_days: tuple[str, float]) -> list[tuple[str, datetime]]:
    return [(tag, NOW - timedelta(days=days)) for tag, days in tags_and_days]


# --- which tags stay -------------------------------------------------------------------------


def test_newest_keeps_that_many_tags_by_push_time_and_expires_the_rest(tmp_path):
    rule = load(tmp_path, retaining("{newest: 2}")).rules[0]
    tags = days_ago(("a", 30), ("b", 1), ("c", 10), ("d", 20))

    assert rule.select_tags(tags, NOW) == ["b", "c"]
    assert rule.expired_tags(tags, NOW) == ["d", "a"]


def test_days_keeps_the_tags_pushed_within_that_many_days(tmp_path):
    rule = load(tmp_path, retaining("{days: 7}")).rules[0]
    tags = days_ago(("fresh", 1), ("week", 7), ("old", 8))

    assert rule.select_tags(tags, NOW) == ["fresh", "week"]
    assert rule.expired_tags(tags, NOW) == ["old"]


def test_with_newest_and_days_a_tag_either_one_keeps_stays(tmp_path):
    rule = load(tmp_path, retaining("{newest: 1, days: 7}")).rules[0]
    tags = days_ago(("new", 1), ("recent", 3), ("old", 30), ("older", 40))

    assert rule.select_tags(tags, NOW) == ["new", "recent"]  # newest 1, and days 7
    assert rule.expired_tags(tags, NOW) == ["old", "older"]


def test_with_newest_and_days_a_quiet_repository_keeps_its_newest(tmp_path):
    rule = load(tmp_path, retaining("{newest: 1, days: 7}")).rules[0]

    assert rule.expired_tags(days_ago(("last", 90), ("before", 100)), NOW) == ["before"]


def test_retention_counts_only_the_tags_the_rule_owns(tmp_path):
    rule = load(tmp_path, retaining("{newest: 1}", tags="{exclude: ['-rc']}")).rules[0]
    tags = days_ago(("2.0-rc", 0), ("1.1", 1), ("1.0", 2))

    assert rule.expired_tags(tags, NOW) == ["1.0"]  # 2.0-rc is not this rule's tag


def test_without_retain_nothing_expires(tmp_path):
    rule = load(tmp_path, "version: 1\nrules: [{name: web}]\n").rules[0]

    assert rule.expired_tags(days_ago(("a", 900), ("b", 1000)), NOW) == []


def test_a_tag_owned_by_an_earlier_rule_is_never_expired_by_a_later_one(tmp_path):
    rules = load(
        tmp_path,
        """\
        version: 1
        rules:
          - {name: releases, tags: {include: ['v.*']}}
          - {name: builds, retain: {newest: 1}}
        """,
    )
    tags = days_ago(("v1", 50), ("v2", 40), ("build-2", 1), ("build-1", 2))

    expired = rules.expired("app", tags, NOW)

    assert [(tag, placement.rule.name) for tag, placement in expired] == [("build-1", "builds")]
    assert [tag for tag, _ in rules.select("app", tags, NOW)] == ["v2", "v1", "build-2"]


def test_latest_and_retain_together_copy_the_first_cut_and_delete_only_the_second(tmp_path):
    rule = load(tmp_path, retaining("{days: 10}", tags="{latest: 1}")).rules[0]
    tags = days_ago(("new", 1), ("recent", 5), ("old", 20))

    assert rule.select_tags(tags, NOW) == ["new"]  # latest 1: 'recent' is not copied
    assert rule.expired_tags(tags, NOW) == ["old"]  # but only 'old' is deleted


def test_the_documented_example_retains_the_newest_20_or_the_last_30_days():
    example = Path(__file__).resolve().parent.parent / "docs" / "rules.example.yaml"
    rules = load_rules(example, region_keys=("mel", "syd"), namespace="ns", delete_policy="mirror")

    retain = rules.rules[1].retain
    assert retain is not None
    assert (retain.newest, retain.days) == (20, 30)


# --- problems, with their lines --------------------------------------------------------------


def test_a_retain_count_below_one_is_refused_on_its_line(tmp_path):
    problem = only_problem(
        tmp_path,
        """\
        version: 1
        rules:
          - name: web
            retain:
              newest: 0
        """,
    )

    assert problem == (
        "line 5: rules[0].retain.newest (rule 'web'): must be a whole number of tags, "
        "at least 1, not 0"
    )


@pytest.mark.parametrize("days", ["1.5", "'7'", "true", "-1"])
def test_days_must_be_a_whole_number_of_days(tmp_path, days):
    problem = only_problem(tmp_path, retaining(f"{{days: {days}}}"))

    assert problem.startswith("line 4: rules[0].retain.days (rule 'web'): must be a whole number")
    assert "of days, at least 1" in problem


def test_a_misspelt_retain_key_is_refused_with_a_suggestion(tmp_path):
    problem = only_problem(tmp_path, retaining("{newest: 3, day: 7}"))

    assert problem.startswith("line 4: rules[0].retain (rule 'web'): unknown key 'day'")
    assert "(did you mean 'days'?)" in problem


def test_a_retain_without_a_limit_is_refused_saying_what_to_give(tmp_path):
    problem = only_problem(tmp_path, retaining("{}"))

    assert problem.startswith("line 4: rules[0].retain (rule 'web'): names no limit; give newest")


def test_a_retain_that_is_not_a_mapping_is_refused(tmp_path):
    problem = only_problem(tmp_path, retaining("10"))

    assert (
        problem
        == "line 4: rules[0].retain (rule 'web'): must be a mapping of newest, days, not int"
    )


def test_retain_in_defaults_is_refused_saying_it_belongs_on_each_rule(tmp_path):
    problem = only_problem(
        tmp_path, "version: 1\ndefaults:\n  retain: {newest: 3}\nrules: [{name: web}]\n"
    )

    assert problem.startswith("line 3: defaults: unknown key 'retain' (retain belongs on each rule")


# --- config check ----------------------------------------------------------------------------


def test_config_check_shows_each_rules_retention(tmp_path):
    rule = load(tmp_path, retaining("{newest: 5, days: 30}")).rules[0]

    assert "retain the newest 5 or those pushed in the last 30 days" in describe_rule(rule)


def test_config_check_explains_how_retention_and_reconciliation_interact(tmp_path):
    rules = load(tmp_path, retaining("{newest: 5}"))

    lines = explain_image(rules, "team/web", "1.4")

    note = next(line for line in lines if line.startswith("note: retain"))
    assert "deleted at the destination after each push and by reconciliation" in note
    assert "never copied back" in note
    assert "referrer tags and tags the rule did not place are never deleted" in note
