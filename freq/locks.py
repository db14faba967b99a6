"""Named locks and cap semaphores as compare-and-swap commits on refs (SPEC §3, §5).

Must not import click or subprocess; writes only through store. Two kinds of ref:

- `refs/frequency/locks/<name>`: an exclusive lock. Acquire, renew, release, steal and
  break are commits, so `git log` of the ref is the lock's history. A lock whose holder
  stopped renewing is stale after its TTL and may be stolen (recorded with the old holder).
- `refs/frequency/caps/<scope>`: a counting semaphore for one cap (global `max_parallel`,
  a factory's or a step's `max_parallel`, a state's WIP limit). Its tree lists holders,
  but a holder counts only while it is *live*, which is derived from the holder
  subject's own ref (its claim carries the same epoch and has not expired, or for a WIP
  cap it sits in the state); so a crashed holder can never leak a slot, and no count is
  ever stored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from freq import refs
from freq.clock import Clock
from freq.errors import CorruptState, FreqError, RefConflict
from freq.model import Lock, Subject
from freq.store import Store

_CAS_ATTEMPTS = 50


class LockHeld(FreqError):
    """A named lock is held by someone else."""

    code = "lock-held"
    retryable = True


def lock_is_free(lock: Lock | None, now: datetime) -> bool:
    """Free: never taken, released, or past its expiry (stale: may be stolen)."""
    return lock is None or not lock.held_at(now)


# ---------------------------------------------------------------- named locks


@dataclass(slots=True)
class HeldLock:
    """A lock this worker holds, with the tip it last wrote (for CAS renew/release)."""

    lock: Lock
    tip: str


class Locks:
    """Acquire, renew, release, steal and break named locks."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def read(self, name: str) -> tuple[Lock | None, str | None]:
        """The lock as its ref's tip says, and that tip."""
        ref = refs.lock_ref(name)
        got = self.store.read_doc(ref, refs.LOCK_FILE)
        if got is None:
            return None, None
        raw, tip = got
        return refs.lock_from_json(raw, where=ref), tip

    def all(self) -> list[Lock]:
        """Every lock ref's latest state (released ones included)."""
        out = []
        for ref, oid in sorted(self.store.list_refs(refs.LOCKS).items()):
            try:
                out.append(
                    refs.lock_from_json(self.store.doc_at(oid, refs.LOCK_FILE, ref), where=ref)
                )
            except CorruptState:
                continue
        return out

    def acquire_all(
        self, specs: Sequence[tuple[str, timedelta]], *, holder: str, subject: str, epoch: int
    ) -> list[HeldLock]:
        """Take every lock or none, in name order (no deadlock); LockHeld names the first
        that is held by someone else, after releasing any taken here."""
        held: list[HeldLock] = []
        try:
            for name, ttl in sorted(set(specs)):
                held.append(self._acquire(name, ttl, holder=holder, subject=subject, epoch=epoch))
        except (LockHeld, RefConflict):
            self.release_all(held)
            raise
        return held

    def _acquire(
        self, name: str, ttl: timedelta, *, holder: str, subject: str, epoch: int
    ) -> HeldLock:
        ref = refs.lock_ref(name)
        current, tip = self.read(name)
        now = self.clock.now()
        if not lock_is_free(current, now):
            assert current is not None
            raise LockHeld(
                f"lock {name!r} is held by {current.holder} until {refs.iso(current.expires_at)}",
                hint=f"wait, or run `git freq locks break {name} --reason ...`",
            )
        lock = Lock(
            name=name,
            holder=holder,
            subject=subject,
            epoch=epoch,
            acquired_at=now,
            ttl=ttl,
            expires_at=now + ttl,
        )
        stale = current is not None and not current.released
        what = "steal" if stale else "acquire"
        msg = refs.lock_message(
            lock,
            what,
            previous=current if stale else None,
            reason=f"expired at {refs.iso(current.expires_at)}" if stale and current else None,
        )
        new_tip = self.store.write_doc(
            ref, {refs.LOCK_FILE: refs.lock_to_json(lock)}, msg, at=now, expected=tip
        )
        return HeldLock(lock=lock, tip=new_tip)

    def renew(self, held: HeldLock) -> bool:
        """Extend a held lock by its TTL; False when it expired, or was stolen or broken."""
        now = self.clock.now()
        if held.lock.expires_at <= now:
            return False  # stale: it may be stolen at any moment, so it is not ours to extend
        lock = replace(held.lock, expires_at=now + held.lock.ttl)
        try:
            held.tip = self.store.write_doc(
                refs.lock_ref(lock.name),
                {refs.LOCK_FILE: refs.lock_to_json(lock)},
                refs.lock_message(lock, "renew"),
                at=now,
                expected=held.tip,
            )
        except RefConflict:
            return False
        held.lock = lock
        return True

    def hold(self, name: str, *, until: datetime, holder: str, reason: str) -> None:
        """Hold a lock for everyone until `until` (a quota): extends, never shortens, a hold."""
        ref = refs.lock_ref(name)
        for _ in range(_CAS_ATTEMPTS):
            current, tip = self.read(name)
            now = self.clock.now()
            if current is not None and current.held_at(now) and current.expires_at >= until:
                return
            lock = Lock(
                name=name,
                holder=holder,
                subject="",
                epoch=0,
                acquired_at=now,
                ttl=until - now,
                expires_at=until,
            )
            msg = refs.lock_message(lock, "hold", reason=reason)
            try:
                self.store.write_doc(
                    ref, {refs.LOCK_FILE: refs.lock_to_json(lock)}, msg, at=now, expected=tip
                )
            except RefConflict:
                continue
            return
        raise RefConflict(ref)

    def release_all(self, held: Sequence[HeldLock]) -> None:
        """Release locks this worker holds; one already taken over is left to its new holder."""
        for h in held:
            now = self.clock.now()
            lock = replace(h.lock, released=True, expires_at=now)
            try:
                h.tip = self.store.write_doc(
                    refs.lock_ref(lock.name),
                    {refs.LOCK_FILE: refs.lock_to_json(lock)},
                    refs.lock_message(lock, "release"),
                    at=now,
                    expected=h.tip,
                )
            except RefConflict:
                continue

    def break_lock(self, name: str, *, who: str, reason: str) -> Lock:
        """Release a lock by hand, whoever holds it (recorded with who and why)."""
        for _ in range(_CAS_ATTEMPTS):
            current, tip = self.read(name)
            if current is None:
                raise FreqError(f"no lock named {name!r}", hint="see `git freq locks --all`")
            now = self.clock.now()
            broken = replace(current, released=True, expires_at=now)
            msg = refs.lock_message(
                replace(broken, holder=who), "break", previous=current, reason=reason
            )
            try:
                self.store.write_doc(
                    refs.lock_ref(name),
                    {refs.LOCK_FILE: refs.lock_to_json(broken)},
                    msg,
                    at=now,
                    expected=tip,
                )
            except RefConflict:
                continue
            return current
        raise RefConflict(refs.lock_ref(name))


