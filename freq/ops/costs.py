"""Spend actions: `costs` (what attempts spent, grouped), and the spend every plan is given.

Must not import click, dulwich, subprocess or pexpect, and never prints. Everything is read
from git alone, through the App's ledger (freq/ledger.py): every attempt end of every
subject ref and archive, failed ones included; freq/costs.py does the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from freq import costs
from freq.costs import By, Spend, Split, Total
from freq.errors import UsageError
from freq.model import Window
from freq.ops.app import App
from freq.runtime import Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetRow:
    """One configured budget and its current window."""

    scope: str  # factory | agent
    name: str
    usd: float
    per: Window
    spent: float
    since: datetime
    resets: datetime
    reached: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CostsResult:
    """`costs`: sums per group, the total, the agent/deterministic split, and every budget."""

    by: By
    since: datetime | None
    groups: tuple[Total, ...]
    total: Total
    split: Split
    budgets: tuple[BudgetRow, ...] = ()
    problems: tuple[str, ...] = ()  # history that could not be read (not counted)


def costs_report(app: App, *, by: str = "step", since: str | None = None) -> CostsResult:
    """What every attempt recorded in git spent (failed ones included), grouped `by` step,
    factory, subject, agent, model or day, from `since` (a day, a time, or a duration back
    from now) on; with the split between agent and deterministic steps and each budget's
    window."""
    try:
        group = By(by)
    except ValueError:
        choices = ", ".join(b.value for b in By)
        raise UsageError(f"cannot group by {by!r} (use one of {choices})") from None
    now = app.clock.now()
    start = None
    if since is not None:
        try:
            start = costs.parse_since(since, now)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    ledger = app.ledger
    spend = ledger.spend(app.config, now)  # reads what is new first
    records = costs.since(ledger.records(), start)
    rows = []
    for scope, name, b in costs.budgets(app.config):
        window = costs.window_start(now, b.per)
        spent = spend.spent(scope, name, b.per, window)
        rows.append(
            BudgetRow(
                scope=scope,
                name=name,
                usd=b.usd,
                per=b.per,
                spent=spent,
                since=window,
                resets=costs.window_end(now, b.per),
                reached=spent >= b.usd,
            )
        )
    return CostsResult(
        by=group,
        since=start,
        groups=costs.sums(records, group),
        total=costs.total(records),
        split=costs.split(records, costs.agent_steps(app.config)),
        budgets=tuple(rows),
        problems=ledger.problems,
    )


def spend_now(app: App, snap: Snapshot) -> Spend | None:
    """What each configured budget spent in its window now, for a plan over `snap`; None
    (nothing read) when no budget is configured."""
    if not costs.budgets(app.config):
        return None
    return app.ledger.spend(app.config, app.clock.now(), tips=snap.tips)
