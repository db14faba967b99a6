"""Named locks as compare-and-swap commits on `refs/frequency/locks/<name>` (SPEC §3, §5).

Must not import click or subprocess; writes only through store. Acquire, renew, release,
steal and break are commits, so `git log` of the ref is the lock's history. A lock taken
by a claim is held only while that claim is live (SPEC §5): once the claim ended (its
worker lost, its subject moved) or the lock's own TTL passed unrenewed, it is stale and may
be stolen, recorded with the old holder and why (freq/leases.py `lock_hold` is the rule;
with an Observer, expiry is judged on this worker's monotonic clock). A quota hold expires
at its reset time. A claim takes its locks in the same ref batch as its subject ref
(`prepare`), so either the attempt holds every lock and its claim, or none of them. Cap
slots are freq/caps.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from freq import refs
from freq.clock import Clock
from freq.errors import CorruptState, FreqError, Hint, LockHeld, RefConflict, UnknownSubject
from freq.leases import Ends, Hold, Observer, claim_end, lock_end, lock_hold, split_subject
from freq.runtime import Claim, Lock, Subject
from freq.store import RefUpdate, Store

_CAS_ATTEMPTS = 50


# ---------------------------------------------------------------- named locks


@dataclass(slots=True)
class HeldLock:
    """A lock this worker holds, with the tip it last wrote (for CAS renew/release) and
    this worker's monotonic reading just before that write (its renewal schedule)."""

    lock: Lock
    tip: str
    written: float


