"""User regular expressions (`classify:` and `respond:` rules): checked and matched by RE2, in
linear time.

Imports only the standard library and re2; the only module importing re2 (STYLE habit 3).
Python's `re` backtracks: `(a+)+$` over a long output takes exponential time, inside C code
that no signal interrupts, so one bad rule could hang `run` past SIGTERM. RE2 matches in
time linear in the input and refuses the constructs that need backtracking (backreferences,
lookaround). Our own fixed patterns (classify.py's built-ins) stay on `re`.

Semantics match the former `re.search(pattern, text, re.MULTILINE)`: the pattern is
searched anywhere in the text, `^` and `$` match at every line's start and end, `.` does
not match a newline. RE2 differences a user can meet: `\\Z` is written `\\z`, and `\\d`,
`\\w`, `\\s`, `\\b` are ASCII-only.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import re2

WHY_RE2 = (
    "classify patterns use RE2 syntax, which matches in linear time "
    "and so has no backreferences or lookaround"
)


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    return options


@cache
def _compiled(pattern: str) -> Any:
    """The RE2 program for `pattern` with multi-line anchors; raises re2.error."""
    return re2.compile(f"(?m){pattern}", _options())


def _detail(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text or "unknown error"


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a classify pattern (one line), or None when it can."""
    try:
        re2.compile(pattern, _options())
    except re2.error as exc:
        detail = _detail(exc)
    else:
        return None
    try:
        re.compile(pattern)
    except re.error:
        return f"{pattern!r} is not a valid regular expression ({detail})"
    return f"{pattern!r} is not RE2 syntax ({detail}): {WHY_RE2}"


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` (valid: see pattern_problem) occurs in `text`, `^`/`$` per line."""
    return _compiled(pattern).search(text) is not None


def find(pattern: str, text: str, pos: int = 0) -> tuple[int, int] | None:
    """Where `pattern` (valid: see pattern_problem) first occurs in `text` at or after `pos`:
    (start, end) character offsets, or None. Text before `pos` still counts as context: `^`
    matches at `pos` only if a line starts there."""
    match = _compiled(pattern).search(text, pos)
    return None if match is None else (match.start(), match.end())
