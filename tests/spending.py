"""Test-only writers of agent and shell attempts: a claim and its end, through the real store,
as the run loop records them (the end carrying Event.usage, as the agent runner will)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freq import refs, transitions
from freq.classify import Ending
from freq.clock import FakeClock
from freq.model import Step
from freq.runtime import AgentUsage, CostSource
from freq.store import Store

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # a Wednesday

BUDGETS = {
    ".frequency/frequency.yaml": """
    agents:
      reviewer:
        use: codex
        model: gpt-5-codex
        budget: {usd: 5, per: day}
        prices:
          gpt-5-codex: {input: 1.25, output: 10, cached: 0.125}
    """,
    ".frequency/build.yaml": """
    factory_id: build
    state: {initial: new, terminal: [done]}
    limits: {budget: {usd: 20, per: day}}
    steps:
      - id: implement
        from_states: [new]
        to_state: implemented
        agent: {use: claude, prompt: "implement {subject}"}
      - id: review
        from_states: [implemented]
        to_state: reviewed
        agent: {use: reviewer, prompt: "review {subject}"}
      - id: check
        from_states: [reviewed]
        to_state: done
        run: "true"
    """,
    ".frequency/ship.yaml": """
    factory_id: ship
    state: {initial: new, terminal: [done]}
    steps:
      - id: review
        from_states: [new]
        to_state: done
        agent: {use: reviewer, prompt: "review {subject}"}
    """,
}


def claude(usd: float, *, tokens: int = 1000) -> AgentUsage:
    """What a Claude attempt reports: tokens and its own USD."""
    return AgentUsage(
        agent="claude",
        model="claude-sonnet-4",
        tokens_in=tokens,
        tokens_out=tokens // 10,
        tokens_cached=tokens // 2,
        cost_usd=usd,
        cost_source=CostSource.REPORTED,
        session="sess-1",
    )


def reviewer(usd: float | None, *, tokens: int = 2000) -> AgentUsage:
    """What a codex attempt of the named agent `reviewer` records: tokens, and USD the
    runner estimated from the price table (None: not priced)."""
    return AgentUsage(
        agent="reviewer",
        model="gpt-5-codex",
        tokens_in=tokens,
        tokens_out=tokens // 10,
        tokens_cached=0,
        cost_usd=usd,
        cost_source=CostSource.ESTIMATED if usd is not None else None,
    )


def attempt(
    path: Path,
    factory: str,
    subject: str,
    step: str,
    *,
    at: datetime,
    to_state: str | None = None,
    usage: AgentUsage | None = None,
    duration: timedelta = timedelta(minutes=1),
    ok: bool = True,
) -> str:
    """One attempt of `step` on `subject`, ending at `at` after `duration`: a claim commit,
    then a success (into `to_state`) or a failure, carrying `usage`. The end's commit id."""
    store = Store.discover(path, clock=FakeClock(at))
    try:
        subj, tip = store.read_subject(factory, subject)
        ref = refs.subject_ref(factory, subject)
        start = at - duration
        claim = transitions.claimed(
            subj,
            step=step,
            attempt=subj.attempt + 1,
            worker="test:1:1",
            at=start,
            ttl=timedelta(hours=2),
        )
        tip = store.advance(ref, claim.subject, claim.event, expected=tip)
        ms = int(duration.total_seconds() * 1000)
        if ok:
            end = transitions.succeeded(
                claim.subject,
                to_state=to_state or subj.state,
                at=at,
                worker="test:1:1",
                duration_ms=ms,
                exit_code=0,
            )
        else:
            rule = Step(id=step, from_states=(subj.state,), to_state=subj.state)
            end, _cls = transitions.failed(
                claim.subject,
                rule,
                Ending(exit_code=1, tail="error: tests fail"),
                how="exit 1",
                duration_ms=ms,
                at=at,
                worker="test:1:1",
                rng=random.Random(1),
            )
            # no backoff left to wait: the tests here are about budgets, not retries
            end = replace(end, subject=replace(end.subject, not_before=None))
        return store.advance(ref, end.subject, replace(end.event, usage=usage), expected=tip)
    finally:
        store.close()
