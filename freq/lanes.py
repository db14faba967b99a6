"""Path lanes: whether two steps' `touches:` globs can name the same path, so that two
attempts editing the same files never run at the same time.

Pure: imports only the standard library, freq.model and freq.errors. No re, fnmatch or glob
(a lint contract says so): globs are matched by hand, so a hostile glob costs time
polynomial in its length (at most MAX_GLOB characters), never a backtracking blow-up.

Glob semantics, over paths relative to the repository root, matched as a whole:

- `*` is any run of characters inside one segment, `?` one character, `[abc]`, `[a-z]`,
  `[!x]` one character of a class (`]` first in a class is a member, `-` first or last
  too); none of them matches `/`. `**` elsewhere than as a whole segment is `*`.
- `**` as a whole segment is zero or more whole segments: `a/**` is `a` itself and
  everything under it, `**/b` is `b` at any depth, `a/**/b` includes `a/b`.
- A trailing `/` means the folder and everything under it: `src/` is `src/**`.
- A glob that matches one path only (no `*`, `?`, `**`, or class of more than one
  character) names that path and, should it be a folder, everything under it: `src/api`
  is `src/api/**`. A step that declares a folder edits what is in it; a file has nothing
  under it, so the rule costs nothing for files.
- Leading `./` and `/` are dropped, `//` is `/`, `.` segments are dropped; `..` segments,
  empty globs, NUL, an unclosed `[`, a reversed range and a class matching nothing are
  problems. `\\` is an ordinary character (no escapes: render quotes as `[*]`).
- Slashless globs are not special: `*.md` is the top level's only, `**/*.md` any depth.

Written globs are templates (`{subject}`, `{data.KEY}`; `{{` and `}}` are braces);
`render` substitutes them, quoting every `*`, `?` and `[` of a value as a one-character
class, so a subject named `a*` keeps to its own lane; a `/` in a value stays a separator,
so `{data.dir}` may name a folder. `overlap` and `explore` take rendered globs, in which
braces are ordinary characters.

overlap is exact over paths whose segments are non-empty and free of `/` and NUL: it
searches the product of the two globs' automata (states: a position in each glob and
whether a character, or a segment, was read yet), once over segments and, for each pair of
segment patterns it meets, once over characters; classes are sets of code point ranges,
intersected exactly. It does not exclude segments git never stores (`.`, `..`), so `.?`
and `?.` overlap (on `..`); erring that way only serialises two steps that need not be.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from freq.errors import FreqError
from freq.model import render_template, template_problem

# characters of a written glob; of a rendered one, parts (a character, class, `*` or `/`)
MAX_GLOB = 1000


class LaneProblem(FreqError):
    """A `touches:` glob that cannot be rendered or matched."""

    code = "lanes"


# A class is a tuple of sorted, disjoint, non-adjacent inclusive code point ranges; None in
# a segment is `*`, None in a glob is `**`.
_Chars = tuple[tuple[int, int], ...]
_Segment = tuple[_Chars | None, ...]
_Glob = tuple[_Segment | None, ...]
_Item = TypeVar("_Item")

_SLASH = ord("/")
_TOP = 0x10FFFF
_ANY: _Chars = ((1, _SLASH - 1), (_SLASH + 1, _TOP))  # what `?` matches: not NUL, not /
_QUOTED = "*?["


class _Bad(ValueError):
    """Why a rendered glob cannot be parsed (the rest of a sentence naming the glob)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Exploration:
    """What deciding an overlap found: a path both globs match (None when they are
    disjoint) and how many product states the search visited. The states are at most
    4 * (len(a) + 2) * (len(b) + 2): each pair of positions in the globs is visited at most
    twice, and each distinct pair of segment patterns met is searched once."""

    witness: str | None
    states: int


# ------------------------------------------------------------------ character classes


def _normal(ranges: list[tuple[int, int]]) -> _Chars:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _meet(x: _Chars, y: _Chars) -> _Chars:
    out = []
    i = j = 0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _complement(x: _Chars) -> _Chars:
    out = []
    start = 0
    for lo, hi in x:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _TOP:
        out.append((start, _TOP))
    return tuple(out)


def _pick(x: _Chars) -> str:
    """One member of a non-empty class, readable when it can be: `a`, else the first
    printable one."""
    if any(lo <= ord("a") <= hi for lo, hi in x):
        return "a"
    for lo, hi in x:
        if hi > ord(" "):
            return chr(max(lo, ord(" ") + 1))
    return chr(x[0][0])


def _class(raw: str, start: int) -> tuple[_Chars, int]:
    """The class opening at raw[start] (a `[`) and the index after its `]`."""
    i = start + 1
    negate = raw[i : i + 1] == "!"
    i += negate
    ranges = []
    first = True
    while True:
        if i >= len(raw):
            raise _Bad("has a '[' that is not closed (a class cannot hold '/')")
        c = raw[i]
        if c == "]" and not first:
            break
        first = False
        if i + 2 < len(raw) and raw[i + 1] == "-" and raw[i + 2] != "]":
            lo, hi = raw[i], raw[i + 2]
            if lo > hi:
                raise _Bad(f"has a reversed range {lo}-{hi}")
            ranges.append((ord(lo), ord(hi)))
            i += 3
        else:
            ranges.append((ord(c), ord(c)))
            i += 1
    chars = _normal(ranges)
    chars = _meet(_complement(chars) if negate else chars, _ANY)
    if not chars:
        raise _Bad("has a class that matches no character")
    return chars, i + 1