# ---------------------------------------------------------------- cap semaphores


@dataclass(frozen=True, slots=True, kw_only=True)
class Cap:
    """One cap a start must fit under: its semaphore ref scope and limit.

    `state` is set for a WIP cap: its holders stay live while they sit in that state, and
    `occupants` are the subjects the planner saw there (some may never have held a slot:
    added there, or moved by hand), which count too.
    """

    scope: tuple[str, ...]
    limit: int
    state: str | None = None
    occupants: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """One entry of a semaphore: which subject, under which claim epoch, and the token of
    the claim attempt that wrote it (two racers for one subject write two entries)."""

    factory: str
    subject: str
    epoch: int
    token: str
    pending_until: datetime


def holder_is_live(h: Holder, subj: Subject | None, cap: Cap, now: datetime) -> bool:
    """Derived liveness: the subject's claim carries this epoch and is unexpired; or the
    claim is not yet written and the pending window is open; or (WIP) it sits in the state."""
    if subj is None:
        return False
    if cap.state is not None and subj.state == cap.state:
        return True
    claim = subj.claim
    if claim is not None and claim.epoch == h.epoch:
        return claim.expires_at > now
    return subj.epoch < h.epoch and h.pending_until > now


def _holders_to_json(cap: Cap, holders: Sequence[Holder]) -> bytes:
    doc = {
        "scope": "/".join(cap.scope),
        "limit": cap.limit,
        "state": cap.state,
        "holders": [
            {
                "factory": h.factory,
                "subject": h.subject,
                "epoch": h.epoch,
                "token": h.token,
                "pending_until": refs.iso(h.pending_until),
            }
            for h in holders
        ],
    }
    return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()


def _holders_from_json(raw: bytes) -> list[Holder]:
    try:
        doc = json.loads(raw)
        return [
            Holder(
                factory=str(h["factory"]),
                subject=str(h["subject"]),
                epoch=int(h["epoch"]),
                token=str(h.get("token", "")),
                pending_until=refs.parse_iso(h["pending_until"]),
            )
            for h in doc["holders"]
        ]
    except (KeyError, TypeError, ValueError):
        return []  # an unreadable semaphore is rebuilt from live claims


