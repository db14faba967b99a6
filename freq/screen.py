"""What a terminal child shows, as plain text: where `respond:` rules look for prompts, and
the question a stalled prompt asks.

Pure: imports only the standard library, freq.model and freq.patterns (proc feeds it bytes).
Not a terminal emulator: escape sequences are dropped, except that a cursor move to another
row reads as a line break and a move right as a space, so the words of a TUI that places its
text stay apart; carriage returns are line breaks. That is enough to find a prompt.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass

from freq import patterns
from freq.model import Respond

SCREEN_CHARS = 16 * 1024  # the recent output rules are matched against
QUESTION_LINES = 10  # the last lines a stalled prompt shows as its question
_HOLD = 4096  # an escape sequence still unfinished this far from the end is not one

# Our own fixed patterns, so Python's re (user patterns go through freq.patterns).
_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*([@-~])"  # CSI: colours, cursor moves, erasing
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: window titles, hyperlinks
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS, SOS, PM and APC strings
    r"|\x1b[ -/]*[0-~]"  # two-character escapes, charset selection (ESC ( B)
)
# the start of a sequence (or a CR that may be half a CRLF) that the next chunk may finish
_UNFINISHED = re.compile(
    r"(?:\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[ -/]*)|\r)\Z"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls and DEL, but tab and newline
_NEW_ROW = frozenset("HfEFd")  # CSI finals that move the cursor to another row
_RIGHT = "C"


def _replace(match: re.Match[str]) -> str:
    final = match.group(1)
    if final in _NEW_ROW:
        return "\n"
    return " " if final == _RIGHT else ""


def clean(text: str) -> str:
    """`text` without escape sequences and control characters; CR and CRLF become LF."""
    text = _SEQUENCE.sub(_replace, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    """A respond rule that matched, and the screen lines its match is on."""

    index: int  # of the rule in the respond list
    rule: Respond
    lines: str


class Screen:
    """The last SCREEN_CHARS characters of a terminal's output, cleaned, with a mark after
    the last prompt answered: a rule only matches output that arrived after the mark."""

    def __init__(self, limit: int = SCREEN_CHARS) -> None:
        self._limit = limit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._carry = ""  # an unfinished escape sequence (or CR) waiting for the next chunk
        self._text = ""
        self._mark = 0  # offset in _text after the last match taken

    @property
    def text(self) -> str:
        """The screen as text (the last SCREEN_CHARS characters)."""
        return self._text

    def feed(self, data: bytes) -> None:
        """Take in the next chunk of output; sequences and characters split across chunks
        are joined first."""
        text = self._carry + self._decoder.decode(data)
        held = _UNFINISHED.search(text, max(0, len(text) - _HOLD))
        cut = len(text) if held is None else held.start()
        self._carry = text[cut:]
        self._text += clean(text[:cut])
        over = len(self._text) - self._limit
        if over > 0:
            self._text = self._text[over:]
            self._mark = max(0, self._mark - over)

    def take(self, rules: Sequence[Respond]) -> Prompt | None:
        """The first rule, in order, whose pattern occurs after the mark; the mark moves to
        the end of that match, so the same output never answers a rule twice. A match of no
        characters counts as none (it would match forever)."""
        for index, rule in enumerate(rules):
            span = patterns.find(rule.expect, self._text, self._mark)
            if span is None or span[0] == span[1]:
                continue
            self._mark = span[1]
            return Prompt(index=index, rule=rule, lines=self._lines(*span))
        return None

    def _lines(self, start: int, end: int) -> str:
        """The non-blank lines from the one `start` is on to the one `end` closes."""
        first = self._text.rfind("\n", 0, start) + 1
        last = end - 1 if self._text[end - 1] == "\n" else end
        stop = self._text.find("\n", last)
        return _nonblank(self._text[first : len(self._text) if stop < 0 else stop])

    def last_lines(self, count: int = QUESTION_LINES) -> str:
        """The last `count` non-blank lines, as a stalled prompt's question."""
        lines = _nonblank(self._text).split("\n")
        return "\n".join(lines[-count:])


def _nonblank(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n") if line.strip())