class Locks:
    """Acquire, renew, release, steal and break named locks. With an `observer` (a
    worker's), expiry is judged by it; without (one-shot commands), by the recorded times."""

    def __init__(self, store: Store, clock: Clock, *, observer: Observer | None = None) -> None:
        self.store = store
        self.clock = clock
        self.observer = observer

    def read(self, name: str) -> tuple[Lock | None, str | None]:
        """The lock as its ref's tip says, and that tip."""
        ref = refs.lock_ref(name)
        got = self.store.read_doc(ref, refs.LOCK_FILE)
        if got is None:
            return None, None
        raw, tip = got
        return refs.lock_from_json(raw, where=ref), tip

    def _read_or_problem(self, name: str) -> tuple[Lock | None, str | None, str | None]:
        """(lock, tip, None), or (None, tip, why) when the ref exists but cannot be read."""
        try:
            lock, tip = self.read(name)
        except CorruptState as exc:
            return None, self.store.read_ref(refs.lock_ref(name)), exc.message
        return lock, tip, None

    def _subject(self, lock: Lock) -> tuple[Subject, str] | None:
        """The subject `lock` names, as it is now, and its tip (None: gone, so no live claim
        of it can hold the lock). CorruptState when it cannot be read now (a read that
        races `git gc`, a broken tip): the caller must not take that for a free lock."""
        named = split_subject(lock.subject)
        if named is None:
            return None
        try:
            return self.store.read_subject(*named)
        except UnknownSubject:
            return None

    def hold_of(self, lock: Lock, tip: str | None) -> Hold:
        """Whether `lock` (read at `tip`) is held now, judged from the subject it names."""
        now = self.clock.now()
        mono = self.clock.monotonic()
        try:
            got = self._subject(lock)
        except CorruptState as exc:  # fail closed: held until the lock's own expiry
            own = lock_end(self.observer, lock, tip, now=now, mono=mono)
            if lock.released or own <= now:
                return Hold(held=False, why="released" if lock.released else "expired")
            return Hold(held=True, until=own, why=f"its claim cannot be read: {exc.message}")
        subject = got[0] if got is not None else None
        claims: dict[tuple[str, str], tuple[Claim, datetime]] = {}
        if got is not None and got[0].claim is not None:
            end = claim_end(self.observer, got[0], got[1], now=now, mono=mono)
            assert end is not None
            claims[(got[0].factory, got[0].name)] = (got[0].claim, end)
        ends = Ends(
            claims=claims,
            locks={lock.name: (lock, lock_end(self.observer, lock, tip, now=now, mono=mono))},
        )
        return lock_hold(lock, subject, now=now, ends=ends)

    def all(self) -> tuple[list[Lock], dict[str, str]]:
        """Every lock ref's latest state (released ones included), and the locks whose ref
        cannot be read (name → why)."""
        out = []
        broken: dict[str, str] = {}
        for ref, oid in sorted(self.store.list_refs(refs.LOCKS).items()):
            try:
                out.append(
                    refs.lock_from_json(self.store.doc_at(oid, refs.LOCK_FILE, ref), where=ref)
                )
            except CorruptState as exc:
                broken[refs.lock_name(ref)] = exc.message
        return out, broken

    def prepare(
        self, specs: Sequence[tuple[str, timedelta]], *, holder: str, subject: str, epoch: int
    ) -> tuple[list[HeldLock], list[RefUpdate]]:
        """Prepare the commits that would take every lock in `specs` (none of them moves a
        ref yet) and the ref updates that take them: for the caller's batch, all or none.
        LockHeld names the first lock someone else holds now."""
        held: list[HeldLock] = []
        updates: list[RefUpdate] = []
        longest: dict[str, timedelta] = {}
        mono = self.clock.monotonic()  # before the batch lands: the holder's lease starts early
        for name, ttl in specs:  # one lock named twice is taken once, for the longer TTL
            longest[name] = max(ttl, longest.get(name, ttl))
        try:
            for name, ttl in sorted(longest.items()):
                lock, tip, oid = self._prepare(
                    name, ttl, holder=holder, subject=subject, epoch=epoch
                )
                held.append(HeldLock(lock=lock, tip=oid, written=mono))
                updates.append(RefUpdate(refs.lock_ref(name), oid, tip))
        except LockHeld:
            for h in held:  # prepared for a batch that will not be tried: never written
                self.store.discard(h.tip)
            raise
        return held, updates

    def _prepare(
        self, name: str, ttl: timedelta, *, holder: str, subject: str, epoch: int
    ) -> tuple[Lock, str | None, str]:
        current, tip, problem = self._read_or_problem(name)
        if problem is not None:
            raise LockHeld(
                f"lock {name!r} is unreadable ({problem})",
                hint=f"break it with `git freq locks break {name} --reason ...`",
            )
        hold = self.hold_of(current, tip) if current is not None else Hold(held=False)
        if current is not None and hold.held:
            until = hold.until or current.expires_at
            raise LockHeld(
                f"lock {name!r} is held by {current.holder} until {refs.iso(until)}",
                hint=Hint(text="wait, or run", command=("locks", "break", name)),
            )
        now = self.clock.now()
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
            lock, what, previous=current if stale else None, reason=hold.why if stale else None
        )
        oid = self.store.prepare_doc(
            {refs.LOCK_FILE: refs.lock_to_json(lock)}, msg, at=now, parent=tip
        )
        return lock, tip, oid

    def renew(self, held: HeldLock) -> bool:
        """Extend a held lock by its TTL; False when it expired (a TTL passed on this
        worker's monotonic clock since it last wrote it), or was stolen or broken."""
        mono = self.clock.monotonic()
        now = self.clock.now()
        if mono - held.written >= held.lock.ttl.total_seconds():
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
        held.written = mono
        return True

    def check(self, held: HeldLock) -> str | None:
        """Why a lock this worker holds is no longer its own (None: it is): its ref moved
        (stolen or broken), or was deleted by hand, which is then recorded as a break on top
        of the last tip this worker wrote, so that the lock's history is kept."""
        ref = refs.lock_ref(held.lock.name)
        tip = self.store.read_ref(ref)
        if tip == held.tip:
            return None
        if tip is not None:
            return f"lock {held.lock.name} was taken over"
        why = f"lock {held.lock.name} broken: its ref was deleted outside Frequency"
        now = self.clock.now()
        gone = replace(held.lock, released=True, expires_at=now)
        msg = refs.lock_message(gone, "break", reason=why)
        # RefConflict: written again meanwhile, and that one stands; a write that fails
        # (a full disk) leaves the deletion unrecorded, but the holder stops all the same
        with contextlib.suppress(FreqError, OSError):
            oid = self.store.prepare_doc(
                {refs.LOCK_FILE: refs.lock_to_json(gone)}, msg, at=now, parent=held.tip
            )
            self.store.swap(ref, oid, expected=None)
        return why

    def hold(self, name: str, *, until: datetime, holder: str, reason: str) -> None:
        """Hold a lock for everyone until `until` (a quota): extends, never shortens, a hold."""
        ref = refs.lock_ref(name)
        for _ in range(_CAS_ATTEMPTS):
            current, tip, _problem = self._read_or_problem(name)  # unreadable: replaced
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

    def break_lock(self, name: str, *, who: str, reason: str) -> tuple[Lock, str | None]:
        """Release a lock by hand, whoever holds it (recorded with who and why): the lock as
        it was, and why it could not be read when its ref was corrupt (then a released lock
        commit replaces it, on top of the unreadable one)."""
        for _ in range(_CAS_ATTEMPTS):
            current, tip, problem = self._read_or_problem(name)
            now = self.clock.now()
            if problem is not None:
                current = Lock(
                    name=name,
                    holder=who,
                    subject="",
                    epoch=0,
                    acquired_at=now,
                    ttl=timedelta(0),
                    expires_at=now,
                )
            if current is None:
                raise FreqError(
                    f"no lock named {name!r}",
                    hint=Hint(text="see", command=("locks", "--all")),
                )
            broken = replace(current, released=True, expires_at=now)
            msg = refs.lock_message(
                replace(broken, holder=who),
                "break",
                previous=current if problem is None else None,
                reason=reason,
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
            return current, problem
        raise RefConflict(refs.lock_ref(name))
