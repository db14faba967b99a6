"""Pure failure classification: retryable, terminal, quota or needs_human, and why (SPEC §5).

Imports only the standard library and freq.model: no clock (`now` comes in), no I/O.
Order of decision: the step's `classify:` rules (first match wins; their patterns run on
RE2 through freq.patterns, so a user's pattern cannot backtrack for ever), then `failure:` when it
is not `infer`, then inference from how the process ended (timeout, signal, exit code),
from the output tail (terminal patterns before transient ones), and from repetition: the
same error fingerprint on REPEAT_LIMIT consecutive attempts is terminal even when it looks
transient, because an agent that makes the same mistake again will make it forever.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from freq.model import ClassifyRule, FailureKind, FailureMode, Step

REPEAT_LIMIT = 3
# The most output, in characters, that `classify:` rules search: the end of the tail. proc.py
# already keeps at most 64 KiB; bounding it here too keeps rules cheap whoever calls us.
RULE_INPUT_LIMIT = 64 * 1024
QUOTA_DEFAULT_HOLD = timedelta(minutes=15)

# (pattern, words for the reason); matched case-insensitively against the output tail
TERMINAL_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"command not found|no such file or directory: .*bin/", "command not found"),
    (r"permission denied", "permission denied"),
    (
        r"authentication (failed|error|required)|unauthori[sz]ed|invalid api key|\b401\b",
        "authentication error",
    ),
    (r"\b403\b|forbidden", "forbidden"),
    (r"invalid (configuration|config)|configuration error", "invalid configuration"),
)
RETRYABLE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"rate[ -]?limit|too many requests|\b429\b", "rate limit"),
    (r"\b50[234]\b|bad gateway|service unavailable|gateway time-?out", "server error 5xx"),
    (r"overloaded", "overloaded"),
    (r"connection (reset|refused|aborted)|econnreset|econnrefused", "connection error"),
    (r"etimedout|timed out|timeout", "network timeout"),
    (r"temporar(y|ily) (failure|unavailable)|try again", "temporary failure"),
)
_SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 15: "SIGTERM"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    """A runner's own judgement of a failure: an agent adapter read it from the CLI's
    structured output (a usage limit with its reset, a denied write), or the step asked a
    person (`freq:ask`). The step's `classify:` rules still come first."""

    kind: FailureKind
    reason: str  # what was seen, e.g. `usage limit (five_hour)`
    hold_until: datetime | None = None  # quota: the reset, when the CLI said it
    question: str | None = None  # needs_human: what was asked


@dataclass(frozen=True, slots=True, kw_only=True)
class Ending:
    """How an attempt ended, as far as classification cares."""

    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    tail: str = ""
    hint: Hint | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """The class a failure is given, the rule that decided it, and its fingerprint."""

    kind: FailureKind
    reason: str
    fingerprint: str
    hold_until: datetime | None = None  # quota: when the usage limit resets
    question: str | None = None  # needs_human: what the agent asked

    @property
    def trailer(self) -> str:
        """`retryable (pattern: rate limit)`: the value of the Freq-Failure trailer."""
        return f"{self.kind.value} ({self.reason})"


# ---------------------------------------------------------------- fingerprints

_MASKS = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\b"), "<time>"),
    (re.compile(r"\b[0-9a-f]{7,64}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.@+-]+){2,}/?"), "<path>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
)


def normalise(tail: str, *, lines: int = 20) -> str:
    """The last non-empty lines with timestamps, hex ids, paths and numbers masked."""
    kept = [ln.strip() for ln in tail.splitlines() if ln.strip()][-lines:]
    out = []
    for line in kept:
        masked = line
        for pattern, mask in _MASKS:
            masked = pattern.sub(mask, masked)
        out.append(" ".join(masked.split()))
    return "\n".join(out)


def fingerprint(ending: Ending) -> str:
    """A short hash of how it ended and the normalised tail: equal for the same mistake."""
    how = (
        "timeout"
        if ending.timed_out
        else f"sig{ending.signal}"
        if ending.signal
        else f"exit{ending.exit_code}"
    )
    return hashlib.sha1(f"{how}\n{normalise(ending.tail)}".encode()).hexdigest()[:12]


# ---------------------------------------------------------------- quota reset times

_IN = re.compile(
    r"(?:try again|retry|resets?|available again)\s+(?:in|after)\s+(\d+)\s*"
    r"(s|sec|secs|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b",
    re.IGNORECASE,
)
_RETRY_AFTER = re.compile(r"retry-after:\s*(\d+)", re.IGNORECASE)
_AT_ISO = re.compile(
    r"resets?\s+(?:at\s+)?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?"
    r"(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)",
    re.IGNORECASE,
)
_AT_CLOCK = re.compile(r"resets?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)\b", re.IGNORECASE)


