"""Budgets: once git records a window's spend at the budget, no new attempt of its agent
steps starts (shell steps and running attempts go on), `why` says so, and the window's
reset on the clock starts them again. Real repositories, a FakeClock, no sleeping."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from freq import ops, refs
from freq.clock import FakeClock
from freq.config import load_config
from freq.loop import Worker
from freq.store import Store

from .conftest import FreqRepo
from .spending import BUDGETS, T0, attempt, claude, reviewer

pytestmark = pytest.mark.git

RESET = datetime(2026, 12, 3, tzinfo=UTC)
FACTORY_LINE = (
    "budget of factory build reached: $20.13 spent of $20.00 this day; resets 2026-12-03T00:00:00Z"
)


@pytest.fixture
def over(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """build/x spent $20.13 of build's $20 a day (in two claude attempts, one failed);
    build/a waits to implement, build/r to run its shell check; ship/s to review."""
    r: FreqRepo = freq_repo(BUDGETS)
    r.run("add", "build", "x", "a").assert_success()
    r.run("add", "build", "r", "--state", "reviewed").assert_success()
    r.run("add", "ship", "s").assert_success()
    attempt(r.path, "build", "x", "implement", at=T0, usage=claude(8.0), ok=False)
    attempt(
        r.path,
        "build",
        "x",
        "implement",
        at=T0 + timedelta(minutes=10),
        usage=claude(12.13),
        to_state="implemented",
    )
    return r


def _app(r: FreqRepo, at: datetime) -> tuple[ops.App, FakeClock]:
    clock = FakeClock(at)
    return ops.App(r.path, clock=clock), clock


def test_a_spent_factory_budget_stops_its_agent_steps_not_its_shell_steps(over: FreqRepo) -> None:
    """a's claude step and x's reviewer step wait on build's budget; r's shell step starts."""
    app, _clock = _app(over, T0 + timedelta(hours=1))
    try:
        p = ops.plan_now(app, ["build"])
        assert [(s.subject, s.step) for s in p.starts] == [("r", "check")]
        waits = {w.subject: (w.kind, w.reasons, w.until) for w in p.waiting}
        assert waits["a"] == ("budget", (FACTORY_LINE,), RESET)
        assert waits["x"] == ("budget", (FACTORY_LINE,), RESET)
    finally:
        app.close()


def test_why_names_the_budget_what_it_spent_and_its_reset(over: FreqRepo) -> None:
    """`why` shows the budget's line as the one reason, through the same plan."""
    app, _clock = _app(over, T0 + timedelta(hours=1))
    try:
        res = ops.why(app, "build", "a")
        assert (res.kind, res.reasons) == ("budget", (FACTORY_LINE,))
    finally:
        app.close()
    out = over.run("why", "build", "a").out  # the real clock: some day's window
    assert out.startswith("build/a [new]:\n  - ")


def test_the_plan_wakes_the_worker_when_the_window_resets(over: FreqRepo) -> None:
    """A budget wait ends by time alone: the plan's next wake-up is the window's end. It
    does not keep the plan busy (a window can be a month): `run --until-idle` stops."""
    app, _clock = _app(over, T0 + timedelta(hours=1))
    try:
        p = ops.plan_now(app, ["build"])
        assert p.next_wake == RESET
        assert not p.retry_soon
    finally:
        app.close()


def test_the_next_window_starts_agent_steps_again(over: FreqRepo) -> None:
    """Just after midnight UTC the day's spend is 0 again and a's claude step is ready."""
    app, clock = _app(over, T0 + timedelta(hours=1))
    try:
        assert ops.why(app, "build", "a").kind == "budget"
        clock.advance((RESET - clock.now()).total_seconds())
        res = ops.why(app, "build", "a")
        assert res.reasons == ("ready: implement attempt 1 would start now",)
    finally:
        app.close()


