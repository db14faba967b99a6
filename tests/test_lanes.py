"""Path lanes: touches globs, their rendering, and whether two of them share a path.

The reference matcher below translates a glob to `re` by the rules of freq/lanes.py's
docstring, independently of its automaton; the property tests hold overlap to it.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freq.errors import FreqError
from freq.lanes import (
    MAX_GLOB,
    LaneProblem,
    explore,
    first_overlap,
    glob_problem,
    overlap,
    render,
    witness,
)

# ------------------------------------------------------------------ reference matcher


def _segment_re(seg: str) -> str:
    out = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = seg.index("]", i + 2)
            body = seg[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append(("[^/" if negate else "[") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _reference(glob: str) -> re.Pattern[str]:
    """The glob as a regex over `path + "/"`, by the documented rules."""
    text = glob
    while text.startswith(("/", "./")):
        text = text[1:] if text.startswith("/") else text[2:]
    segs = [s for s in text.split("/") if s not in ("", ".")]
    if text.endswith("/") or not any(c in text for c in "*?["):
        segs.append("**")
    rx = "".join("(?:[^/]+/)*" if s == "**" else _segment_re(s) + "/" for s in segs)
    return re.compile(rx)


def matches(glob: str, path: str) -> bool:
    """Whether the reference matcher says `glob` matches the concrete `path`."""
    assert path and all(path.split("/")), path
    return _reference(glob).fullmatch(path + "/") is not None


# ------------------------------------------------------------------ cases


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("src/api/**", "src/web/**", False),  # disjoint folders
        ("src/**", "src/api/**", True),  # nested folders
        ("src/api/**", "src/**", True),
        ("**/test_*.py", "src/**", True),  # ** on both sides
        ("**", "docs/a.md", True),
        ("**/b", "a/**", True),  # a/b
        ("a/**/b", "a/b", True),  # ** is zero segments too
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/*/c", False),
        ("a/**/b", "a/x/c", True),  # a/x/c/b: a literal covers what is under it
        ("*.md", "docs/a.md", False),  # * stays in its segment: top level only
        ("*.md", "README.md", True),
        ("**/*.md", "docs/a.md", True),
        ("docs/*.md", "docs/x/a.md", False),
        ("docs/*.md", "docs/*.txt", False),
        ("docs/*.md", "docs/a*", True),
        ("a*b*c", "*c*", True),
        ("*a", "b*", True),  # ba
        ("a?", "?b", True),
        ("a?", "a", False),  # a covers a/..., a? is a two-character name at the top
        ("a?", "a/b", False),
        ("??", "???", False),
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[!a]x", "ax", False),
        ("[!a]x", "?x", True),
        ("[ab][cd]", "[bc][de]", True),  # bd
        ("[ab]*", "[cd]*", False),
        ("[]]", "]", True),  # ] first in a class is a member
        ("[a-]", "-", True),
        ("src/api", "src/api/x.py", True),  # a literal covers what is under it
        ("src/api", "src/api", True),
        ("src/api", "src/apix", False),
        ("src/api", "src/**", True),
        ("src/api", "src/*/x", True),
        ("src/", "src/a/b", True),  # a trailing slash is /**
        ("src/", "srcx", False),
        ("src/*", "src", True),  # src/x: the literal src covers what is in it
        ("src/*", "src/?*/x", False),  # src/* names what is in src, no deeper
        ("src/*", "src/a/b", False),
        ("./src/a", "/src/a", True),
        ("a//b", "a/b", True),
        ("a/./b", "a/b/c", True),
        ("package.json", "package.json", True),
        ("package.json", "*.json", True),
        ("apps/**", "apps", True),  # a/** includes a itself (erring to overlap)
    ],
)
def test_overlap_table(a: str, b: str, expected: bool) -> None:
    """Each pair overlaps as the documented semantics say, in either order, and a witness
    is a path both match."""
    assert overlap(a, b) is expected
    assert overlap(b, a) is expected
    found = witness(a, b)
    assert (found is not None) is expected
    if found is not None:
        assert matches(a, found)
        assert matches(b, found)


def test_witness_is_a_short_readable_path() -> None:
    """The witness prefers `a` where any character does."""
    assert witness("**", "**") == "a"
    assert witness("src/", "src/api/x.py") == "src/api/x.py"
    assert witness("a/**/b", "**/b") == "a/b"
    assert witness("[!a]x", "?x") == "!x"


def test_first_overlap_is_the_first_pair_in_order() -> None:
    """first_overlap scans a's globs in order, each against b's in order."""
    assert first_overlap(["docs/**", "src/a/**", "src/b"], ["src/*/x", "docs/a.md"]) == (
        "docs/**",
        "docs/a.md",
    )
    assert first_overlap(["src/a/**", "src/b"], ["src/*/x"]) == ("src/a/**", "src/*/x")
    assert first_overlap(["a/**"], ["b/**", "c"]) is None
    assert first_overlap([], ["**"]) is None


# ------------------------------------------------------------------ rendering


def test_render_substitutes_subject_and_data() -> None:
    """{subject} and {data.KEY} are replaced; {{ and }} are braces."""
    assert render(
        ["apps/{subject}/**", "docs/{data.page}.md", "x/{{y}}"], "web", {"page": "intro"}
    ) == ("apps/web/**", "docs/intro.md", "x/{y}")


def test_a_subject_with_metacharacters_keeps_to_its_lane() -> None:
    """A subject named `a*` is quoted: its lane is the one path `apps/a*`, not every `a…`."""
    (lane,) = render(["apps/{subject}/**"], "a*", {})
    assert lane == "apps/a[*]/**"
    assert not overlap(lane, "apps/ab/x")
    assert overlap(lane, "apps/a*/x")
    (lane,) = render(["apps/{subject}"], "a?[b]", {})
    assert lane == "apps/a[?][[]b]"
    assert overlap(lane, "apps/a?[[]b]/deep/file")  # still a literal: covers what is under it
    assert not overlap(lane, "apps/ab")
    assert not overlap(lane, "apps/a?b")


def test_a_slash_in_a_value_is_a_separator() -> None:
    """A value may name a folder; it narrows the lane, never widens it."""
    (lane,) = render(["apps/{subject}/**"], "x/y", {})
    assert lane == "apps/x/y/**"
    assert overlap(lane, "apps/x/y/z")
    assert not overlap(lane, "apps/x/z")
    assert render(["{data.dir}"], "s", {"dir": "src/api"}) == ("src/api",)


def test_a_missing_data_key_is_a_lane_problem() -> None:
    """The subject lacks a key the glob names: one line saying which."""
    with pytest.raises(LaneProblem) as exc:
        render(["docs/{data.page}.md"], "s", {"other": "x"})
    assert exc.value.message == (
        "touches glob 'docs/{data.page}.md': the subject has no data key 'page'"
    )
    assert exc.value.code == "lanes"
    assert isinstance(exc.value, FreqError)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("../etc", "is not a relative path (it has an empty, '.' or '..' part)"),
        (".", "is not a relative path (it has an empty, '.' or '..' part)"),
        ("/abs", "is not a relative path (it has an empty, '.' or '..' part)"),
        ("a//b", "is not a relative path (it has an empty, '.' or '..' part)"),
        ("a\0", "has a NUL character"),
    ],
)
def test_a_value_that_is_not_a_relative_path_is_refused(value: str, reason: str) -> None:
    """An empty value, or one with `..`, `.` or empty parts, could widen or leave the lane."""
    with pytest.raises(LaneProblem) as exc:
        render(["apps/{subject}/**"], value, {})
    assert exc.value.message == (
        f"touches glob 'apps/{{subject}}/**': {{subject}} is {value!r}, which {reason}"
    )


def test_render_refuses_a_bad_glob() -> None:
    """render checks each glob as glob_problem does."""
    with pytest.raises(LaneProblem) as exc:
        render(["ok/**", "a/../b"], "s", {})
    assert exc.value.message == (
        "touches glob 'a/../b' has a '..' segment (touches stay inside the repository)"
    )


def test_a_rendered_glob_too_long_is_refused() -> None:
    """Values count towards the length bound (a quoted character counts once)."""
    assert render(["{subject}"], "*" * 900, {}) == ("[*]" * 900,)
    with pytest.raises(LaneProblem, match=r"renders as .*, which is longer than 1000 characters"):
        render(["{subject}/{subject}"], "a" * 600, {})


# ------------------------------------------------------------------ problems


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("", "'' is empty"),
        ("/", "'/' names no path (** is the whole repository)"),
        ("./", "'./' names no path (** is the whole repository)"),
        (".", "'.' names no path (** is the whole repository)"),
        ("a/../b", "'a/../b' has a '..' segment (touches stay inside the repository)"),
        ("..", "'..' has a '..' segment (touches stay inside the repository)"),
        ("a\0b", "'a\\x00b' has a NUL character"),
        ("src/[ab", "'src/[ab' has a '[' that is not closed (a class cannot hold '/')"),
        ("src/[a/b]", "'src/[a/b]' has a '[' that is not closed (a class cannot hold '/')"),
        ("[]", "'[]' has a '[' that is not closed (a class cannot hold '/')"),
        ("[!]", "'[!]' has a '[' that is not closed (a class cannot hold '/')"),
        ("[z-a]", "'[z-a]' has a reversed range z-a"),
        ("[!\x01-\U0010ffff]", "'[!\\x01-\\U0010ffff]' has a class that matches no character"),
        (
            "a/{step}",
            "'a/{step}': {step} cannot be used in touches (use {subject} or {data.KEY})",
        ),
        ("a/{}", "'a/{}': {} cannot be used in touches (use {subject} or {data.KEY})"),
        ("a/{data.x!r}", "'a/{data.x!r}': {data.x} may not have a conversion or format spec"),
        ("a/{", "'a/{': Single '{' encountered in format string"),
        ("a" * 1001, f"{'a' * 20!r}... is longer than 1000 characters (1001)"),
        ("{subject}/..", "'{subject}/..' has a '..' segment (touches stay inside the repository)"),
    ],
)
def test_glob_problems(glob: str, problem: str) -> None:
    """Each bad glob is refused with one exact line."""
    assert glob_problem(glob) == problem


@pytest.mark.parametrize(
    "glob",
    [
        "src/api/**",
        "apps/{subject}/**",
        "docs/*.md",
        "package.json",
        "docs/{data.page}.md",
        "./x",
        "/x/",
        "**",
        "a\\b",
        "[*]",
        "x/{{literal}}",
        "a" * MAX_GLOB,
    ],
)
def test_good_globs_have_no_problem(glob: str) -> None:
    """Ordinary globs and templates pass."""
    assert glob_problem(glob) is None


def test_overlap_refuses_a_bad_glob() -> None:
    """overlap is given rendered globs; a bad one is a LaneProblem, not a guess."""
    with pytest.raises(LaneProblem, match=r"^touches glob 'a/\.\.' has a '\.\.' segment"):
        overlap("a/..", "a")


# ------------------------------------------------------------------ hostile globs


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("*" * 500, "a*" * 500, True),
        ("*a" * 100, "a*" * 100, True),
        ("a*" * 30 + "b", "a" * 60, False),  # exponential for a backtracking matcher
        ("**/a/" * 200, "a/**/" * 200, True),
        ("*/" * 500, "**/" * 333, True),
        ("?" * 999, "*" * 999, True),
    ],
)
def test_hostile_globs_explore_a_bounded_number_of_states(a: str, b: str, expected: bool) -> None:
    """The product search visits at most 4 * (len(a) + 2) * (len(b) + 2) states (each
    pair of positions twice, each distinct pair of segment patterns once), whatever the
    globs are; measured as states, not time."""
    found = explore(a, b)
    assert found.states <= 4 * (len(a) + 2) * (len(b) + 2)
    assert (found.witness is not None) is expected


def test_runs_of_stars_collapse() -> None:
    """500 stars are one star: the search stays tiny."""
    assert explore("*" * 500, "a*" * 500).states < 5000


# ------------------------------------------------------------------ properties

_TOKENS = ["a", "b", "/", "*", "?", "**"]
_CLASSES = ["[ab]", "[!a]", "[a-b]"]
# every path of one to three segments, each one or two of {a, b}
_SEGMENTS = ["".join(p) for n in (1, 2) for p in itertools.product("ab", repeat=n)]
PATHS = ["/".join(p) for n in (1, 2, 3) for p in itertools.product(_SEGMENTS, repeat=n)]

globs = st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=7).map("".join)
class_globs = st.lists(st.sampled_from(_TOKENS + _CLASSES), min_size=1, max_size=6).map("".join)
segments = st.text(alphabet="ab", min_size=1, max_size=4)
paths = st.lists(segments, min_size=1, max_size=5).map("/".join)


def _check(a: str, b: str, drawn: list[str]) -> None:
    if glob_problem(a) is not None or glob_problem(b) is not None:
        return
    found = witness(a, b)
    common = [p for p in PATHS + drawn if matches(a, p) and matches(b, p)]
    if common:  # soundness: a shared path means overlap
        assert found is not None, (a, b, common[0])
    if found is not None:  # exactness: overlap shows a path both match
        assert all(found.split("/")), found
        assert matches(a, found), (a, b, found)
        assert matches(b, found), (a, b, found)
    assert overlap(b, a) is (found is not None)


@settings(max_examples=400, deadline=None)
@given(globs, globs, st.lists(paths, max_size=5))
def test_overlap_is_sound_and_exact(a: str, b: str, drawn: list[str]) -> None:
    """Over globs of {a, b, /, *, ?, **}: a path both match means overlap, and overlap
    comes with a witness path both match (by the reference matcher)."""
    _check(a, b, drawn)


@settings(max_examples=200, deadline=None)
@given(class_globs, class_globs, st.lists(paths, max_size=5))
def test_overlap_is_sound_and_exact_with_classes(a: str, b: str, drawn: list[str]) -> None:
    """The same with multi-character classes, which overlap intersects exactly."""
    _check(a, b, drawn)


@given(globs)
def test_a_glob_overlaps_itself_or_is_refused(a: str) -> None:
    """Every valid glob matches some path, so it overlaps itself."""
    if glob_problem(a) is None:
        assert overlap(a, a)
