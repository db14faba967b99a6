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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from freq import refs
from freq.clock import Clock
from freq.errors import CorruptState, FreqError, RefConflict
from freq.model import Claim, Lock, Subject
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


def slot_is_live(
    held: Subject, now_subject: Subject | None, cap: Cap, now: datetime, pending: timedelta
) -> bool:
    """Derived liveness of a slot that points at the claim commit whose subject.json is
    `held`, given the subject as it is now: its claim is that claim and unexpired; or (WIP)
    it sits in the cap's state; or the claim is still about to be written (pending)."""
    claim = held.claim
    if now_subject is None or claim is None:
        return False
    if cap.state is not None and now_subject.state == cap.state:
        return True
    current = now_subject.claim
    if current is not None and current.epoch == claim.epoch and current.holder == claim.holder:
        return current.expires_at > now
    return now_subject.epoch < claim.epoch and claim.claimed_at + pending > now


def _same_claim(a: Claim | None, b: Claim | None) -> bool:
    return a is not None and b is not None and (a.epoch, a.holder) == (b.epoch, b.holder)


class Caps:
    """Counting semaphores made of slot refs; liveness comes from subject refs.

    A cap of N is N slot refs (`refs/frequency/caps/<scope>/<i>`). To start a step, a worker
    first writes its claim commit (not yet on the subject ref), then points one free slot
    of each cap at that commit by compare-and-swap, and only then moves the subject ref to
    it. A slot is taken while the subject's current claim is the one its commit holds (or,
    for a WIP cap, while the subject sits in the state; or briefly, while the claim is
    about to be written). So no count is stored, a dead holder's slot frees itself, and a
    slot costs one ref update, no objects. Entering counts the distinct subjects of live
    slots (plus a WIP cap's occupants) and starts at a worker-specific slot, so processes
    rarely contend for the same ref.
    """

    def __init__(self, store: Store, clock: Clock, *, pending: timedelta, offset: int = 0) -> None:
        self.store = store
        self.clock = clock
        self.pending = pending
        self.offset = offset

    def _current(self, factory: str, name: str) -> Subject | None:
        try:
            return self.store.read_subject(factory, name)[0]
        except FreqError:
            return None

    def acquire_all(
        self,
        caps: Sequence[Cap],
        *,
        claim: str,
        subject: Subject,
        describe: Callable[[Cap, int], str],
        hand_on: Claim | None = None,
    ) -> list[tuple[str, str]]:
        """Point a free slot of every cap at the prepared claim commit `claim`, or none
        (scope order). Returns the (slot ref, claim) pairs taken, for `leave_all`.

        Raises CapFull (with `describe(cap, count)` as its message) when one is full.
        `hand_on` is the claim of an attempt ending as this one starts (a chained claim):
        a slot held for exactly that claim is passed on rather than counted as taken.
        """
        taken: list[tuple[str, str]] = []
        try:
            for cap in sorted(caps, key=lambda c: c.scope):
                taken.append(
                    self._enter(
                        cap, claim=claim, subject=subject, describe=describe, hand_on=hand_on
                    )
                )
        except (CapFull, RefConflict):
            self.leave_all(taken)
            raise
        return taken

    def _slots(self, cap: Cap) -> dict[int, str | None]:
        """Slot number → the claim commit it points at, for every slot that exists (also
        ones above a lowered limit) and every empty one below the limit."""
        prefix = refs.caps_ref(*cap.scope) + "/"
        out: dict[int, str | None] = dict.fromkeys(range(cap.limit))
        for ref, oid in self.store.list_refs(prefix).items():
            slot = ref[len(prefix) :]
            if slot.isdigit():
                out[int(slot)] = oid
        return out

    def has_room(self, caps: Sequence[Cap], subject: Subject) -> str | None:
        """Read-only: None when every cap has a free slot for `subject` now, else why not
        (lets a claimer skip writing a claim commit that could not take a slot)."""
        for cap in caps:
            _slots, _free, _own, taken = self._survey(cap, subject, None)
            me = (subject.factory, subject.name)
            if me not in taken and len(taken) >= cap.limit:
                return f"{'/'.join(cap.scope)} full ({len(taken)}/{cap.limit})"
        return None

    def _survey(
        self, cap: Cap, subject: Subject, hand_on: Claim | None
    ) -> tuple[dict[int, str | None], list[int], list[int], set[tuple[str, str]]]:
        """The cap's slots, the free ones, ones held for `hand_on`, and the subjects that
        hold live slots (with a WIP cap's occupants)."""
        now = self.clock.now()
        base = refs.caps_ref(*cap.scope)
        slots = self._slots(cap)
        me = (subject.factory, subject.name)
        current: dict[tuple[str, str], Subject | None] = {}
        free: list[int] = []
        own: list[int] = []
        taken: set[tuple[str, str]] = set(cap.occupants)
        for i, oid in slots.items():
            if oid is not None:
                try:
                    held = self.store.subject_at(oid, f"{base}/{i}")
                except CorruptState:
                    held = None
                if held is not None:
                    key = (held.factory, held.name)
                    if key not in current:
                        current[key] = self._current(*key)
                    if slot_is_live(held, current[key], cap, now, self.pending):
                        taken.add(key)
                        if key == me and _same_claim(held.claim, hand_on):
                            own.append(i)  # held for the attempt ending now: hand it on
                        continue
            if i < cap.limit:
                free.append(i)
        return slots, free, own, taken

    def _enter(
        self,
        cap: Cap,
        *,
        claim: str,
        subject: Subject,
        describe: Callable[[Cap, int], str],
        hand_on: Claim | None,
    ) -> tuple[str, str]:
        slots, free, own, taken = self._survey(cap, subject, hand_on)
        base = refs.caps_ref(*cap.scope)
        me = (subject.factory, subject.name)
        if me not in taken and len(taken) >= cap.limit:
            raise CapFull(describe(cap, len(taken)))
        start = self.offset % cap.limit
        for i in own + sorted(free, key=lambda k: (k - start) % cap.limit):
            ref = f"{base}/{i}"
            try:
                self.store.swap(ref, claim, expected=slots[i])
            except RefConflict:
                continue  # someone took this slot since it was read: try the next free one
            return ref, claim
        raise CapFull(describe(cap, cap.limit))

    def leave_all(self, taken: Sequence[tuple[str, str]]) -> None:
        """Free the slots a claim attempt took, if they still point at its claim (best
        effort: a slot whose claim never reached the subject frees itself when its pending
        window closes)."""
        for ref, claim in taken:
            with contextlib.suppress(RefConflict, FreqError):
                self.store.delete(ref, expected=claim)


class CapFull(FreqError):
    """A cap's semaphore is full at the moment of claiming."""

    code = "cap-full"
    retryable = True