# ------------------------------------------------------------------ parsing


def _segment(raw: str) -> _Segment:
    out: list[_Chars | None] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "*":
            if not out or out[-1] is not None:  # a run of stars is one star
                out.append(None)
            i += 1
        elif c == "?":
            out.append(_ANY)
            i += 1
        elif c == "[":
            chars, i = _class(raw, i)
            out.append(chars)
        else:
            out.append(((ord(c), ord(c)),))
            i += 1
    return tuple(out)


def _fixed(seg: _Segment | None) -> bool:
    """Whether the segment pattern matches one string only (a literal, `[*]` included)."""
    return seg is not None and all(t is not None and t == ((t[0][0], t[0][0]),) for t in seg)


@lru_cache(maxsize=4096)
def _compiled(glob: str) -> _Glob:
    """The parsed form of a rendered glob; raises _Bad."""
    if not glob:
        raise _Bad("is empty")
    if "\0" in glob:
        raise _Bad("has a NUL character")
    text = glob
    while text.startswith(("/", "./")):
        text = text[1:] if text[0] == "/" else text[2:]
    parts: list[_Segment | None] = []
    size = 0
    for raw in text.split("/"):
        if raw in ("", "."):
            continue
        if raw == "..":
            raise _Bad("has a '..' segment (touches stay inside the repository)")
        seg = None if raw == "**" else _segment(raw)
        size += 1 + (0 if seg is None else len(seg))
        if size > MAX_GLOB + 1:
            raise _Bad(f"is longer than {MAX_GLOB} characters")
        if not (seg is None and parts and parts[-1] is None):  # `**/**` is `**`
            parts.append(seg)
    if not parts:
        raise _Bad("names no path (** is the whole repository)")
    if (text.endswith("/") or all(_fixed(p) for p in parts)) and parts[-1] is not None:
        parts.append(None)
    return tuple(parts)


def _parsed(glob: str) -> _Glob:
    try:
        return _compiled(glob)
    except _Bad as exc:
        raise LaneProblem(f"touches glob {glob!r} {exc}") from None


# ------------------------------------------------------------------ templates


def _fields(glob: str) -> list[str]:
    """The template fields of `glob`, in order; ValueError when it is malformed."""
    return [name for _, name, _, _ in string.Formatter().parse(glob) if name is not None]


def glob_problem(glob: str) -> str | None:
    """Why `glob` cannot be a `touches:` glob as written (one line), or None when it can."""
    if len(glob) > MAX_GLOB:
        return f"{glob[:20]!r}... is longer than {MAX_GLOB} characters ({len(glob)})"
    try:
        names = _fields(glob)
    except ValueError:
        names = []
    for name in names:
        if name != "subject" and not name.startswith("data."):
            only = "(use {subject} or {data.KEY})"
            return f"{glob!r}: {{{name}}} cannot be used in touches {only}"
    if problem := template_problem(glob):
        return f"{glob!r}: {problem.removeprefix('prompt template: ')}"
    # every value render accepts is a relative path of named parts, as `x` is
    stand_in = render_template(
        glob, {"subject": "x"}, {n[5:]: "x" for n in names if n != "subject"}
    )
    try:
        _compiled(stand_in)
    except _Bad as exc:
        return f"{glob!r} {exc}"
    return None


def path_glob_problem(glob: str) -> str | None:
    """Why `glob` cannot be a plain path glob (`setup.when_changed`, given to git as a
    `:(glob)` pathspec: no templates, braces are characters), or None when it can."""
    if len(glob) > MAX_GLOB:
        return f"{glob[:20]!r}... is longer than {MAX_GLOB} characters ({len(glob)})"
    try:
        _compiled(glob)
    except _Bad as exc:
        return f"{glob!r} {exc}"
    return None


def _value_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if "\0" in value:
        return "has a NUL character"
    if any(part in ("", ".", "..") for part in value.split("/")):
        return "is not a relative path (it has an empty, '.' or '..' part)"
    return None


def _quote(value: str) -> str:
    return "".join(f"[{c}]" if c in _QUOTED else c for c in value)


