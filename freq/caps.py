"""Cap semaphores as slot refs whose liveness comes from subject refs (SPEC §3, §5).

Must not import click or subprocess; reads only through store and writes nothing itself:
`choose` returns the ref updates that take one slot of each cap, and the claimer moves them
in one batch with the subject ref (freq/claims.py). A cap (global `max_parallel`, a
factory's or a step's `max_parallel`, a state's WIP limit) of N is N refs
`refs/frequency/caps/<scope>/<i>`, each pointing at the claim commit of its holder. A slot
counts only while that claim is its subject's live claim, or a claim chained from it that
names it (`Claim.slots_at`: a chain keeps its global and factory slots where its first
claim put them); or, for a WIP cap, while the subject sits in the state; or briefly,
while the claim is about to land. So no count is stored and a crashed holder can never
leak a slot. "Live" and "briefly" are judged by the worker's Observer (freq/leases.py) on
its own monotonic clock, never by comparing the claimer's timestamps with this machine's
wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from freq import refs
from freq.clock import Clock
from freq.errors import CapFull, CorruptState, UnknownSubject
from freq.leases import Observer, claim_end
from freq.runtime import Claim, Subject
from freq.store import RefUpdate, Store


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


# the scopes whose slots a chained claim keeps where its chain began: every step of a
# subject is under the global cap and its factory's, where a step cap or a WIP cap is its
# step's or its state's own
KEPT = ("global", "factory")


def kept_in_chain(cap: Cap) -> bool:
    """Whether a chained claim keeps its slot of `cap` at the claim its chain began with."""
    return cap.state is None and cap.scope[0] in KEPT


def slot_is_live(
    held: Subject, now_subject: Subject | None, cap: Cap, *, lease_live: bool, pending: bool
) -> bool:
    """Derived liveness of a slot that points at the claim commit whose subject.json is
    `held`, given the subject as it is now: its claim is that claim, or (a global or
    factory cap) a claim chained from it by the same holder (`slots_at`), and its lease is
    live (`lease_live`, as the observer judges `now_subject`'s claim); or (WIP) it sits in
    the cap's state; or the claim is still about to be written (`pending`: the observer
    first saw the slot at this value less than the pending window ago)."""
    claim = held.claim
    if now_subject is None or claim is None:
        return False
    if cap.state is not None and now_subject.state == cap.state:
        return True
    current = now_subject.claim
    if current is not None and current.holder == claim.holder:
        if current.epoch == claim.epoch:
            return lease_live
        if current.slots_at == claim.epoch and kept_in_chain(cap):
            return lease_live
    return now_subject.epoch < claim.epoch and pending


def slot_in(moves: Sequence[RefUpdate], cap: Cap) -> RefUpdate | None:
    """The move among `moves` that took a slot of `cap` below its limit, if any."""
    prefix = refs.caps_ref(*cap.scope) + "/"
    for u in moves:
        slot = u.ref[len(prefix) :] if u.ref.startswith(prefix) else ""
        if slot.isdigit() and int(slot) < cap.limit and u.new is not None:
            return u
    return None


def _handed_on(held: Claim | None, hand_on: Claim | None) -> bool:
    """Whether a slot whose commit holds the claim `held` is the ending attempt's (`hand_on`):
    its own claim, or the one its chain began with."""
    return (
        held is not None
        and hand_on is not None
        and held.holder == hand_on.holder
        and held.epoch in (hand_on.epoch, hand_on.slots_at)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Survey:
    slots: dict[int, str | None]  # slot number -> claim commit, for each slot ref that exists
    free: list[int]  # existing slots below the limit whose holder is no longer live
    own: list[int]  # held for the attempt ending now (a chained claim hands them on)
    taken: set[tuple[str, str]]  # subjects holding live slots, and a WIP cap's occupants


@dataclass(frozen=True, slots=True)
class Surveyed:
    """The surveys of one claim's caps, by scope (Caps.survey)."""

    of: dict[tuple[str, ...], _Survey]