class Caps:
    """Counting semaphores made of slot refs; liveness comes from subject refs.

    A cap of N is N slot refs (`refs/frequency/caps/<scope>/<i>`), each holding at most one
    entry. Entering reads every slot, counts the distinct subjects of live entries (plus a
    WIP cap's occupants), and takes a free slot by compare-and-swap, starting at a
    worker-specific slot so that processes rarely contend for the same ref. Each running
    step holds one slot of each of its caps, so no cap can be exceeded; a slot whose holder
    died is free by derivation, with no release needed.
    """

    def __init__(self, store: Store, clock: Clock, *, pending: timedelta, offset: int = 0) -> None:
        self.store = store
        self.clock = clock
        self.pending = pending
        self.offset = offset

    def _subject(self, factory: str, name: str) -> Subject | None:
        try:
            return self.store.read_subject(factory, name)[0]
        except FreqError:
            return None

    def acquire_all(
        self,
        caps: Sequence[Cap],
        *,
        factory: str,
        subject: str,
        epoch: int,
        token: str,
        describe: Callable[[Cap, int], str],
    ) -> list[Cap]:
        """Enter every cap or none (scope order); returns the caps entered.

        Raises CapFull (with `describe(cap, count)` as its message) when one is full.
        """
        entered: list[Cap] = []
        try:
            for cap in sorted(caps, key=lambda c: c.scope):
                self._enter(
                    cap,
                    factory=factory,
                    subject=subject,
                    epoch=epoch,
                    token=token,
                    describe=describe,
                )
                entered.append(cap)
        except (CapFull, RefConflict):
            self.leave_all(entered, token=token)
            raise
        return entered

    def _slots(self, cap: Cap) -> dict[int, tuple[Holder | None, str | None]]:
        """Every slot of the cap that exists (also ones above a lowered limit): its entry
        (None when empty or unreadable) and its tip."""
        prefix = refs.caps_ref(*cap.scope) + "/"
        empty: tuple[Holder | None, str | None] = (None, None)
        out = dict.fromkeys(range(cap.limit), empty)
        for ref, oid in self.store.list_refs(prefix).items():
            slot = ref[len(prefix) :]
            if not slot.isdigit():
                continue
            try:
                holders = _holders_from_json(self.store.doc_at(oid, refs.CAPS_FILE, ref))
            except CorruptState:
                holders = []
            out[int(slot)] = (holders[0] if holders else None, oid)
        return out

    def _enter(
        self,
        cap: Cap,
        *,
        factory: str,
        subject: str,
        epoch: int,
        token: str,
        describe: Callable[[Cap, int], str],
    ) -> None:
        now = self.clock.now()
        slots = self._slots(cap)
        seen: dict[tuple[str, str], Subject | None] = {}
        free: list[int] = []
        taken: set[tuple[str, str]] = set(cap.occupants)
        for i, (holder, _tip) in slots.items():
            if holder is not None:
                key = (holder.factory, holder.subject)
                if key not in seen:
                    seen[key] = self._subject(*key)
                if holder_is_live(holder, seen[key], cap, now):
                    taken.add(key)
                    continue
            if i < cap.limit:
                free.append(i)
        if (factory, subject) not in taken and len(taken) >= cap.limit:
            raise CapFull(describe(cap, len(taken)))
        mine = Holder(
            factory=factory,
            subject=subject,
            epoch=epoch,
            token=token,
            pending_until=now + self.pending,
        )
        start = self.offset % cap.limit
        for i in sorted(free, key=lambda k: (k - start) % cap.limit):
            ref = f"{refs.caps_ref(*cap.scope)}/{i}"
            msg = (
                f"cap {'/'.join(cap.scope)} slot {i}: {factory}/{subject} enters\n\n"
                f"Freq-Event: cap-enter\nFreq-Subject: {factory}/{subject}\n"
                f"Freq-Epoch: {epoch}\nFreq-Token: {token}\n"
            )
            try:
                self.store.write_doc(
                    ref,
                    {refs.CAPS_FILE: _holders_to_json(cap, [mine])},
                    msg,
                    at=now,
                    expected=slots[i][1],
                )
            except RefConflict:
                continue  # someone took this slot since it was read: try the next free one
            return
        raise CapFull(describe(cap, cap.limit))

    def leave_all(self, caps: Sequence[Cap], *, token: str) -> None:
        """Empty the slots this claim attempt took (best effort: a slot whose holder's claim
        ended or never came is free by derivation anyway)."""
        for cap in caps:
            for i, (holder, tip) in self._slots(cap).items():
                if holder is None or holder.token != token:
                    continue
                msg = (
                    f"cap {'/'.join(cap.scope)} slot {i}: leave\n\nFreq-Event: cap-leave\n"
                    f"Freq-Token: {token}\n"
                )
                with contextlib.suppress(RefConflict):
                    self.store.write_doc(
                        f"{refs.caps_ref(*cap.scope)}/{i}",
                        {refs.CAPS_FILE: _holders_to_json(cap, [])},
                        msg,
                        at=self.clock.now(),
                        expected=tip,
                    )


class CapFull(FreqError):
    """A cap's semaphore is full at the moment of claiming."""

    code = "cap-full"
    retryable = True
