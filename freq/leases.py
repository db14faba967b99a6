"""Lease expiry as one observer judges it: by its own monotonic clock (SPEC §5).

Imports only the standard library and freq.refs / freq.runtime, and reads no clock: every
monotonic reading and every `now` comes in as an argument, so the rules are table- and
Hypothesis-tested without time passing (tests/test_leases.py).

A holder writes, in one commit, the time it wrote it and the time its lease ends, both by
its own wall clock (a claim's `updated_at` and `expires_at`; a lock's ttl), so their
difference, the lease's duration, is free of clock skew. An Observer remembers, per ref,
the tip it last saw and its own monotonic reading when it first saw that tip; the lease
written at that tip ends, for this observer, once `duration` has passed on the observer's
monotonic clock since then. That is never earlier than the holder's own view (the holder
counts from before its write), so two machines whose wall clocks disagree never both hold
a lease. The price: an observer that first sees a lease (a freshly started worker) waits
one full duration before taking it over, however old the lease is by its holder's clock.

The planner is pure and takes `now`; an observer's verdicts are handed to it as `Ends`,
the end of each lease translated into the observer's wall-clock frame (`now` + what is
left). Readers without a history (`plan`, `status`, `why`, `locks`) use `Ends()`, which
falls back to the holder's recorded expiry: for display only, never to take over.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from freq import refs
from freq.runtime import Claim, Lock, Snapshot, Subject

# How long a cap slot or lock that points at a claim still to land counts as held: a claim
# is one ref batch that writes its slots and locks before its subject ref.
PENDING = timedelta(seconds=10)


class Observer:
    """What one worker has seen of leases: per ref, its last tip and when it first saw it.

    Thread-safe (the loop's thread and chained claims on step threads share one). Readings
    taken out of order only make a lease last longer for this observer, never shorter."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()

    def first_seen(self, ref: str, tip: str, mono: float) -> float:
        """The monotonic reading at which `ref` was first seen at `tip` (without a change
        in between); `mono` when this is the first sight."""
        with self._guard:
            got = self._seen.get(ref)
            if got is not None and got[0] == tip:
                return got[1]
            self._seen[ref] = (tip, mono)
            return mono

    def elapsed(self, ref: str, tip: str, mono: float) -> float:
        """Seconds on the observer's monotonic clock since it first saw `ref` at `tip`."""
        return max(0.0, mono - self.first_seen(ref, tip, mono))

    def end(
        self, ref: str, tip: str, duration: timedelta, *, now: datetime, mono: float
    ) -> datetime:
        """When a lease of `duration` written at `tip` of `ref` ends for this observer, in
        its own wall-clock frame: `now` plus what is left of it (negative once over)."""
        left = duration.total_seconds() - self.elapsed(ref, tip, mono)
        return now + timedelta(seconds=left)

    def forget(self, prefix: str, keep: Collection[str]) -> None:
        """Drop what was seen of refs under `prefix` other than `keep` (gone, or holding no
        lease): forgetting can only make a lease last longer, if its ref comes back."""
        with self._guard:
            for ref in [r for r in self._seen if r.startswith(prefix) and r not in keep]:
                del self._seen[ref]

    def __len__(self) -> int:
        return len(self._seen)


def lease_of(subj: Subject) -> timedelta:
    """The duration of the lease on `subj`'s claim as its holder wrote it: `expires_at -
    updated_at`, both by the holder's clock in the same commit (transitions.claimed,
    renewed and chained set both), so skew cancels. Zero without a claim, or when the
    two disagree (a hand-made subject.json): such a lease ends when first seen."""
    c = subj.claim
    if c is None:
        return timedelta(0)
    return max(timedelta(0), c.expires_at - subj.updated_at)


def claim_end(
    obs: Observer | None, subj: Subject, tip: str, *, now: datetime, mono: float
) -> datetime | None:
    """When `subj`'s claim (read at `tip`) ends for `obs`; the holder's recorded expiry
    without an observer; None without a claim."""
    c = subj.claim
    if c is None:
        return None
    if obs is None:
        return c.expires_at
    ref = refs.subject_ref(subj.factory, subj.name)
    return obs.end(ref, tip, lease_of(subj), now=now, mono=mono)


def lock_end(
    obs: Observer | None, lock: Lock, tip: str | None, *, now: datetime, mono: float
) -> datetime:
    """When `lock` (read at `tip`) expires by itself for `obs`: its ttl since the observer
    first saw that tip. A quota hold (no subject) ends at its `expires_at`, a provider's
    reset time, which is a wall-clock fact; so does any lock without an observer."""
    if obs is None or tip is None or not lock.subject:
        return lock.expires_at
    return obs.end(refs.lock_ref(lock.name), tip, lock.ttl, now=now, mono=mono)


def _empty() -> Mapping[tuple[str, str], tuple[Claim, datetime]]:
    return MappingProxyType({})


def _no_locks() -> Mapping[str, tuple[Lock, datetime]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Ends:
    """When leases end as one observer judges them, in its wall-clock frame: what the pure
    planner compares with `now`. A claim or lock not in here (or in here with another
    value) ends at its holder's recorded expiry: what one-shot readers show."""

    claims: Mapping[tuple[str, str], tuple[Claim, datetime]] = field(default_factory=_empty)
    locks: Mapping[str, tuple[Lock, datetime]] = field(default_factory=_no_locks)

    def claim(self, subj: Subject) -> datetime | None:
        """When `subj`'s claim ends (None: it has none)."""
        c = subj.claim
        if c is None:
            return None
        got = self.claims.get((subj.factory, subj.name))
        return got[1] if got is not None and got[0] == c else c.expires_at

    def lock(self, lock: Lock) -> datetime:
        """When `lock` expires by itself."""
        got = self.locks.get(lock.name)
        return got[1] if got is not None and got[0] == lock else lock.expires_at


def observe(
    obs: Observer,
    snap: Snapshot,
    lock_tips: Mapping[str, str],
    *,
    now: datetime,
    mono: float,
) -> Ends:
    """Let `obs` see every claim and claimed lock in `snap` (lock name → tip in
    `lock_tips`) at monotonic reading `mono`, and say when each ends. What it remembered of
    subject refs that hold no claim any more is forgotten."""
    claims: dict[tuple[str, str], tuple[Claim, datetime]] = {}
    claimed: set[str] = set()
    for key, subj in snap.subjects.items():
        if subj.claim is None:
            continue
        ref = refs.subject_ref(*key)
        claimed.add(ref)
        end = obs.end(ref, snap.tips[key], lease_of(subj), now=now, mono=mono)
        claims[key] = (subj.claim, end)
    obs.forget(refs.SUBJECTS, claimed)
    locks: dict[str, tuple[Lock, datetime]] = {}
    for name, lock in snap.locks.items():
        tip = lock_tips.get(name)
        if lock.subject and not lock.released and tip is not None:
            locks[name] = (lock, lock_end(obs, lock, tip, now=now, mono=mono))
    return Ends(claims=MappingProxyType(claims), locks=MappingProxyType(locks))


# ---------------------------------------------------------------- named locks held by claims


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Whether a lock is held now; while held, when time alone frees it; while free, why."""

    held: bool
    until: datetime | None = None
    why: str = ""


def split_subject(text: str) -> tuple[str, str] | None:
    """A lock's `factory/name` as (factory, name); None for a quota hold's empty one."""
    factory, sep, name = text.partition("/")
    return (factory, name) if sep and factory and name else None


def lock_hold(lock: Lock, subject: Subject | None, *, now: datetime, ends: Ends) -> Hold:
    """Whether `lock` is held at `now` (SPEC §5: a lock held by an attempt is free as soon
    as that attempt's claim is no longer live). `subject` is the subject the lock names, as
    it is now (None: gone or unreadable). A lock with a subject is held while it is not
    released, not past its own expiry, and that subject's current claim is the lock's
    (same epoch and holder) and live; a quota hold, by time alone."""
    if lock.released:
        return Hold(held=False, why="released")
    own = ends.lock(lock)
    expired = Hold(held=False, why=f"expired at {refs.iso(own)}")
    if not lock.subject:
        return expired if own <= now else Hold(held=True, until=own)
    # what became of the claim says more than the lock's own expiry: it is said first
    if subject is None:
        return Hold(held=False, why=f"its claim ended: {lock.subject} no longer exists")
    c = subject.claim
    if subject.epoch < lock.epoch:
        # the claim that took it has not landed yet: its batch writes the subject ref after
        # its locks (or its writer died in between, and the lock is free after PENDING)
        pending = own - lock.ttl + PENDING
        if pending > now:
            return Hold(held=True, until=pending)
        return Hold(held=False, why=f"its claim never landed on {lock.subject}")
    if c is None or (c.epoch, c.holder) != (lock.epoch, lock.holder):
        return Hold(held=False, why=f"its claim ended: {_fate(lock, subject)}")
    end = ends.claim(subject)
    assert end is not None
    if end <= now:
        return Hold(held=False, why=f"its claim expired at {refs.iso(end)}")
    return expired if own <= now else Hold(held=True, until=min(own, end))


def _fate(lock: Lock, subject: Subject) -> str:
    """What became of the claim that took `lock`, as far as `subject` says."""
    c = subject.claim
    if c is not None:
        return f"{lock.subject} is claimed by {c.holder} (epoch {c.epoch})"
    err = subject.last_error
    if subject.epoch == lock.epoch and err is not None and err.at >= lock.acquired_at:
        return err.reason  # `worker lost`, `exit 1`, ... (an older error says nothing of it)
    if subject.epoch == lock.epoch:
        return f"{lock.subject} moved on to {subject.state}"
    return f"{lock.subject} was moved to {subject.state} outside it (epoch {subject.epoch})"
