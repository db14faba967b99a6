"""Where a broken chain can be mended from: freq/chains.py's pure part, table-tested."""

from __future__ import annotations

import pytest

from freq.chains import analyse, intact_base, kind_of
from freq.store import ChainLink


def _links(spec: str) -> list[ChainLink]:
    """One letter a commit, tip first: `o` whole, `t` its tree missing, `x` the commit
    missing (the walk stops there, so only last)."""
    out = []
    for i, c in enumerate(spec):
        oid = f"{i:040d}"
        parent = f"{i + 1:040d}" if i + 1 < len(spec) else None
        if c == "x":
            out.append(ChainLink(oid=oid, missing="commit", missing_oid=oid))
        elif c == "t":
            out.append(
                ChainLink(oid=oid, parent=parent, message="m", missing="tree", missing_oid="f" * 40)
            )
        else:
            out.append(ChainLink(oid=oid, parent=parent, message="m"))
    return out


@pytest.mark.parametrize(
    ("spec", "base"),
    [
        ("ooo", 0),  # whole
        ("oto", 2),  # a tree missing in the middle: the commit below it is the base
        ("too", 1),  # the tip's tree missing: its parent is the base
        ("oot", None),  # the root itself broken: nothing is intact down to a root
        ("oox", None),  # a missing commit: what lay below it cannot be found
        ("x", None),  # the tip itself missing
        ("otot", None),
        ("tooto", 4),
    ],
)
def test_the_base_is_the_newest_commit_below_which_the_chain_is_intact(
    spec: str, base: int | None
) -> None:
    """intact_base over a chain of links, tip first."""
    assert intact_base(_links(spec)) == base


def test_analyse_says_what_a_repair_drops_and_what_was_missing() -> None:
    """A whole chain is no Break; a broken one names its base, the commits a repair drops
    (newest first, the broken ones included) and the missing objects once each."""
    assert analyse("refs/frequency/subjects/f/a", "0" * 40, _links("ooo")) is None
    brk = analyse("refs/frequency/subjects/f/a", "0" * 40, _links("ototo"))
    assert brk is not None
    assert brk.base == f"{4:040d}"
    assert [link.oid for link in brk.lost] == [f"{i:040d}" for i in range(4)]
    assert brk.missing == ("f" * 40,)
    assert not brk.unknown_below
    at = f"{1:040d}"[:12]
    assert brk.problem.message == (
        f"refs/frequency/subjects/f/a: history broken at {at} (its tree ffffffffffff is "
        "missing: git gc --prune=now removed it?)"
    )
    gone = analyse("refs/frequency/dlq/f", "0" * 40, _links("ox"))
    assert gone is not None and gone.base is None and gone.unknown_below
    assert gone.kind == "dlq"


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("refs/frequency/subjects/build/app-1", "subject"),
        ("refs/frequency/subjects/build/app/deeper", "other"),
        ("refs/frequency/dlq/build", "dlq"),
        ("refs/frequency/locks/branch%3Amain", "lock"),
        ("refs/frequency/control/build", "control"),
        ("refs/frequency/caps/global/0", "cap"),
        ("refs/frequency/archive/build", "other"),
    ],
)
def test_kind_of_a_ref(ref: str, kind: str) -> None:
    """What mending a ref goes by is its place under refs/frequency/."""
    assert kind_of(ref) == kind
