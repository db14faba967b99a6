"""`git freq costs`: the table, the total and split lines, --by, --since, --json, usage errors."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from freq import ops
from freq.clock import FakeClock

from .conftest import FreqRepo
from .spending import BUDGETS, T0, attempt, claude, reviewer

pytestmark = pytest.mark.git


@pytest.fixture
def history(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """Day 1: two claude attempts of build/x (one failed, $20.13 in all, 7 minutes).
    Day 2: x's reviewer attempt (estimated $0.0421), its shell check (20 s), and ship/s's
    failed reviewer attempt, which recorded tokens but no cost."""
    r: FreqRepo = freq_repo(BUDGETS)
    r.run("add", "build", "x", "a").assert_success()
    r.run("add", "ship", "s").assert_success()
    day2 = T0 + timedelta(days=1)
    attempt(
        r.path,
        "build",
        "x",
        "implement",
        at=T0,
        usage=claude(8.0),
        ok=False,
        duration=timedelta(minutes=3),
    )
    attempt(
        r.path,
        "build",
        "x",
        "implement",
        at=T0 + timedelta(minutes=10),
        usage=claude(12.13),
        to_state="implemented",
        duration=timedelta(minutes=4),
    )
    attempt(r.path, "build", "x", "review", at=day2, usage=reviewer(0.0421), to_state="reviewed")
    attempt(
        r.path,
        "build",
        "x",
        "check",
        at=day2 + timedelta(minutes=2),
        to_state="done",
        duration=timedelta(seconds=20),
    )
    attempt(r.path, "ship", "s", "review", at=day2, usage=reviewer(None), ok=False)
    return r


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.split("\n\n", maxsplit=1)[0].splitlines()]


def test_costs_by_step_is_a_table_with_a_total_and_the_split(history: FreqRepo) -> None:
    """One row per step with attempts, agent attempts, tokens, USD (~: estimated, ?: not
    known) and time; the total line names what is estimated or missing; the split line
    gives the agent steps' share of steps and of wall time."""
    out = history.run("costs").assert_success().out
    assert _table(out) == [
        ["step", "attempts", "agent", "tokens", "in", "out", "cached", "usd", "time"],
        ["build/check", "1", "0", "-", "-", "-", "-", "20s"],
        ["build/implement", "2", "2", "2,000", "200", "1,000", "$20.13", "7m"],
        ["build/review", "1", "1", "2,000", "200", "0", "~$0.0421", "1m"],
        ["ship/review", "1", "1", "2,000", "200", "0", "?", "1m"],
    ]
    lines = out.split("\n\n")[1].splitlines()
    assert lines[0] == (
        "total: 5 attempts, 4 by agents, ~$20.17+? (2 failed; ~$0.0421 estimated from "
        "prices; 1 agent attempt with no cost recorded)"
    )
    assert lines[1] == (
        "agent steps: 80% of steps, 96% of wall time (4 of 5 attempts; 9m of 9m20s)"
    )
    assert lines[2].startswith("budget of factory build: ")
    assert lines[3].startswith("budget of agent reviewer: ")


@pytest.mark.parametrize(
    ("by", "rows"),
    [
        ("factory", [["build", "4"], ["ship", "1"]]),
        ("subject", [["build/x", "4"], ["ship/s", "1"]]),
        ("agent", [["-", "1"], ["claude", "2"], ["reviewer", "2"]]),
        ("model", [["-", "1"], ["claude-sonnet-4", "2"], ["gpt-5-codex", "2"]]),
        ("day", [["2026-12-02", "2"], ["2026-12-03", "3"]]),
    ],
)
def test_costs_groups_by_each_grouping(history: FreqRepo, by: str, rows: list[list[str]]) -> None:
    """--by names the first column and groups every attempt, failed ones included."""
    table = _table(history.run("costs", "--by", by).assert_success().out)
    assert table[0][0] == by
    assert [row[:2] for row in table[1:]] == rows


