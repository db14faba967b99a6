"""Diverged history made offline, replayed onto the remote's tips where it still applies.

Must not import click or subprocess. A ref both this repository and the remote moved since
they last agreed (work recorded offline: a `git freq` command run without `--remote`, or a
result kept while the remote was unreachable) is reconciled event by event, oldest first,
never forced and never dropped:

    subjects  a local event still applies when the remote's subject is, in every field
              that fences attempts (state, epoch, attempt, claim, landing), where the
              event's own parent was: it is then copied onto the remote's tip. The first
              event that does not apply stops the replay (the later ones build on it).
    dlq       entries are independent: every local entry is copied onto the remote's tip
              (a union of the two chains, as the DLQ is append-only).
    control   changes are copied onto the remote's tip in order (the last word wins).
    others    (locks, merge queues, lanes) are not replayed.

Whatever does not apply stays reachable at `refs/frequency/refused/<ref below
refs/frequency/>/<local tip>`, which the next exchange pushes, and is reported in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from freq import refs
from freq.errors import BrokenHistory, CorruptState, RefConflict
from freq.runtime import Subject
from freq.store import RefUpdate, Store

REFUSED = refs.ROOT + "refused/"
WALK_LIMIT = 10_000  # commits walked to find where the two sides last agreed


@dataclass(frozen=True, slots=True, kw_only=True)
class Replayed:
    """What replaying one diverged ref did."""

    ref: str
    applied: int = 0  # local events now on the remote
    refused: int = 0  # local events kept under refs/frequency/refused/
    kept: str | None = None  # where the refused ones are
    reason: str = ""  # why the first refused event no longer applies


def refused_ref(ref: str, tip: str) -> str:
    """Where the local events of `ref` that no longer apply are kept."""
    return f"{REFUSED}{ref[len(refs.ROOT) :]}/{tip[:12]}"


def _fencing(s: Subject) -> tuple[object, ...]:
    c = s.claim
    claim = None if c is None else (c.holder, c.epoch, c.step, c.attempt, c.expires_at)
    return (s.state, s.epoch, s.attempt, claim, s.landing)


def _local_events(store: Store, ref: str, local: str, remote: str) -> list[str] | None:
    """The local commits since the two sides last agreed, oldest first; None when no
    common commit is found within WALK_LIMIT (unrelated histories)."""
    theirs: set[str] = set()
    oid: str | None = remote
    while oid is not None and len(theirs) < WALK_LIMIT:
        theirs.add(oid)
        oid = store.first_parent(oid, ref)
    mine: list[str] = []
    oid = local
    while oid is not None and oid not in theirs:
        if len(mine) >= WALK_LIMIT:
            return None
        mine.append(oid)
        oid = store.first_parent(oid, ref)
    if oid is None and theirs:  # a root reached: they share nothing (both created offline)
        return None
    mine.reverse()
    return mine


def _applies(store: Store, ref: str, event: str, current: Subject) -> str | None:
    """Why local subject event `event` no longer applies onto `current`, or None."""
    parent = store.first_parent(event, ref)
    if parent is None:
        return "it created the subject, which the remote created too"
    before = store.subject_at(parent, ref)
    if _fencing(before) != _fencing(current):
        return (
            f"the remote moved it meanwhile (there: {current.state}, epoch {current.epoch}; "
            f"the event was made on {before.state}, epoch {before.epoch})"
        )
    return None


def replay(store: Store, ref: str, local: str, remote: str) -> Replayed:
    """Replay `ref`'s local events onto the remote's tip `remote` (see the module's doc),
    the store being in remote mode; RefConflict when the remote moved again meanwhile
    (the next exchange tries again)."""
    kind_subject = ref.startswith(refs.SUBJECTS)
    if not (kind_subject or ref.startswith((refs.DLQ, refs.CONTROL))):
        why = "its kind of ref is not replayed; resolve it by hand"
        return _keep(store, ref, local, remote, applied=0, refused=1, reason=why)
    try:
        events = _local_events(store, ref, local, remote)
    except (BrokenHistory, CorruptState) as exc:
        return _keep(store, ref, local, remote, applied=0, refused=1, reason=exc.message)
    if events is None:
        why = "the two histories share no commit"
        return _keep(store, ref, local, remote, applied=0, refused=1, reason=why)
    tip = remote
    applied = 0
    reason = ""
    current = store.subject_at(remote, ref) if kind_subject else None
    for event in events:
        if current is not None:
            problem = _applies(store, ref, event, current)
            if problem is not None:
                reason = problem
                break
        tip = store.restack(event, tip)
        applied += 1
        if current is not None:
            current = store.subject_at(event, ref)
    refused = len(events) - applied
    if applied:
        store.update([RefUpdate(ref, tip, remote)])  # pushed first: RefConflict if it moved
        store.follow([RefUpdate(ref, tip, local)])
    if refused:
        return _keep(store, ref, local, remote, applied=applied, refused=refused, reason=reason)
    if not applied:
        store.follow([RefUpdate(ref, remote, local)])
    return Replayed(ref=ref, applied=applied)


def _keep(
    store: Store, ref: str, local: str, remote: str, *, applied: int, refused: int, reason: str
) -> Replayed:
    """Keep the local tip reachable under refs/frequency/refused/ and push it there at
    once; the ref itself then follows the remote (or the replayed tip)."""
    kept = refused_ref(ref, local)
    if store.read_ref(kept) is None:
        store.follow([RefUpdate(kept, local, None)])
    if store.mirror is not None:  # shared at once: everyone sees what did not apply
        store.mirror.push_ahead({kept: local})
    if not applied:  # the remote's tip, fetched already: the local ref follows it
        store.follow([RefUpdate(ref, remote, local)])
    return Replayed(ref=ref, applied=applied, refused=refused, kept=kept, reason=reason)


def reconcile(store: Store, diverged: dict[str, tuple[str, str]]) -> list[Replayed]:
    """Replay every diverged ref; a ref the remote moved again meanwhile is left for the
    next exchange."""
    out: list[Replayed] = []
    for ref, (local, remote) in sorted(diverged.items()):
        try:
            out.append(replay(store, ref, local, remote))
        except RefConflict:
            continue
    return out