def _render(glob: str, subject: str, data: Mapping[str, str]) -> str:
    if problem := glob_problem(glob):
        raise LaneProblem(f"touches glob {problem}")
    names = _fields(glob)
    for name in names:
        key = name[5:]
        if name != "subject" and key not in data:
            raise LaneProblem(f"touches glob {glob!r}: the subject has no data key {key!r}")
        value = subject if name == "subject" else data[key]
        if reason := _value_problem(value):
            raise LaneProblem(f"touches glob {glob!r}: {{{name}}} is {value!r}, which {reason}")
    quoted = {n[5:]: _quote(data[n[5:]]) for n in names if n != "subject"}
    rendered = render_template(glob, {"subject": _quote(subject)}, quoted)
    try:
        _compiled(rendered)
    except _Bad as exc:
        raise LaneProblem(f"touches glob {glob!r} renders as {rendered!r}, which {exc}") from None
    return rendered


def render(globs: Sequence[str], subject: str, data: Mapping[str, str]) -> tuple[str, ...]:
    """The globs with `{subject}` and `{data.KEY}` replaced by the subject's values, each
    glob metacharacter of a value quoted. Raises LaneProblem for a glob glob_problem
    refuses, a data key the subject lacks, or a value that is not a relative path."""
    return tuple(_render(glob, subject, data) for glob in globs)


# ------------------------------------------------------------------ overlap


class _Tally:
    def __init__(self) -> None:
        self.states = 0


def _product(
    a: Sequence[_Item | None],
    b: Sequence[_Item | None],
    meet: Callable[[_Item, _Item], str | None],
    member: Callable[[_Item], str],
    sep: str,
    tally: _Tally,
) -> str | None:
    """A string of units both patterns match, joined by `sep`, or None when none is.

    A pattern is a sequence of items, each matching one unit (a character, or a segment),
    and None matching zero or more units of any kind (`*`, or `**`); a match reads at least
    one unit. States are (position in a, position in b, read a unit yet), searched
    breadth first and each visited once: the product automaton of the two patterns.
    """
    start, end = (0, 0, False), (len(a), len(b), True)
    came: dict[tuple[int, int, bool], tuple[tuple[int, int, bool], str | None] | None]
    came = {start: None}
    queue = deque([start])
    meets: dict[tuple[_Item, _Item], str | None] = {}
    while queue and end not in came:
        state = queue.popleft()
        i, j, read = state
        moves: list[tuple[tuple[int, int, bool], str | None]] = []
        x = a[i] if i < len(a) else None
        y = b[j] if j < len(b) else None
        if i < len(a) and x is None:  # `*` or `**` reads nothing more
            moves.append(((i + 1, j, read), None))
        if j < len(b) and y is None:
            moves.append(((i, j + 1, read), None))
        if i < len(a) and j < len(b):  # both read the next unit
            if x is None:
                if y is None:
                    if not read:
                        moves.append(((i, j, True), "a"))
                else:
                    moves.append(((i, j + 1, True), member(y)))
            elif y is None:
                moves.append(((i + 1, j, True), member(x)))
            else:
                if (x, y) not in meets:
                    meets[x, y] = meet(x, y)
                if (unit := meets[x, y]) is not None:
                    moves.append(((i + 1, j + 1, True), unit))
        for nxt, unit in moves:
            if nxt not in came:
                came[nxt] = (state, unit)
                queue.append(nxt)
    tally.states += len(came)
    if end not in came:
        return None
    units = []
    at = end
    while (back := came[at]) is not None:
        at, unit = back
        if unit is not None:
            units.append(unit)
    return sep.join(reversed(units))


def _segment_meet(s: _Segment, t: _Segment, tally: _Tally) -> str | None:
    """A segment both segment patterns match, or None."""
    if None not in s and None not in t:  # no star: position by position
        tally.states += 1
        if len(s) != len(t):
            return None
        chars = [_meet(x, y) for x, y in zip(s, t, strict=True) if x is not None and y is not None]
        return "".join(_pick(c) for c in chars) if all(chars) else None
    return _product(s, t, _char_meet, _pick, "", tally)


def _char_meet(x: _Chars, y: _Chars) -> str | None:
    both = _meet(x, y)
    return _pick(both) if both else None


def _segment_member(s: _Segment) -> str:
    """A segment the pattern matches: its characters, stars read as nothing."""
    return "".join(_pick(t) for t in s if t is not None) or "a"


@lru_cache(maxsize=4096)
def explore(a: str, b: str) -> Exploration:
    """Decide whether two rendered globs share a path, and find one; LaneProblem for a
    glob that glob_problem would refuse. Cached: a worker asks about the same lanes on
    every planning cycle."""
    tally = _Tally()
    path = _product(
        _parsed(a),
        _parsed(b),
        lambda s, t: _segment_meet(s, t, tally),
        _segment_member,
        "/",
        tally,
    )
    return Exploration(witness=path, states=tally.states)


def witness(a: str, b: str) -> str | None:
    """A path both rendered globs match, or None when no path does."""
    return explore(a, b).witness


def overlap(a: str, b: str) -> bool:
    """Whether some path matches both rendered globs."""
    return explore(a, b).witness is not None


def first_overlap(a: Sequence[str], b: Sequence[str]) -> tuple[str, str] | None:
    """The first pair (a glob of `a`, a glob of `b`), in order, that overlaps, or None."""
    for x in a:
        for y in b:
            if overlap(x, y):
                return x, y
    return None
