"""Factory control state (pause, autonomy, approvals) as commits on refs/frequency/control/F.

Must not import click or subprocess; writes only through store, by compare-and-swap,
each change one commit with who and why, so `git log refs/frequency/control/<factory>`
is the record of every intervention. Workers read it with every snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from freq import refs
from freq.clock import Clock
from freq.errors import CorruptState, RefConflict
from freq.runtime import Control
from freq.store import Store

_CAS_ATTEMPTS = 50


def read_control(store: Store, factory: str) -> tuple[Control, str | None]:
    """The factory's control state and the tip it was read from (defaults if none)."""
    ref = refs.control_ref(factory)
    got = store.read_doc(ref, refs.CONTROL_FILE)
    if got is None:
        return Control(factory=factory), None
    return refs.control_from_json(got[0], where=ref), got[1]


def change_control(
    store: Store,
    clock: Clock,
    factory: str,
    change: Callable[[Control], Control],
    *,
    what: str,
    by: str,
    why: str,
) -> Control:
    """Apply `change` to the current control state and commit it by CAS (re-read on a race)."""
    for _ in range(_CAS_ATTEMPTS):
        try:
            current, tip = read_control(store, factory)
        except CorruptState:
            # an unreadable control ref is replaced (on top of it, so its history stays):
            # a change by hand is how a person repairs it, and what the planner tells them
            current, tip = Control(factory=factory), store.read_ref(refs.control_ref(factory))
        now = clock.now()
        new = replace(change(current), by=by, why=why, at=now)
        msg = refs.control_message(factory, what, by=by, why=why, at=now)
        try:
            store.write_doc(
                refs.control_ref(factory),
                {refs.CONTROL_FILE: refs.control_to_json(new)},
                msg,
                at=now,
                expected=tip,
            )
        except RefConflict:
            continue
        return new
    raise RefConflict(refs.control_ref(factory))