def test_an_agents_budget_counts_its_spend_across_factories(over: FreqRepo) -> None:
    """reviewer's $5 a day is spent by $3 in build and $2.50 in ship (estimated, as codex
    reports no cost): ship/s waits for it, while build's own budget is untouched by the
    next day's claude spend below $20."""
    day2 = T0 + timedelta(days=1)
    over.run("add", "build", "y", "--state", "implemented").assert_success()
    attempt(over.path, "build", "y", "review", at=day2, usage=reviewer(3.0), to_state="reviewed")
    attempt(over.path, "ship", "s", "review", at=day2, usage=reviewer(2.5), ok=False)
    app, _clock = _app(over, day2 + timedelta(minutes=5))
    try:
        res = ops.why(app, "ship", "s")
        assert res.reasons == (
            "budget of agent reviewer reached: $5.50 spent of $5.00 this day; "
            "resets 2026-12-04T00:00:00Z",
        )
        assert ops.why(app, "build", "a").kind == "ready"  # claude, and build spent $3 today
        assert ops.why(app, "build", "x").kind == "budget"  # reviewer, in build
    finally:
        app.close()


def test_a_running_attempt_is_not_stopped_by_a_spent_budget(over: FreqRepo) -> None:
    """An attempt claimed before the budget was spent is still running: it finishes, and
    its end is recorded as any other."""
    app, _clock = _app(over, T0 + timedelta(hours=1))
    try:
        store = app.store
        subj, tip = store.read_subject("build", "a")
        from freq import transitions

        c = transitions.claimed(
            subj, step="implement", attempt=1, worker="h:9:9", at=T0, ttl=timedelta(days=1)
        )
        store.advance(refs.subject_ref("build", "a"), c.subject, c.event, expected=tip)
        assert ops.why(app, "build", "a").kind == "running"
    finally:
        app.close()


def test_the_run_loop_runs_shell_steps_and_claims_no_agent_step(over: FreqRepo) -> None:
    """A worker on the fake clock until idle: r's check runs, nothing claims a or x, and
    the run ends rather than waiting for midnight."""
    clock = FakeClock(T0 + timedelta(hours=1))
    store = Store.discover(over.path, clock=clock)
    w = Worker(store, load_config(over.path), clock=clock, worker="h:1:1", rng=random.Random(1))
    try:
        summary = w.run(until_idle=True, factories=("build",))
        assert (summary.succeeded, summary.failed) == (1, 0)
        assert clock.now() < RESET
    finally:
        store.close()
    state = {s: json.loads(over.run("show", "build", s, "--json").out)["subject"] for s in "axr"}
    assert state["r"]["state"] == "done"
    assert state["a"]["claim"] is None and state["a"]["attempt"] == 0
    assert state["x"]["claim"] is None and state["x"]["state"] == "implemented"


CHAIN = {
    ".frequency/flow.yaml": """
    factory_id: flow
    state: {initial: new, terminal: [done]}
    limits: {budget: {usd: 1, per: hour}}
    steps:
      - {id: prep, from_states: [new], to_state: ready, run: "true"}
      - id: write
        from_states: [ready]
        to_state: done
        agent: {use: claude, prompt: "write {subject}"}
    """,
}


def test_a_success_does_not_chain_into_an_agent_step_whose_budget_is_spent(
    freq_repo,  # type: ignore[no-untyped-def]
) -> None:
    """The worker chains a success into the next step's claim only when the planner would
    start it: a spent hourly budget leaves the subject ready, unclaimed."""
    r: FreqRepo = freq_repo(CHAIN)
    r.run("add", "flow", "spender", "--state", "ready").assert_success()
    r.run("add", "flow", "p").assert_success()
    attempt(r.path, "flow", "spender", "write", at=T0, usage=claude(1.25), to_state="done")
    clock = FakeClock(T0 + timedelta(minutes=5))
    store = Store.discover(r.path, clock=clock)
    w = Worker(store, load_config(r.path), clock=clock, worker="h:1:1", rng=random.Random(1))
    try:
        summary = w.run(max_cycles=2)
        assert (summary.succeeded, summary.failed) == (1, 0)
    finally:
        store.close()
    subjects = r.git("log", "--format=%s", refs.subject_ref("flow", "p")).splitlines()
    assert subjects == ["flow/p: prep new -> ready", "flow/p: prep claimed (attempt 1)",
                        "flow/p: created -> new"]  # fmt: skip