def reset_time(tail: str, now: datetime) -> datetime | None:
    """When a usage limit resets, read from the output (`try again in 5 minutes`,
    `Retry-After: 60`, `resets at 2026-01-01T15:00Z`, `resets 3pm` (UTC)); None if unsaid."""
    if m := _IN.search(tail):
        n, unit = int(m.group(1)), m.group(2).lower()
        seconds = n * (3600 if unit.startswith("h") else 60 if unit.startswith("m") else 1)
        return now + timedelta(seconds=seconds)
    if m := _RETRY_AFTER.search(tail):
        return now + timedelta(seconds=int(m.group(1)))
    if m := _AT_ISO.search(tail):
        text = m.group(1).replace("Z", "+00:00")
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
    if m := _AT_CLOCK.search(tail):
        hour = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "pm" else 0)
        at = now.replace(hour=hour, minute=int(m.group(2) or 0), second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    return None


# ---------------------------------------------------------------- classification


def _rule_matches(rule: ClassifyRule, ending: Ending) -> bool:
    if rule.exit is not None and rule.exit != ending.exit_code:
        return False
    if rule.match is None:
        return True
    from freq import patterns  # re2, imported for the first step with `classify:` rules

    return patterns.search(rule.match, ending.tail[-RULE_INPUT_LIMIT:])


def _question(tail: str) -> str:
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    asked = [ln for ln in lines if ln.endswith("?")]
    return (asked or lines or ["(no output)"])[-1][:500]


def _describe_exit(ending: Ending) -> str:
    if ending.timed_out:
        return "timeout"
    if ending.signal is not None:
        return f"killed by {_SIGNAL_NAMES.get(ending.signal, f'signal {ending.signal}')}"
    return f"exit code {ending.exit_code}"


def classify(
    step: Step, ending: Ending, previous: tuple[str, ...], *, now: datetime
) -> Classification:
    """Classify one failed attempt.

    `previous` holds the fingerprints of the consecutive failed attempts just before this one
    (same subject, same step, same stay in the state), most recent last.
    """
    fp = fingerprint(ending)
    for i, rule in enumerate(step.classify):
        if _rule_matches(rule, ending):
            what = " and ".join(
                p
                for p in (
                    f"match {rule.match!r}" if rule.match else "",
                    f"exit {rule.exit}" if rule.exit is not None else "",
                )
                if p
            )
            return _make(rule.kind, f"classify rule {i + 1}: {what}", fp, ending, now)
    hint = ending.hint
    if hint is not None and hint.kind is not FailureKind.RETRYABLE:
        return _hinted(hint, fp, now)
    if step.failure is FailureMode.TERMINAL:
        return Classification(kind=FailureKind.TERMINAL, reason="failure: terminal", fingerprint=fp)
    if step.failure is FailureMode.RETRYABLE:
        return Classification(
            kind=FailureKind.RETRYABLE, reason="failure: retryable", fingerprint=fp
        )
    kind, reason = (hint.kind, hint.reason) if hint is not None else _infer(ending)
    repeats = 1
    for prior in reversed(previous):
        if prior != fp:
            break
        repeats += 1
    if kind is FailureKind.RETRYABLE and repeats >= REPEAT_LIMIT:
        return Classification(
            kind=FailureKind.TERMINAL,
            fingerprint=fp,
            reason=f"repeated: same error {repeats} times in a row "
            f"(fingerprint {fp}; was {reason})",
        )
    return Classification(kind=kind, reason=reason, fingerprint=fp)


def _infer(ending: Ending) -> tuple[FailureKind, str]:
    if ending.timed_out:
        return FailureKind.RETRYABLE, "timeout"
    if ending.signal is not None:
        return FailureKind.RETRYABLE, _describe_exit(ending)
    if ending.exit_code == 75:
        return FailureKind.RETRYABLE, "exit code 75 (EX_TEMPFAIL)"
    if ending.exit_code in (126, 127):
        what = "not executable" if ending.exit_code == 126 else "command not found"
        return FailureKind.TERMINAL, f"exit code {ending.exit_code} ({what})"
    for pattern, words in TERMINAL_PATTERNS:
        if re.search(pattern, ending.tail, re.IGNORECASE):
            return FailureKind.TERMINAL, f"pattern: {words}"
    for pattern, words in RETRYABLE_PATTERNS:
        if re.search(pattern, ending.tail, re.IGNORECASE):
            return FailureKind.RETRYABLE, f"pattern: {words}"
    return FailureKind.RETRYABLE, _describe_exit(ending)


def _hinted(hint: Hint, fp: str, now: datetime) -> Classification:
    """A runner's judgement as the class (a quota without a reset time is held 15m)."""
    if hint.kind is FailureKind.QUOTA:
        at, reason = hint.hold_until, hint.reason
        if at is None or at <= now:
            at = now + QUOTA_DEFAULT_HOLD
            reason += "; no reset time given, held 15m"
        return Classification(kind=hint.kind, reason=reason, fingerprint=fp, hold_until=at)
    return Classification(
        kind=hint.kind, reason=hint.reason, fingerprint=fp, question=hint.question
    )


def _make(kind: FailureKind, reason: str, fp: str, ending: Ending, now: datetime) -> Classification:
    if kind is FailureKind.QUOTA:
        at = reset_time(ending.tail, now)
        if at is None:
            at = now + QUOTA_DEFAULT_HOLD
            reason += "; no reset time in the output, held 15m"
        return Classification(kind=kind, reason=reason, fingerprint=fp, hold_until=at)
    if kind is FailureKind.NEEDS_HUMAN:
        return Classification(
            kind=kind, reason=reason, fingerprint=fp, question=_question(ending.tail)
        )
    return Classification(kind=kind, reason=reason, fingerprint=fp)