class Caps:
    """Read cap slots and choose free ones; see the module docstring."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        pending: timedelta,
        offset: int = 0,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.pending = pending
        self.offset = offset  # a worker-specific first slot, so processes rarely contend
        self.observer = observer if observer is not None else Observer()

    def _current(self, factory: str, name: str) -> tuple[Subject, str] | None:
        """The slot holder's subject as it is now (None: gone). CorruptState when it cannot
        be read now: the survey then counts the slot as taken (fail closed)."""
        try:
            return self.store.read_subject(factory, name)
        except UnknownSubject:
            return None

    def _slots(self, cap: Cap) -> dict[int, str | None]:
        """Slot number → the claim commit it points at, for every slot that exists (also
        ones above a lowered limit). A slot below the limit that is not here is empty: it
        is never listed, so a survey costs the slots in use, not the cap's size."""
        prefix = refs.caps_ref(*cap.scope) + "/"
        out: dict[int, str | None] = {}
        for ref, oid in self.store.list_refs(prefix).items():
            slot = ref[len(prefix) :]
            if slot.isdigit():
                out[int(slot)] = oid
        return out

    def _survey(self, cap: Cap, subject: Subject, hand_on: Claim | None) -> _Survey:
        now = self.clock.now()
        mono = self.clock.monotonic()
        base = refs.caps_ref(*cap.scope)
        slots = self._slots(cap)
        me = (subject.factory, subject.name)
        current: dict[tuple[str, str], tuple[Subject, str] | None] = {}
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
                        try:
                            current[key] = self._current(*key)
                        except CorruptState:  # unreadable now: taken, not free
                            taken.add(key)
                            continue
                    if self._live(held, current[key], cap, f"{base}/{i}", oid, now, mono):
                        taken.add(key)
                        if key == me and _handed_on(held.claim, hand_on):
                            own.append(i)
                        continue
            if i < cap.limit:
                free.append(i)
        return _Survey(slots=slots, free=free, own=own, taken=taken)

    def _live(
        self,
        held: Subject,
        got: tuple[Subject, str] | None,
        cap: Cap,
        slot: str,
        oid: str,
        now: datetime,
        mono: float,
    ) -> bool:
        """slot_is_live, with the lease and the pending window judged by the observer."""
        now_subject, tip = got if got is not None else (None, "")
        end = (
            claim_end(self.observer, now_subject, tip, now=now, mono=mono)
            if now_subject is not None
            else None
        )
        pending = self.observer.elapsed(slot, oid, mono) < self.pending.total_seconds()
        return slot_is_live(
            held, now_subject, cap, lease_live=end is not None and end > now, pending=pending
        )

    def survey(self, caps: Sequence[Cap], subject: Subject) -> Surveyed:
        """Read-only: the slots of each cap as they are now, for `subject`'s claim (given to
        has_room, then to choose: one survey per claim, not two)."""
        return Surveyed({cap.scope: self._survey(cap, subject, None) for cap in caps})

    def has_room(
        self, caps: Sequence[Cap], subject: Subject, surveyed: Surveyed | None = None
    ) -> str | None:
        """Read-only: None when every cap has a free slot for `subject` now, else why not
        (lets a claimer skip writing a claim commit that could not take a slot)."""
        me = (subject.factory, subject.name)
        for cap in caps:
            found = surveyed.of.get(cap.scope) if surveyed is not None else None
            taken = (found or self._survey(cap, subject, None)).taken
            if me not in taken and len(taken) >= cap.limit:
                return f"{'/'.join(cap.scope)} full ({len(taken)}/{cap.limit})"
        return None

    def choose(
        self,
        caps: Sequence[Cap],
        *,
        claim: str,
        subject: Subject,
        describe: Callable[[Cap, int], str],
        hand_on: Claim | None = None,
        held: Sequence[RefUpdate] = (),
        surveyed: Surveyed | None = None,
    ) -> list[RefUpdate]:
        """One ref update per cap that points a free slot at the prepared claim commit
        `claim` (the caller moves them in one batch with the subject ref).

        Raises CapFull (with `describe(cap, count)` as its message) when a cap is full.
        `hand_on` is the claim of an attempt ending as this one starts (a chained claim):
        a slot held for exactly that claim is passed on rather than counted as taken.
        `held`: the slot moves that attempt's claim made; a cap with one of them moves that
        slot on from that claim commit without a survey (the move's compare-and-swap fails
        if the slot was taken meanwhile, and the count stays what it was).
        `surveyed`: the survey has_room was given for this claim (taken just before it).
        """
        out: list[RefUpdate] = []
        me = (subject.factory, subject.name)
        for cap in sorted(caps, key=lambda c: c.scope):
            mine = slot_in(held, cap) if hand_on is not None else None
            if mine is not None:
                out.append(RefUpdate(mine.ref, claim, mine.new))
                continue
            found = surveyed.of.get(cap.scope) if surveyed is not None and hand_on is None else None
            s = found or self._survey(cap, subject, hand_on)
            if not s.own and me not in s.taken and len(s.taken) >= cap.limit:
                raise CapFull(describe(cap, len(s.taken)))
            start = self.offset % cap.limit
            free = list(s.free)
            empty = next(
                (k for d in range(cap.limit) if (k := (start + d) % cap.limit) not in s.slots),
                None,
            )  # the first slot never taken, from this worker's offset on
            if empty is not None:
                free.append(empty)
            order = s.own + sorted(free, key=lambda k: (k - start) % cap.limit)
            if not order:
                raise CapFull(describe(cap, cap.limit))
            i = order[0]
            out.append(RefUpdate(f"{refs.caps_ref(*cap.scope)}/{i}", claim, s.slots.get(i)))
        return out
