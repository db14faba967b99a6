"""Pure accounting of what attempts spent: one record per attempt end, sums by a grouping,
the agent/deterministic split, calendar budget windows, budgets reached, and estimates.

Imports only the standard library and freq.model / freq.runtime / freq.refs: no git, no
clock (`now` comes in). freq.ledger reads the records from git; the planner asks `reached`
whether a budget stops an agent step (`Spend` is its input, computed by the shell layer);
the agent runner asks `remaining_usd` for a CLI's own spending cap and `estimate_usd` for
CLIs that report tokens but no money.

An attempt end is a commit whose Freq-Event is `transitioned` with a Freq-Attempt (a step
that ran and succeeded; an approved gate has no attempt), `failed` (any failure, worker
lost included) or `released` (interrupted, its claim given back: it may have spent too).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import MappingProxyType

from freq.model import (
    Budget,
    Config,
    Factory,
    Price,
    Settings,
    Step,
    Window,
    parse_duration,
    resolve_agent,
)
from freq.refs import format_message, parse_iso, parse_trailers, usage_from_trailers
from freq.runtime import CostSource, Event

# Freq-Event of an attempt end -> the attempt's outcome
ENDS: Mapping[str, str] = MappingProxyType(
    {"transitioned": "succeeded", "failed": "failed", "released": "released", "queued": "succeeded"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCost:
    """One attempt's end as its commit records it: where, when, how long, and (an agent
    attempt) what it ran as and spent. `usd` None: no cost known (not priced)."""

    commit: str
    factory: str
    subject: str
    step: str
    attempt: int
    at: datetime
    outcome: str  # succeeded | failed | released
    duration_ms: int | None = None
    agent: str | None = None  # Freq-Agent: set on every agent attempt's end
    model: str | None = None
    tokens_in: int | None = None  # every input token, cached ones included
    tokens_out: int | None = None
    tokens_cached: int | None = None
    usd: float | None = None
    source: CostSource | None = None

    @property
    def by_agent(self) -> bool:
        """An agent ran it (its end recorded Freq-Agent); else a shell step did, or an
        agent step whose worker was lost before it could say (see `split`)."""
        return self.agent is not None

    @property
    def estimated(self) -> bool:
        """Its USD was estimated from a price table, not reported by the CLI."""
        return self.source is CostSource.ESTIMATED


def from_message(commit: str, message: str) -> AttemptCost | None:
    """The attempt end a commit message records, or None when it records no attempt end
    (a claim, a renewal, a manual move, an approval, a creation ...)."""
    if _event_kind(message) is None:
        return None
    t = parse_trailers(message)
    kind = t.get("Freq-Event", "")
    if kind not in ENDS:  # the trailer block itself decides
        return None
    if kind != "queued" and "Freq-Target" in t:
        # the merge queue's own records (a landing, a conflict) follow an attempt whose
        # end was its queueing: counted there, once
        return None
    try:
        at = parse_iso(t["Freq-At"])
        attempt = int(t["Freq-Attempt"])
        factory, subject, step = t["Freq-Factory"], t["Freq-Subject"], t["Freq-Step"]
    except (KeyError, ValueError):
        return None
    duration = t.get("Freq-Duration-Ms", "")
    base = AttemptCost(
        commit=commit,
        factory=factory,
        subject=subject,
        step=step,
        attempt=attempt,
        at=at,
        outcome=ENDS[kind],
        duration_ms=int(duration) if duration.isdigit() else None,
    )
    u = usage_from_trailers(t)
    if u is None:
        return base
    return replace(
        base,
        agent=u.agent,
        model=u.model,
        tokens_in=u.tokens_in,
        tokens_out=u.tokens_out,
        tokens_cached=u.tokens_cached,
        usd=u.cost_usd,
        source=u.cost_source,
    )


def _event_kind(message: str) -> str | None:
    """`transitioned`, `failed` or `released` when the message may record an attempt end,
    read from its Freq-Event trailer alone: most commits of a history are claims and
    renewals, and need no further parsing."""
    at = message.rfind("\nFreq-Event: ")
    if at < 0:
        return None
    end = message.find("\n", at + 13)
    kind = message[at + 13 : end if end >= 0 else None].strip()
    return kind if kind in ENDS else None


def from_event(event: Event, commit: str = "") -> AttemptCost | None:
    """The attempt end `event` records once committed: what from_message reads back from
    its commit (None when it is no attempt end)."""
    return from_message(commit, format_message(event))


# ---------------------------------------------------------------- estimates


def estimate_usd(
    tokens_in: int | None,
    tokens_out: int | None,
    tokens_cached: int | None,
    model: str | None,
    prices: Mapping[str, Price],
) -> float | None:
    """USD for an attempt's tokens at `prices` (USD per million tokens, by exact model
    name). Cached tokens are part of `tokens_in` and cost `cached` when the price names
    it, else `input`. None when the model has no price or no token count is known."""
    price = prices.get(model) if model is not None else None
    if price is None or (tokens_in is None and tokens_out is None):
        return None
    given = max(tokens_in or 0, 0)
    cached = min(max(tokens_cached or 0, 0), given)
    rate_cached = price.input if price.cached is None else price.cached
    total = (
        (given - cached) * price.input
        + cached * rate_cached
        + max(tokens_out or 0, 0) * price.output
    )
    return total / 1_000_000


# ---------------------------------------------------------------- sums


class By(Enum):
    """What `costs` groups attempts by."""

    STEP = "step"
    FACTORY = "factory"
    SUBJECT = "subject"
    AGENT = "agent"
    MODEL = "model"
    DAY = "day"


NONE = "-"  # the group of attempts without an agent or a model (shell steps)


def group_of(r: AttemptCost, by: By) -> str:
    """The group `r` falls in: `factory/step`, `factory`, `factory/subject`, its agent or
    model (`-` for none), or its UTC day `2026-12-02`."""
    if by is By.STEP:
        return f"{r.factory}/{r.step}"
    if by is By.FACTORY:
        return r.factory
    if by is By.SUBJECT:
        return f"{r.factory}/{r.subject}"
    if by is By.AGENT:
        return r.agent or NONE
    if by is By.MODEL:
        return r.model or NONE
    return r.at.astimezone(UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True, kw_only=True)
class Total:
    """Sums over a group of attempts. `usd` includes `estimated_usd`; `unpriced` counts the
    agent attempts that recorded no cost at all (not in `usd`)."""

    group: str
    attempts: int = 0
    agent_attempts: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    usd: float = 0.0
    estimated_usd: float = 0.0
    unpriced: int = 0
    duration_ms: int = 0


def total(records: Iterable[AttemptCost], group: str = "total") -> Total:
    """The sums over `records`."""
    n = agents = failed = t_in = t_out = t_cached = unpriced = ms = 0
    usd = est = 0.0
    for r in records:
        n += 1
        failed += r.outcome == "failed"
        ms += r.duration_ms or 0
        if r.by_agent:
            agents += 1
            unpriced += r.usd is None
        t_in += r.tokens_in or 0
        t_out += r.tokens_out or 0
        t_cached += r.tokens_cached or 0
        if r.usd is not None:
            usd += r.usd
            est += r.usd if r.estimated else 0.0
    return Total(
        group=group,
        attempts=n,
        agent_attempts=agents,
        failed=failed,
        tokens_in=t_in,
        tokens_out=t_out,
        tokens_cached=t_cached,
        usd=usd,
        estimated_usd=est,
        unpriced=unpriced,
        duration_ms=ms,
    )


def sums(records: Iterable[AttemptCost], by: By) -> tuple[Total, ...]:
    """One Total per group, in group order (days chronologically)."""
    groups: dict[str, list[AttemptCost]] = {}
    for r in records:
        groups.setdefault(group_of(r, by), []).append(r)
    return tuple(total(rs, g) for g, rs in sorted(groups.items()))


def since(records: Iterable[AttemptCost], start: datetime | None) -> tuple[AttemptCost, ...]:
    """The records at or after `start` (all of them when it is None)."""
    return tuple(r for r in records if start is None or r.at >= start)


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a day (`2026-12-01`, from 00:00 UTC), a time (`2026-12-01T12:00:00Z`; one
    without an offset is UTC), or a duration back from `now` (`7d`, `24h`, `90m`).
    ValueError with a one-line reason on anything else."""
    text = text.strip()
    if text and "-" not in text and ":" not in text:  # no date has neither
        try:
            return now - parse_duration(text)
        except ValueError:
            pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a date, time or duration: {text!r} (use e.g. 2026-12-01, "
            "2026-12-01T12:00:00Z or 7d)"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


# ---------------------------------------------------------------- the 40/60 split


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """How much of the work agents did: the share of attempts (failed ones included) that
    were agent steps, and their share of the time attempts ran. A share is None when
    there is nothing to divide (no attempts, or no durations recorded)."""

    attempts: int
    agent_attempts: int
    duration_ms: int
    agent_duration_ms: int
    step_share: float | None
    time_share: float | None


def split(records: Iterable[AttemptCost], agent_steps: Container[tuple[str, str]] = ()) -> Split:
    """The split over `records`. An attempt is an agent step's when it recorded an agent,
    or when its (factory, step) is in `agent_steps` (an agent step configured now whose
    attempt ended without usage: its worker was lost)."""
    n = agents = ms = agent_ms = 0
    for r in records:
        n += 1
        ms += r.duration_ms or 0
        if r.by_agent or (r.factory, r.step) in agent_steps:
            agents += 1
            agent_ms += r.duration_ms or 0
    return Split(
        attempts=n,
        agent_attempts=agents,
        duration_ms=ms,
        agent_duration_ms=agent_ms,
        step_share=agents / n if n else None,
        time_share=agent_ms / ms if ms else None,
    )


def agent_steps(config: Config) -> frozenset[tuple[str, str]]:
    """(factory, step) of every configured agent step."""
    return frozenset(
        (f.factory_id, s.id) for f in config.factories for s in f.steps if s.agent is not None
    )


# ---------------------------------------------------------------- windows


def window_start(at: datetime, per: Window) -> datetime:
    """The start of the calendar window (UTC) that `at` falls in: the hour, the day, the
    week from Monday 00:00, or the month."""
    t = at.astimezone(UTC)
    if per is Window.HOUR:
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if per is Window.DAY:
        return day
    if per is Window.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def window_end(at: datetime, per: Window) -> datetime:
    """The end of the window `at` falls in: the start of the next one."""
    start = window_start(at, per)
    if per is Window.HOUR:
        return start + timedelta(hours=1)
    if per is Window.DAY:
        return start + timedelta(days=1)
    if per is Window.WEEK:
        return start + timedelta(weeks=1)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else (start.replace(month=start.month + 1))
    )


