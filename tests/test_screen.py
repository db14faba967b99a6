"""The screen text respond rules read: escape stripping across chunks, the answered mark."""

from __future__ import annotations

import pytest

from freq.model import Respond, RespondAs
from freq.screen import QUESTION_LINES, Screen, clean


def _screen(*chunks: bytes, limit: int | None = None) -> Screen:
    screen = Screen() if limit is None else Screen(limit)
    for chunk in chunks:
        screen.feed(chunk)
    return screen


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("\x1b[1;33mbold\x1b[0m plain", "bold plain"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("\x1b]0;title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1b[?25l\x1b[2K\x1b(Bhidden cursor", "hidden cursor"),
        ("top\x1b[5;1Hbottom", "top\nbottom"),
        ("word\x1b[3Cnext", "word next"),
        ("bell\x07 back\x08space\ttab", "bell backspace\ttab"),
    ],
)
def test_clean_drops_escapes_and_controls(raw: str, text: str) -> None:
    """Colours, titles, hyperlinks and modes vanish; a row move is a line break, a move
    right a space; CR and CRLF are line breaks; other controls go."""
    assert clean(raw) == text


def test_pieces_split_across_chunks_are_joined() -> None:
    """An escape sequence, a UTF-8 character and a CRLF cut between two reads come out whole."""
    screen = _screen(b"\x1b[3", b"1mred\x1b", b"[0m caf\xc3", b"\xa9\r", b"\nnext")
    assert screen.text == "red caf\u00e9\nnext"


def test_an_escape_that_never_finishes_is_not_held_forever() -> None:
    """An ESC followed by text that cannot be a sequence is dropped, and the text kept."""
    assert _screen(b"a\x1b\xc3\xa9b").text == "a\u00e9b"


def test_the_first_rule_in_order_wins_and_the_match_is_answered() -> None:
    """Rules are tried in order; after a match only later output can match again."""
    rules = [
        Respond(expect=r"\[y/N\]", as_=RespondAs.NEEDS_HUMAN),
        Respond(expect="cred", send="y"),
    ]
    screen = _screen(b"Out of credits? [y/N] ")
    first = screen.take(rules)
    assert first is not None and (first.index, first.lines) == (0, "Out of credits? [y/N]")
    assert screen.take(rules) is None
    screen.feed(b"n\r\nOut of credits? [y/N] ")
    again = screen.take(rules[1:])
    assert again is not None and again.rule.send == "y"


def test_the_question_is_every_line_the_match_touches() -> None:
    """A match over two lines gives both, whole, without the blank ones."""
    screen = _screen(b"before\r\nWorkspace out of\r\n\r\ncredits, request more? [y/N]")
    got = screen.take([Respond(expect=r"out of\s+credits", as_=RespondAs.NEEDS_HUMAN)])
    assert got is not None and got.lines == "Workspace out of\ncredits, request more? [y/N]"


def test_a_pattern_matching_nothing_never_matches() -> None:
    """A rule whose match is empty would match forever; it counts as no match."""
    assert _screen(b"anything").take([Respond(expect="x*", send="y")]) is None


def test_line_start_after_the_mark_is_a_real_line_start() -> None:
    """`^` does not match at the mark in the middle of a line."""
    screen = _screen(b"ask? go")
    assert screen.take([Respond(expect=r"ask\?", send="y")]) is not None
    assert screen.take([Respond(expect="^ go", send="y")]) is None


def test_old_output_is_dropped_and_the_mark_follows() -> None:
    """Only the last `limit` characters are kept; the answered mark moves with them."""
    screen = _screen(b"0123456789 ask?", limit=10)
    assert screen.text == "56789 ask?"
    assert screen.take([Respond(expect=r"ask\?", send="y")]) is not None
    screen.feed(b" ask?")
    assert screen.text == " ask? ask?"
    assert screen.take([Respond(expect=r"ask\?", send="y")]) is not None
    assert screen.take([Respond(expect=r"ask\?", send="y")]) is None


def test_last_lines_are_the_last_non_blank_ones() -> None:
    """A stalled prompt's question: the last QUESTION_LINES lines with text, right-trimmed."""
    lines = b"".join(b"line %d  \r\n\r\n" % i for i in range(20))
    screen = _screen(lines, b"\x1b[1mProceed? \x1b[0m")
    want = [f"line {i}" for i in range(20 - QUESTION_LINES + 1, 20)] + ["Proceed?"]
    assert screen.last_lines() == "\n".join(want)
