"""Pure classification: inference table, classify rules, fingerprints, repetition, quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from freq.classify import Ending, classify, fingerprint, normalise, reset_time
from freq.model import ClassifyRule, FailureKind, FailureMode, Step

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
STEP = Step(id="s", from_states=("a",), to_state="b", run="x")


@pytest.mark.parametrize(
    ("ending", "kind", "reason"),
    [
        (Ending(exit_code=None, timed_out=True), "retryable", "timeout"),
        (Ending(exit_code=None, signal=9), "retryable", "killed by SIGKILL"),
        (Ending(exit_code=75), "retryable", "exit code 75 (EX_TEMPFAIL)"),
        (Ending(exit_code=127), "terminal", "exit code 127 (command not found)"),
        (Ending(exit_code=126), "terminal", "exit code 126 (not executable)"),
        (
            Ending(exit_code=1, tail="Error: rate limit exceeded"),
            "retryable",
            "pattern: rate limit",
        ),
        (
            Ending(exit_code=1, tail="HTTP 429 Too Many Requests"),
            "retryable",
            "pattern: rate limit",
        ),
        (Ending(exit_code=1, tail="upstream said 503"), "retryable", "pattern: server error 5xx"),
        (Ending(exit_code=1, tail="model is overloaded"), "retryable", "pattern: overloaded"),
        (
            Ending(exit_code=1, tail="read: connection reset by peer"),
            "retryable",
            "pattern: connection error",
        ),
        (
            Ending(exit_code=1, tail="connect ETIMEDOUT 10.0.0.1:443"),
            "retryable",
            "pattern: network timeout",
        ),
        (
            Ending(exit_code=1, tail="fatal: Authentication failed for repo"),
            "terminal",
            "pattern: authentication error",
        ),
        (
            Ending(exit_code=1, tail="open /etc/x: permission denied"),
            "terminal",
            "pattern: permission denied",
        ),
        (
            Ending(exit_code=2, tail="sh: 1: claude: command not found"),
            "terminal",
            "pattern: command not found",
        ),
        (
            Ending(exit_code=1, tail="invalid configuration: missing key"),
            "terminal",
            "pattern: invalid configuration",
        ),
        (Ending(exit_code=1, tail="assertion failed"), "retryable", "exit code 1"),
    ],
)
def test_inference_table(ending: Ending, kind: str, reason: str) -> None:
    """`infer` decides from the exit code, then terminal patterns, then transient ones."""
    c = classify(STEP, ending, (), now=NOW)
    assert (c.kind.value, c.reason) == (kind, reason)


def test_classify_rules_override_inference_in_order() -> None:
    """The first matching rule wins over everything inferred."""
    step = Step(
        id="s",
        from_states=("a",),
        to_state="b",
        run="x",
        classify=(
            ClassifyRule(match=r"rate limit", kind=FailureKind.TERMINAL),
            ClassifyRule(exit=3, kind=FailureKind.NEEDS_HUMAN),
            ClassifyRule(match=r"flaky", exit=1, kind=FailureKind.RETRYABLE),
        ),
    )
    c = classify(step, Ending(exit_code=1, tail="rate limit"), (), now=NOW)
    assert (c.kind, c.reason) == (FailureKind.TERMINAL, "classify rule 1: match 'rate limit'")
    q = classify(step, Ending(exit_code=3, tail="Which database should I use?\n"), (), now=NOW)
    assert (q.kind, q.question) == (FailureKind.NEEDS_HUMAN, "Which database should I use?")
    f = classify(step, Ending(exit_code=127, tail="flaky"), (), now=NOW)
    assert f.kind is FailureKind.TERMINAL  # rule 3 needs exit 1: inference decides
    r = classify(step, Ending(exit_code=1, tail="flaky"), (), now=NOW)
    assert r.reason == "classify rule 3: match 'flaky' and exit 1"


def test_failure_mode_short_circuits_inference() -> None:
    """`failure: terminal` / `retryable` decide without inference."""
    term = Step(id="s", from_states=("a",), to_state="b", run="x", failure=FailureMode.TERMINAL)
    assert (
        classify(term, Ending(exit_code=1, tail="503"), (), now=NOW).reason == "failure: terminal"
    )
    retry = Step(id="s", from_states=("a",), to_state="b", run="x", failure=FailureMode.RETRYABLE)
    c = classify(retry, Ending(exit_code=127), (fingerprint(Ending(exit_code=127)),) * 5, now=NOW)
    assert c.kind is FailureKind.RETRYABLE


def test_fingerprint_masks_numbers_ids_times_and_paths() -> None:
    """The same mistake with different ids, times and temp paths has one fingerprint."""
    a = "2026-03-01T10:00:01Z error in /tmp/run-123/app.py line 42: object 3fa9c21 missing"
    b = "2026-03-02T11:22:33Z error in /tmp/run-987/app.py line 7: object 77be01d missing"
    assert normalise(a) == "<time> error in <path> line <n>: object <hex> missing"
    assert fingerprint(Ending(exit_code=1, tail=a)) == fingerprint(Ending(exit_code=1, tail=b))
    assert fingerprint(Ending(exit_code=1, tail=a)) != fingerprint(Ending(exit_code=2, tail=a))


def test_repetition_turns_transient_into_terminal_on_the_third() -> None:
    """Three identical failures in a row are terminal even though 503 looks transient."""
    e = Ending(exit_code=1, tail="upstream 503 at 10:00:01")
    fp = fingerprint(e)
    assert classify(STEP, e, (), now=NOW).kind is FailureKind.RETRYABLE
    assert classify(STEP, e, (fp,), now=NOW).kind is FailureKind.RETRYABLE
    third = classify(STEP, e, (fp, fp), now=NOW)
    assert third.kind is FailureKind.TERMINAL
    assert third.reason == (
        f"repeated: same error 3 times in a row (fingerprint {fp}; was pattern: server error 5xx)"
    )
    other = fingerprint(Ending(exit_code=1, tail="rate limit"))
    assert classify(STEP, e, (other, fp), now=NOW).kind is FailureKind.RETRYABLE


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("usage limit reached, try again in 5 minutes", NOW + timedelta(minutes=5)),
        ("Retry-After: 90", NOW + timedelta(seconds=90)),
        ("limit resets at 2026-03-01T12:30:00Z", datetime(2026, 3, 1, 12, 30, tzinfo=UTC)),
        ("5-hour limit reached - resets 3pm", datetime(2026, 3, 1, 15, 0, tzinfo=UTC)),
        ("resets 9am", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        ("quota exceeded", None),
    ],
)
def test_quota_reset_times(tail: str, expected: datetime | None) -> None:
    """Reset times are read from the usual phrasings; none found is None."""
    assert reset_time(tail, NOW) == expected


def test_quota_rule_holds_until_reset_or_fifteen_minutes() -> None:
    """A quota class carries its hold; without a reset time it holds 15 minutes."""
    step = Step(
        id="s",
        from_states=("a",),
        to_state="b",
        run="x",
        classify=(ClassifyRule(match="limit", kind=FailureKind.QUOTA),),
    )
    c = classify(step, Ending(exit_code=1, tail="limit hit; try again in 2 hours"), (), now=NOW)
    assert (c.kind, c.hold_until) == (FailureKind.QUOTA, NOW + timedelta(hours=2))
    d = classify(step, Ending(exit_code=1, tail="limit hit"), (), now=NOW)
    assert d.hold_until == NOW + timedelta(minutes=15)
    assert d.reason.endswith("; no reset time in the output, held 15m")


def _rule_step(pattern: str) -> Step:
    return Step(
        id="s",
        from_states=("a",),
        to_state="b",
        run="x",
        classify=(ClassifyRule(match=pattern, kind=FailureKind.TERMINAL),),
    )


def test_a_pathological_rule_over_a_full_tail_still_classifies() -> None:
    """`(a+)+$` over 64 KiB of `a`s and one `b`: backtracking would never end; RE2 answers."""
    tail = "a" * (64 * 1024 - 1) + "b"
    ending = Ending(exit_code=1, tail=tail)
    missed = classify(_rule_step("(a+)+$"), ending, (), now=NOW)
    assert missed.reason == "exit code 1"
    hit = classify(_rule_step("(a+)+b$"), ending, (), now=NOW)
    assert (hit.kind, hit.reason) == (FailureKind.TERMINAL, "classify rule 1: match '(a+)+b$'")


@pytest.mark.parametrize(
    ("pattern", "tail", "matches"),
    [
        ("^fatal: disk$", "step 1\nfatal: disk\nbye", True),  # ^ and $ at every line
        ("fatal$", "fatal\n", True),
        ("^bye", "step 1\nbye", True),
        ("1.fatal", "1\nfatal", False),  # . does not cross lines
        ("(?s)1.fatal", "1\nfatal", True),
        ("Fatal", "fatal", False),  # case matters unless asked
        ("(?i)Fatal", "fatal", True),
        (r"\d+ errors", "found 12 errors", True),
    ],
)
def test_rule_patterns_keep_multiline_search_semantics(
    pattern: str, tail: str, matches: bool
) -> None:
    """A rule's pattern is searched anywhere, with ^ and $ per line (as re.MULTILINE did)."""
    result = classify(_rule_step(pattern), Ending(exit_code=1, tail=tail), (), now=NOW)
    assert result.reason.startswith("classify rule 1") is matches


def test_rules_see_only_the_last_64_kib() -> None:
    """A match further back than the bounded tail does not count."""
    tail = "BOOM" + "x" * (64 * 1024)
    result = classify(_rule_step("BOOM"), Ending(exit_code=1, tail=tail), (), now=NOW)
    assert result.reason == "exit code 1"
