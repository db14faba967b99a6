"""Ref component names (factory, subject, lock): the one-match check a snapshot makes for
every name agrees with the rules checked one by one, which give the reasons."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from freq.model import _GOOD_NAME, _name_fault, name_problem

NAMEISH = st.text(alphabet=st.sampled_from("ab9_.-+@/\n :lock"), max_size=12) | st.text(
    max_size=210
)


@settings(max_examples=400)
@given(name=NAMEISH)
def test_the_one_match_and_the_rules_agree(name: str) -> None:
    assert (_GOOD_NAME.fullmatch(name) is not None) == (_name_fault(name) is None)


def test_names_at_the_edges_of_the_rules() -> None:
    assert name_problem("app-1") is None
    assert name_problem("a" * 200) is None
    assert name_problem("a" * 201) == "is longer than 200 characters"
    assert name_problem("") == "is empty"
    assert name_problem("a..b") == "must not contain '..' or end with '.' or '.lock'"
    assert name_problem("x.lock") == "must not contain '..' or end with '.' or '.lock'"
    assert name_problem(".x") is not None and name_problem("-x") is not None
    assert name_problem("a/b") is not None  # one component only


def test_a_trailing_newline_is_no_name() -> None:
    """`$` matches before a final newline: the rules match the whole name instead."""
    assert name_problem("app\n") is not None
    assert _name_fault("app\n") is not None


REFISH = st.builds(
    lambda a, b: f"refs/frequency/subjects/{a}{b}",
    NAMEISH,
    st.sampled_from(["", "/x", "/x/y", "/..", "/ok.lock", "/a\n"]),
)


@settings(max_examples=400)
@given(ref=REFISH | st.text(max_size=60))
def test_a_subject_ref_is_two_valid_names_after_the_prefix(ref: str) -> None:
    """refs.parse_subject_ref's one match agrees with its rule spelt out: split on "/",
    two parts, each accepted by name_problem."""
    from freq import refs

    want = None
    if ref.startswith(refs.SUBJECTS):
        parts = ref[len(refs.SUBJECTS) :].split("/")
        if len(parts) == 2 and not any(name_problem(p) for p in parts):
            want = (parts[0], parts[1])
    assert refs.parse_subject_ref(ref) == want