def test_since_counts_only_later_attempts(history: FreqRepo) -> None:
    """--since a day drops day 1's claude attempts; a later day finds nothing."""
    out = history.run("costs", "--since", "2026-12-03", "--by", "agent").assert_success().out
    assert [row[:2] for row in _table(out)[1:]] == [["-", "1"], ["reviewer", "2"]]
    none = history.run("costs", "--since", "2027-01-01T00:00:00Z").assert_success().out
    assert none.splitlines()[0] == "no attempts recorded since 2027-01-01T00:00:00Z"


def test_json_is_the_result_with_groups_total_split_and_budgets(history: FreqRepo) -> None:
    """--json: every group's sums, the total, the split and each budget's window."""
    doc = json.loads(history.run("costs", "--by", "day", "--json").assert_success().out)
    assert sorted(doc) == ["budgets", "by", "groups", "problems", "since", "split", "total"]
    assert (doc["by"], doc["since"], doc["problems"]) == ("day", None, [])
    day1 = doc["groups"][0]
    assert day1 == {
        "group": "2026-12-02",
        "attempts": 2,
        "agent_attempts": 2,
        "failed": 1,
        "tokens_in": 2000,
        "tokens_out": 200,
        "tokens_cached": 1000,
        "usd": pytest.approx(20.13),
        "estimated_usd": 0.0,
        "unpriced": 0,
        "duration_ms": 420_000,
    }
    assert doc["total"]["estimated_usd"] == pytest.approx(0.0421)
    assert doc["split"] == {
        "attempts": 5,
        "agent_attempts": 4,
        "duration_ms": 560_000,
        "agent_duration_ms": 540_000,
        "step_share": 0.8,
        "time_share": pytest.approx(540 / 560),
    }
    assert [(b["scope"], b["name"], b["usd"], b["per"]) for b in doc["budgets"]] == [
        ("factory", "build", 20.0, "day"),
        ("agent", "reviewer", 5.0, "day"),
    ]


def test_budgets_show_the_current_windows_spend(history: FreqRepo) -> None:
    """On day 1 (the fake clock) build's day is spent, reviewer's is untouched."""
    app = ops.App(history.path, clock=FakeClock(T0 + timedelta(hours=2)))
    try:
        res = ops.costs_report(app)
    finally:
        app.close()
    from freq import render

    assert render.costs_text(res).splitlines()[-2:] == [
        "budget of factory build: $20.13 spent of $20.00 this day (reached); "
        "resets 2026-12-03T00:00:00Z",
        "budget of agent reviewer: $0.00 spent of $5.00 this day; resets 2026-12-03T00:00:00Z",
    ]


def test_bad_since_and_by_are_usage_errors(history: FreqRepo) -> None:
    """Exit 2 with one line: what was wrong and what is accepted; --by offers exactly the
    groupings freq.costs knows."""
    from freq.cli.costs import GROUPS
    from freq.costs import By

    assert tuple(b.value for b in By) == GROUPS
    err = history.run("costs", "--since", "yesterday").assert_failure(2).err
    assert err == (
        "git freq: --since: not a date, time or duration: 'yesterday' "
        "(use e.g. 2026-12-01, 2026-12-01T12:00:00Z or 7d)\n"
    )
    assert "'nope' is not one of 'step', 'factory'" in (
        history.run("costs", "--by", "nope").assert_failure(2).err
    )


def test_no_history_says_so(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A repository where nothing ran yet: one line, and no budget lines without budgets."""
    from .conftest import one_step

    # a step that lasts: `true` can end within the millisecond, whose wall time is none
    r: FreqRepo = freq_repo({".frequency/f.yaml": one_step("'sleep 0.01'")})
    assert r.run("costs").assert_success().out == "no attempts recorded\n"
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    out = r.run("costs").assert_success().out
    assert _table(out)[1][:3] == ["f/work", "1", "0"]
    assert out.splitlines()[-1].startswith("agent steps: 0% of steps, 0% of wall time (0 of 1")
