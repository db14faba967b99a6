"""Reading history: lease renewals of one attempt fold into one line; --json keeps them all."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from freq.render import fold_history, history_lines
from freq.store import HistoryEntry

from .conftest import FreqRepo

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def _entry(ref: str, n: int, what: str, *, attempt: int = 1) -> HistoryEntry:
    subject = ref.rsplit("/", 1)[1]
    renewal = what == "renewed"
    head = (
        f"f/{subject}: go lease renewed (attempt {attempt})" if renewal else f"f/{subject}: {what}"
    )
    return HistoryEntry(
        oid=str(n) * 40,
        ref=ref,
        at=T0 + timedelta(seconds=20 * n),
        message=(
            f"{head}\n\nFreq-Event: {what}\nFreq-Factory: f\nFreq-Subject: {subject}\n"
            f"Freq-Step: go\nFreq-Attempt: {attempt}\n"
        ),
        renewal=renewal,
    )


def test_fold_history_folds_each_attempts_renewals_across_interleaved_refs() -> None:
    """Renewals of one attempt fold even with another subject's commits between them; any
    other commit of the same ref, or a new attempt, starts a new run."""
    a, b = "refs/frequency/subjects/f/a", "refs/frequency/subjects/f/b"
    newest_first = [
        _entry(a, 9, "transitioned"),
        _entry(a, 8, "renewed"),
        _entry(b, 7, "renewed"),
        _entry(a, 6, "renewed"),
        _entry(b, 5, "claimed"),
        _entry(a, 4, "renewed"),
        _entry(a, 3, "claimed"),
        _entry(a, 2, "renewed", attempt=0),
        _entry(a, 1, "created"),
    ]
    sizes = [len(item.entries) for item in fold_history(newest_first)]
    assert sizes == [1, 3, 1, 1, 1, 1, 1]
    lines = history_lines(newest_first)
    assert lines[1] == (
        "888888888888 2026-01-01T10:02:40.000Z f/a: go lease renewed 3 times "
        "(attempt 1, first 10:01:20Z, last 10:02:40Z)"
    )
    assert lines[2].endswith("f/b: go lease renewed (attempt 1)")


def test_show_and_log_fold_a_long_steps_renewals(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A step outliving several renewals shows one renewal line in show and log text;
    `log --json` has every commit, renewals marked."""
    r: FreqRepo = freq_repo(
        {
            ".frequency/frequency.yaml": "lease: {ttl: 1s}\n",
            ".frequency/f.yaml": """
                factory_id: f
                state: {initial: s, terminal: [d]}
                steps:
                  - {id: go, from_states: [s], to_state: d, run: "sleep 1.5"}
                """,
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    entries = json.loads(r.run("log", "f", "x", "--json").assert_success().out)
    renewals = [e for e in entries if e["renewal"]]
    assert len(renewals) >= 2
    assert all(e["trailers"]["Freq-Event"] == "renewed" for e in renewals)
    text = r.run("log", "f", "x").assert_success().out.splitlines()
    assert [re.sub(r"^\S+ \S+ ", "", ln) for ln in text][:1] == ["f/x: go s -> d"]
    assert len(text) == 4  # transitioned, renewals folded, claimed, created
    assert re.fullmatch(
        rf"f/x: go lease renewed {len(renewals)} times \(attempt 1, first "
        r"\d\d:\d\d:\d\dZ, last \d\d:\d\d:\d\dZ\)",
        text[1].split(" ", 2)[2],
    )
    shown = r.run("show", "f", "x").assert_success().out
    history = shown.split("  history:\n", 1)[1].splitlines()
    assert [ln.strip() for ln in history] == text