# ---------------------------------------------------------------- budgets

FACTORY = "factory"
AGENT = "agent"

# (scope, name, window, window start): scope `factory` with a factory id, or `agent` with
# the agent's name (Freq-Agent: what a step's `agent.use` names)
SpendKey = tuple[str, str, Window, datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class Spend:
    """USD spent per budget and window, as git records it: what the planner is given.
    A window it does not list (one begun since it was computed) has spent nothing."""

    usd: Mapping[SpendKey, float] = field(default_factory=lambda: MappingProxyType({}))

    def spent(self, scope: str, name: str, per: Window, start: datetime) -> float:
        """USD spent by `scope` `name` in the `per` window starting at `start`."""
        return self.usd.get((scope, name, per, start), 0.0)

    def including(self, cost: AttemptCost | None) -> Spend:
        """This spend with one more attempt's cost in each window it falls in (an attempt
        that just ended, not yet in the records this was computed from)."""
        if cost is None or cost.usd is None:
            return self
        out = dict(self.usd)
        for key in self.usd:
            if _counts(key, cost):
                out[key] += cost.usd
        return Spend(usd=MappingProxyType(out))


def _counts(key: SpendKey, r: AttemptCost) -> bool:
    scope, name, per, start = key
    if r.usd is None or not start <= r.at < window_end(start, per):
        return False
    return r.factory == name if scope == FACTORY else r.agent == name


def budgets(config: Config) -> tuple[tuple[str, str, Budget], ...]:
    """Every budget configured: (scope, name, budget), factories first."""
    out = []
    for f in config.factories:
        if f.limits.budget is not None:
            out.append((FACTORY, f.factory_id, f.limits.budget))
    for name, agent in sorted(config.settings.agents.items()):
        if agent.budget is not None:
            out.append((AGENT, name, agent.budget))
    return tuple(out)


def spend_of(records: Iterable[AttemptCost], config: Config, now: datetime) -> Spend:
    """For every configured budget, what was spent in its window at `now`."""
    keys = [(scope, name, b.per, window_start(now, b.per)) for scope, name, b in budgets(config)]
    if not keys:
        return NO_SPEND
    usd = dict.fromkeys(keys, 0.0)
    for r in records:
        if r.usd is None:
            continue
        for key in keys:
            if _counts(key, r):
                usd[key] += r.usd
    return Spend(usd=MappingProxyType(usd))


NO_SPEND = Spend()


def step_budgets(
    step: Step, factory: Factory, settings: Settings
) -> Iterator[tuple[str, str, Budget]]:
    """The budgets an attempt of `step` spends from: its factory's, and its agent's (a
    named agent of frequency.yaml with a budget). None for a step without an agent."""
    if step.agent is None:
        return
    if factory.limits.budget is not None:
        yield FACTORY, factory.factory_id, factory.limits.budget
    agent = resolve_agent(step.agent, settings.agents)
    if agent.budget is not None:
        yield AGENT, agent.name, agent.budget


@dataclass(frozen=True, slots=True, kw_only=True)
class Reached:
    """A budget whose window has spent all of it: no new attempt of its agent steps starts
    until `resets`."""

    scope: str
    name: str
    budget: Budget
    spent: float
    resets: datetime

    @property
    def reason(self) -> str:
        """The line `why` and `plan` show."""
        return (
            f"budget of {self.scope} {self.name} reached: ${self.spent:.2f} spent of "
            f"${self.budget.usd:.2f} this {self.budget.per.value}; "
            f"resets {self.resets.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )


def reached(
    step: Step, factory: Factory, settings: Settings, spend: Spend, now: datetime
) -> tuple[Reached, ...]:
    """The budgets of `step` that are spent at `now` (empty: it may start)."""
    out = []
    for scope, name, b in step_budgets(step, factory, settings):
        start = window_start(now, b.per)
        spent = spend.spent(scope, name, b.per, start)
        if spent >= b.usd:
            out.append(
                Reached(
                    scope=scope, name=name, budget=b, spent=spent, resets=window_end(now, b.per)
                )
            )
    return tuple(out)


def remaining_usd(
    step: Step, factory: Factory, settings: Settings, spend: Spend, now: datetime
) -> float | None:
    """What an attempt of `step` may still spend now: the smallest remainder of its
    factory's and its agent's budgets (never below 0), or None when no budget applies."""
    left = [
        max(b.usd - spend.spent(scope, name, b.per, window_start(now, b.per)), 0.0)
        for scope, name, b in step_budgets(step, factory, settings)
    ]
    return min(left) if left else None
