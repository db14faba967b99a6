"""freq.costs: pure accounting of attempts: records, sums, split, windows, budgets, estimates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from freq import costs
from freq.costs import AttemptCost, By, Spend
from freq.model import (
    AgentCall,
    AgentDef,
    Budget,
    Config,
    Factory,
    Limits,
    Price,
    Settings,
    Step,
    Window,
)
from freq.refs import format_message
from freq.runtime import AgentUsage, CostSource, Event, EventKind

T = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)  # a Wednesday


def _cost(**kw: object) -> AttemptCost:
    base = AttemptCost(
        commit="c" * 40,
        factory="build",
        subject="app-1",
        step="implement",
        attempt=1,
        at=T,
        outcome="succeeded",
        duration_ms=60_000,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _agent(usd: float | None, **kw: object) -> AttemptCost:
    return _cost(
        agent="claude",
        model="claude-sonnet-4",
        tokens_in=1000,
        tokens_out=100,
        tokens_cached=500,
        usd=usd,
        source=CostSource.REPORTED if usd is not None else None,
        **kw,
    )


# ---------------------------------------------------------------- estimates

PRICES = MappingProxyType(
    {
        "gpt-5-codex": Price(input=1.25, output=10.0, cached=0.125),
        "gemini-2.5-pro": Price(input=2.0, output=12.0),
    }
)


def test_estimate_prices_cached_tokens_at_the_cached_rate() -> None:
    """Cached tokens are part of tokens_in and cost `cached` per million when given."""
    usd = costs.estimate_usd(1_000_000, 100_000, 400_000, "gpt-5-codex", PRICES)
    assert usd == pytest.approx(600_000 * 1.25e-6 + 400_000 * 0.125e-6 + 100_000 * 10e-6)


def test_estimate_prices_cached_tokens_as_input_without_a_cached_rate() -> None:
    """A price without `cached` charges cached tokens as input."""
    usd = costs.estimate_usd(1_000_000, 0, 400_000, "gemini-2.5-pro", PRICES)
    assert usd == pytest.approx(2.0)


def test_estimate_is_none_without_a_price_or_tokens() -> None:
    """An unknown model (exact names only), no model, or no token count: no estimate."""
    assert costs.estimate_usd(10, 10, 0, "gpt-5", PRICES) is None
    assert costs.estimate_usd(10, 10, 0, None, PRICES) is None
    assert costs.estimate_usd(None, None, None, "gpt-5-codex", PRICES) is None
    assert costs.estimate_usd(None, 1_000_000, None, "gpt-5-codex", PRICES) == 10.0


def test_estimate_never_charges_more_cached_tokens_than_were_sent() -> None:
    """A cached count above tokens_in (a CLI's quirk) is capped at tokens_in."""
    assert costs.estimate_usd(100, 0, 500, "gpt-5-codex", PRICES) == pytest.approx(100 * 0.125e-6)


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("per", "start", "end"),
    [
        (Window.HOUR, datetime(2026, 12, 2, 9, tzinfo=UTC), datetime(2026, 12, 2, 10, tzinfo=UTC)),
        (Window.DAY, datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)),
        (Window.WEEK, datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
        (Window.MONTH, datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_windows_are_calendar_periods_in_utc(per: Window, start: datetime, end: datetime) -> None:
    """Hour, day, week from Monday 00:00 and month, in UTC; the end is the next start."""
    assert costs.window_start(T, per) == start
    assert costs.window_end(T, per) == end
    assert costs.window_start(end, per) == end  # an end belongs to the next window


def test_windows_read_other_offsets_as_utc() -> None:
    """01:30 at +03:00 is 22:30 UTC the day before: that day's window, and November's."""
    plus3 = datetime.fromisoformat("2026-12-01T01:30:00+03:00")
    assert costs.window_start(plus3, Window.DAY) == datetime(2026, 11, 30, tzinfo=UTC)
    assert costs.window_start(plus3, Window.MONTH) == datetime(2026, 11, 1, tzinfo=UTC)
    assert costs.window_start(plus3, Window.DAY).tzinfo is UTC


# ---------------------------------------------------------------- records from commits


def _event(kind: EventKind, **kw: object) -> Event:
    fields: dict[str, object] = {
        "factory": "build",
        "subject": "app-1",
        "at": T,
        "worker": "w:1:1",
        "step": "implement",
        "from_state": "new",
        "attempt": 2,
        "epoch": 3,
    }
    fields.update(kw)
    return Event(kind=kind, **fields)  # type: ignore[arg-type]


def test_an_agent_attempts_end_is_read_back_from_its_message() -> None:
    """Step, attempt, time, duration and every usage trailer come back as written."""
    usage = AgentUsage(
        agent="reviewer",
        model="gpt-5-codex",
        tokens_in=1200,
        tokens_out=80,
        tokens_cached=1000,
        cost_usd=0.0123,
        cost_source=CostSource.ESTIMATED,
        session="s-9",
    )
    ev = _event(EventKind.FAILED, duration_ms=4200, exit_code=1, failure="retryable (x)")
    got = costs.from_message("a" * 40, format_message(replace(ev, usage=usage)))
    assert got == AttemptCost(
        commit="a" * 40,
        factory="build",
        subject="app-1",
        step="implement",
        attempt=2,
        at=T,
        outcome="failed",
        duration_ms=4200,
        agent="reviewer",
        model="gpt-5-codex",
        tokens_in=1200,
        tokens_out=80,
        tokens_cached=1000,
        usd=0.0123,
        source=CostSource.ESTIMATED,
    )
    assert got is not None and got.estimated
    assert costs.from_event(replace(ev, usage=usage), "a" * 40) == got


def test_only_attempt_ends_are_records() -> None:
    """Claims, renewals, creations and manual moves are not attempts; an approved gate
    (a transition with no attempt) is not either; a shell step's end is, without usage."""
    for kind in (EventKind.CLAIMED, EventKind.RENEWED, EventKind.CREATED, EventKind.MOVED):
        assert costs.from_message("a" * 40, format_message(_event(kind))) is None
    gate = _event(EventKind.TRANSITIONED, attempt=None, to_state="done")
    assert costs.from_message("a" * 40, format_message(gate)) is None
    shell = costs.from_message(
        "a" * 40, format_message(_event(EventKind.TRANSITIONED, to_state="done", duration_ms=5))
    )
    assert shell is not None and shell.agent is None and shell.outcome == "succeeded"
    released = costs.from_message("a" * 40, format_message(_event(EventKind.RELEASED)))
    assert released is not None and released.outcome == "released"
    assert costs.from_message("a" * 40, "build/app-1: by hand\n") is None


# ---------------------------------------------------------------- sums


RECORDS = (
    _agent(1.5, commit="1" * 40),
    _agent(0.5, commit="2" * 40, outcome="failed", attempt=2, subject="app-2"),
    _cost(
        commit="3" * 40,
        step="review",
        agent="reviewer",
        model="gpt-5-codex",
        tokens_in=2000,
        tokens_out=200,
        tokens_cached=0,
        usd=0.25,
        source=CostSource.ESTIMATED,
        at=T + timedelta(days=1),
    ),
    _agent(None, commit="4" * 40, step="review", at=T + timedelta(days=1)),
    _cost(commit="5" * 40, step="check", duration_ms=20_000, factory="ship"),
)


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        (By.STEP, {"build/implement": 2, "build/review": 2, "ship/check": 1}),
        (By.FACTORY, {"build": 4, "ship": 1}),
        (By.SUBJECT, {"build/app-1": 3, "build/app-2": 1, "ship/app-1": 1}),
        (By.AGENT, {"claude": 3, "reviewer": 1, "-": 1}),
        (By.MODEL, {"claude-sonnet-4": 3, "gpt-5-codex": 1, "-": 1}),
        (By.DAY, {"2026-12-02": 3, "2026-12-03": 2}),
    ],
)
def test_sums_by_each_grouping_count_failed_attempts(by: By, groups: dict[str, int]) -> None:
    """Every grouping sees every attempt, the failed one included, in group order."""
    got = costs.sums(RECORDS, by)
    assert {t.group: t.attempts for t in got} == groups
    assert [t.group for t in got] == sorted(groups)
    assert sum(t.failed for t in got) == 1
    assert sum(t.usd for t in got) == pytest.approx(2.25)


def test_a_total_keeps_estimated_and_unpriced_parts_apart() -> None:
    """USD includes the estimate (also kept apart); an agent attempt with no cost is
    counted as unpriced, not as $0; tokens and durations add up."""
    t = costs.total(RECORDS)
    assert (t.attempts, t.agent_attempts, t.failed, t.unpriced) == (5, 4, 1, 1)
    assert t.usd == pytest.approx(2.25)
    assert t.estimated_usd == pytest.approx(0.25)
    assert (t.tokens_in, t.tokens_out, t.tokens_cached) == (5000, 500, 1500)
    assert t.duration_ms == 4 * 60_000 + 20_000


def test_since_keeps_attempts_from_then_on() -> None:
    """--since is inclusive; None keeps everything."""
    later = costs.since(RECORDS, T + timedelta(days=1))
    assert [r.commit[0] for r in later] == ["3", "4"]
    assert costs.since(RECORDS, None) == RECORDS


def test_parse_since_takes_days_times_and_durations() -> None:
    """A day is from 00:00 UTC, a time without offset is UTC, a duration counts back."""
    assert costs.parse_since("2026-12-01", T) == datetime(2026, 12, 1, tzinfo=UTC)
    assert costs.parse_since("2026-12-01T12:00:00Z", T) == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert costs.parse_since("2026-12-01T12:00:00", T) == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert costs.parse_since("7d", T) == T - timedelta(days=7)
    assert costs.parse_since("1h30m", T) == T - timedelta(minutes=90)
    with pytest.raises(ValueError, match=r"not a date, time or duration: 'yesterday'"):
        costs.parse_since("yesterday", T)


# ---------------------------------------------------------------- the split


def test_split_counts_attempts_and_wall_time_of_agent_steps() -> None:
    """4 of 5 attempts were agents' (failed and unpriced ones too), 240 s of 260 s."""
    sp = costs.split(RECORDS)
    assert (sp.attempts, sp.agent_attempts) == (5, 4)
    assert sp.step_share == pytest.approx(0.8)
    assert sp.time_share == pytest.approx(240 / 260)


def test_split_counts_configured_agent_steps_that_recorded_no_usage() -> None:
    """A lost worker's attempt of an agent step has no Freq-Agent: the config says it was
    an agent step."""
    lost = _cost(commit="6" * 40, step="implement", outcome="failed", duration_ms=None)
    sp = costs.split((lost, RECORDS[-1]), {("build", "implement")})
    assert (sp.attempts, sp.agent_attempts, sp.step_share) == (2, 1, 0.5)
    assert sp.time_share == 0.0


def test_split_of_nothing_has_no_shares() -> None:
    """No attempts: no shares, rather than a division by zero."""
    sp = costs.split(())
    assert (sp.step_share, sp.time_share) == (None, None)


# ---------------------------------------------------------------- budgets

IMPLEMENT = Step(
    id="implement",
    from_states=("new",),
    to_state="done",
    agent=AgentCall(use="claude", prompt="x"),
)
REVIEW = Step(
    id="review", from_states=("new",), to_state="done", agent=AgentCall(use="reviewer", prompt="x")
)
CHECK = Step(id="check", from_states=("new",), to_state="done", run="true")
FACTORY = Factory(
    factory_id="build",
    path="build.yaml",
    initial="new",
    terminal=("done",),
    steps=(IMPLEMENT, REVIEW, CHECK),
    limits=Limits(budget=Budget(usd=20.0, per=Window.DAY)),
)
SETTINGS = Settings(
    agents=MappingProxyType(
        {
            "reviewer": AgentDef(
                name="reviewer", use="codex", budget=Budget(usd=5.0, per=Window.WEEK)
            )
        }
    )
)
CONFIG = Config(root=".", settings=SETTINGS, factories=(FACTORY,))


def test_spend_counts_each_budgets_window_and_scope() -> None:
    """A factory budget counts that factory's agent spend in its day; an agent budget
    counts that agent's spend in its week, whatever the factory."""
    records = (
        _agent(12.0),
        _agent(1.0, at=T - timedelta(days=1)),  # yesterday: outside the day, inside the week
        _cost(commit="7" * 40, agent="reviewer", usd=3.0, factory="ship"),
        _cost(commit="8" * 40, agent="reviewer", usd=1.5, at=T - timedelta(days=1)),
        _cost(commit="9" * 40, agent="reviewer", usd=9.0, at=T - timedelta(days=3)),  # last week
    )
    spend = costs.spend_of(records, CONFIG, T)
    day, week = costs.window_start(T, Window.DAY), costs.window_start(T, Window.WEEK)
    assert spend.spent("factory", "build", Window.DAY, day) == pytest.approx(12.0)
    assert spend.spent("agent", "reviewer", Window.WEEK, week) == pytest.approx(4.5)
    assert spend.spent("factory", "build", Window.DAY, day + timedelta(days=1)) == 0.0


def test_reached_names_the_budget_what_it_spent_and_when_it_resets() -> None:
    """$20.13 of a $20 day stops agent steps, with the line `why` shows; shell steps and
    steps of other agents are not stopped by it."""
    spend = costs.spend_of((_agent(20.13),), CONFIG, T)
    (hit,) = costs.reached(IMPLEMENT, FACTORY, SETTINGS, spend, T)
    assert hit.reason == (
        "budget of factory build reached: $20.13 spent of $20.00 this day; "
        "resets 2026-12-03T00:00:00Z"
    )
    assert costs.reached(CHECK, FACTORY, SETTINGS, spend, T) == ()
    assert [h.scope for h in costs.reached(REVIEW, FACTORY, SETTINGS, spend, T)] == ["factory"]
    assert costs.reached(IMPLEMENT, FACTORY, SETTINGS, spend, T + timedelta(days=1)) == ()


def test_remaining_is_the_smaller_remainder_never_below_zero() -> None:
    """Claude: what is left of the factory's day; the reviewer: the smaller of the
    factory's and its own week's; a shell step: no budget applies."""
    records = (_agent(12.0), _cost(commit="7" * 40, agent="reviewer", usd=4.0))
    spend = costs.spend_of(records, CONFIG, T)
    assert costs.remaining_usd(IMPLEMENT, FACTORY, SETTINGS, spend, T) == pytest.approx(4.0)
    assert costs.remaining_usd(REVIEW, FACTORY, SETTINGS, spend, T) == pytest.approx(1.0)
    assert costs.remaining_usd(CHECK, FACTORY, SETTINGS, spend, T) is None
    over = costs.spend_of((_agent(25.0),), CONFIG, T)
    assert costs.remaining_usd(IMPLEMENT, FACTORY, SETTINGS, over, T) == 0.0


def test_including_adds_an_attempt_that_just_ended() -> None:
    """A chained claim counts the attempt it follows, in the windows it falls in."""
    spend = costs.spend_of((_agent(19.0),), CONFIG, T)
    more = spend.including(_agent(1.5, commit="e" * 40))
    day = costs.window_start(T, Window.DAY)
    assert more.spent("factory", "build", Window.DAY, day) == pytest.approx(20.5)
    assert spend.including(None) is spend
    assert spend.including(_cost()) is spend  # a shell step's end spends nothing
    assert Spend().including(_agent(1.0)).usd == {}  # no budget: nothing to count in
