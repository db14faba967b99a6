"""What every agent reader shares: one stdout line as a JSON event, bounded text, the
one-line evidence a reason quotes, and tables of failure texts.

Pure: imports only the standard library, freq.model and freq.agents.base (no processes,
no clock). The readers keep what they need of each event and drop the event (bounded
memory: a run prints thousands of events, some of them megabytes of tool output).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from freq.agents.base import AgentResult
from freq.model import FailureKind

# The most characters of the agent's final message kept (its end: conclusions come last).
TEXT_LIMIT = 256 * 1024
# The most characters of evidence one reason quotes.
EXCERPT_LIMIT = 200
# A line longer than this is not parsed (no CLI prints an event that large we need;
# Claude's tool results may be, and are only needed for their is_error flag).
LINE_LIMIT = 16 * 1024 * 1024


def parse(line: bytes) -> dict[str, Any] | None:
    """The JSON object on one stdout line, or None for anything else (noise, a warning,
    a half-written line, a JSON value that is not an object)."""
    text = line.strip()
    if not text.startswith(b"{") or len(text) > LINE_LIMIT:
        return None
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return event if isinstance(event, dict) else None


def string(value: object) -> str:
    """`value` when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def number(value: object) -> int:
    """`value` when it is a whole number (not a bool), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def mapping(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def strings(value: object) -> tuple[str, ...]:
    """The strings of a list setting (`allowed_tools: [...]`, frozen to a tuple)."""
    items = value if isinstance(value, tuple | list) else ()
    return tuple(str(item) for item in items)


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text`, or its last `limit` characters after an ellipsis."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """`text` as one line: whitespace runs collapsed, cut at `limit` with an ellipsis."""
    line = " ".join(_ANSI.sub("", text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def how_it_ended(exit_code: int | None, signal: int | None, timed_out: bool) -> str:
    """`exit code 1`, `killed by signal 15`, `timed out`."""
    if timed_out:
        return "timed out"
    if signal is not None:
        return f"killed by signal {signal}"
    return f"exit code {exit_code}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A failure text a CLI prints, the class it is, and the words a reason starts with."""

    pattern: re.Pattern[str]
    kind: FailureKind
    label: str


def rule(pattern: str, kind: FailureKind, label: str) -> Rule:
    """A Rule whose pattern is searched case-insensitively."""
    return Rule(pattern=re.compile(pattern, re.IGNORECASE), kind=kind, label=label)


def first_match(rules: Iterable[Rule], text: str) -> Rule | None:
    """The first rule whose pattern occurs in `text` (the table's order is its priority)."""
    for r in rules:
        if r.pattern.search(text):
            return r
    return None


def line_with(r: Rule, text: str) -> str:
    """The line of `text` where `r` matches first ("" when it does not)."""
    m = r.pattern.search(text)
    if m is None:
        return ""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start : end if end >= 0 else len(text)]


def next_time(
    now: datetime,
    hour12: int,
    minute: int,
    meridiem: str,
    *,
    month: str | None = None,
    day: int | None = None,
    year: int | None = None,
) -> datetime | None:
    """The UTC time a CLI printed as `11:08 PM` (today, or tomorrow once past) or with a
    date (`Dec 3`: in the year given, else the next such day). The CLIs run with TZ=UTC, so
    their local time is UTC. None when the fields make no time (`Feb 30`, `13:75 PM`)."""
    utc = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    hour = hour12 % 12 + (12 if meridiem.lower() == "pm" else 0)
    try:
        if month is None or day is None:
            at = utc.replace(hour=hour, minute=minute, second=0, microsecond=0)
            return at if at > utc else at + timedelta(days=1)
        at = utc.replace(
            year=year or utc.year,
            month=_MONTHS.index(month[:3].lower()) + 1,
            day=day,
            hour=hour,
            minute=minute,
            second=0,
            microsecond=0,
        )
        if year is None and at <= utc:
            at = at.replace(year=at.year + 1)
    except ValueError:
        return None
    return at


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def denial_reason(denied: Iterable[str]) -> str:
    """`every write denied: Write, Edit`."""
    return "every write denied: " + ", ".join(denied)


def add_unique(seen: list[str], item: str, *, limit: int = 20) -> None:
    """Append `item` unless it is there already or `limit` items are (bounded memory)."""
    if item and item not in seen and len(seen) < limit:
        seen.append(item)


def failed(kind: FailureKind | None, label: str, evidence: str = "", **fields: Any) -> AgentResult:
    """A failed AgentResult whose reason is `label: evidence` (evidence cut to one line)."""
    shown = excerpt(evidence)
    return AgentResult(
        ok=False, kind=kind, reason=f"{label}: {shown}" if shown else label, **fields
    )
