"""Claims: leases on subjects, their cap slots and locks, renewal, and chained claims.

Must not import click or subprocess; writes only through store. A claim is one batch of ref
updates (freq/store.py `update`): a free slot of every cap, every lock of the step, and
last the subject ref moved to the claim commit (transitions.claimed), each against the
value that was read, so the attempt holds all of them or none. Every later write of the
attempt is a compare-and-swap on the tip it last wrote (fencing, SPEC §5). Renewal runs
on a heartbeat thread of its own, so nothing the loop or a step's thread does can starve it;
it is scheduled by the holder's monotonic clock since its last write, so a jump of the wall
clock neither renews early nor lets the lease lapse. Each beat also watches the refs of
every running attempt: a subject or lock ref moved (or deleted) by anyone else loses the
lease within a beat, which stops the step. The worker's Observer (freq/leases.py), shared
by its planner, caps and locks, judges when other holders' leases end.
"""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from freq import costs, leases, refs, transitions
from freq.caps import Cap, Caps, kept_in_chain, slot_in
from freq.clock import Clock
from freq.errors import CapFull, CorruptState, FreqError, GitLockHeld, LockHeld, RefConflict
from freq.lanes import LaneProblem, first_overlap
from freq.leases import PENDING, Ends, Observer
from freq.locks import HeldLock, Locks
from freq.model import Config, Factory, Step
from freq.planner import Counts, Start, count, lane_of, next_start
from freq.predicates import Facts
from freq.report import Progress, ProgressKind, Reporter
from freq.runtime import Snapshot, Subject
from freq.store import RefUpdate, Store

# a claim waits this long (seconds) for a git lock a live process holds, then gives up for
# the cycle: the subject is planned again, and the loop's other starts are not held up
CLAIM_WAIT = 0.25
# a holder that could not renew for this part of its lease gives the attempt up: the step is
# stopped in the third that is left, before any observer may take the claim over
GIVE_UP = 2 / 3
_BATCH_TRIES = 3  # a slot or lock taken between survey and batch: survey again this often
# the path lanes of running attempts: one ref, moved by every claim whose step `touches:`
# paths, so two overlapping claims can never both see the lanes free
LANES_REF = refs.ROOT + "lanes"
LANES_FILE = "lanes.json"


class Lease:
    """The running attempt's view of its claim: the tip it last wrote, its locks, and the
    holder's monotonic reading just before it wrote that tip (`written`: the lease runs
    for its ttl from then, by this clock alone).

    `lock` serialises the heartbeat's renewals and watching with the attempt's own last
    write, which both compare-and-swap on `tip`."""

    def __init__(
        self,
        subject: Subject,
        tip: str,
        locks: list[HeldLock],
        *,
        written: float,
        slots: Sequence[RefUpdate] = (),
    ) -> None:
        self.subject = subject
        self.tip = tip
        self.locks = locks
        self.slots = slots  # the cap slots its claim took (a chained claim hands them on)
        self.written = written
        self.lost = False
        self.done = False  # its outcome is recorded: nothing of it may be renewed again
        self.lock = threading.Lock()

    @property
    def key(self) -> tuple[str, str]:
        """(factory, subject)."""
        return self.subject.factory, self.subject.name


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """What the last planning cycle saw: a chained claim asks the planner over it."""

    snap: Snapshot
    facts: Facts | None
    ends: Ends = field(default_factory=Ends)
    spend: costs.Spend | None = None  # budgets' spend in their windows (None: no budgets)


class Claims:
    """Claim, renew and chain for one worker identity."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Clock,
        worker: str,
        reporter: Reporter,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.worker = worker
        self.reporter = reporter
        self.ttl = config.settings.lease_ttl
        self.max_parallel = config.settings.max_parallel
        self.observer = Observer()
        self.locks = Locks(store, clock, observer=self.observer)
        self.caps = Caps(
            store,
            clock,
            pending=PENDING,
            offset=zlib.crc32(worker.encode()),
            observer=self.observer,
        )
        self.view: View | None = None
        self._counts: tuple[Snapshot, Counts] | None = None
        self._lane_seen: dict[tuple[tuple[str, str], int], float] = {}

    def _emit(self, kind: ProgressKind, who: Start | Subject, **kw: object) -> None:
        name = who.name if isinstance(who, Subject) else who.subject
        self.reporter.emit(Progress(event=kind, factory=who.factory, subject=name, **kw))  # type: ignore[arg-type]

    def step_of(self, factory: str, step_id: str) -> tuple[Factory, Step]:
        """The configured factory and step (both exist: the planner only plans those)."""
        fac = self.config.factory(factory)
        step = self.config.step(factory, step_id)
        if fac is None or step is None:
            raise LookupError(f"{factory}/{step_id} is not configured")
        return fac, step

    def observe(self, snap: Snapshot, now: datetime) -> Ends:
        """This worker's observer sees every lease in `snap` (read just now) and says when
        each ends, in this worker's wall-clock frame: what its planner compares with `now`."""
        listed = self.store.list_refs(refs.LOCKS) if snap.locks else {}
        lock_tips = {refs.lock_name(r): o for r, o in listed.items()}
        return leases.observe(self.observer, snap, lock_tips, now=now, mono=self.clock.monotonic())

    # ------------------------------------------------------------ caps

    def caps_for(self, fac: Factory, step: Step) -> list[Cap]:
        """Every cap a start of `step` must fit under."""
        fid = fac.factory_id
        caps = [Cap(scope=("global",), limit=self.max_parallel)]
        if fac.limits.max_parallel is not None:
            caps.append(Cap(scope=("factory", fid), limit=fac.limits.max_parallel))
        if step.max_parallel is not None:
            caps.append(Cap(scope=("step", fid, step.id), limit=step.max_parallel))
        wip = fac.limits.wip.get(step.to_state)
        if wip is not None:
            snap = self.view.snap if self.view else None
            there = frozenset(
                k
                for k, s in (snap.subjects.items() if snap else ())
                if k[0] == fid and s.state == step.to_state
            )
            caps.append(
                Cap(
                    scope=("wip", fid, step.to_state),
                    limit=wip,
                    state=step.to_state,
                    occupants=there,
                )
            )
        return caps

    @staticmethod
    def describe_cap(cap: Cap, live: int) -> str:
        """`step max_parallel reached (2/2)`."""
        kind = {
            "global": "global max_parallel",
            "factory": "factory max_parallel",
            "step": "step max_parallel",
            "wip": f"WIP limit of {cap.state}",
        }[cap.scope[0]]
        return f"{kind} reached ({live}/{cap.limit})"

    # ------------------------------------------------------------ claim

    def claim(self, start: Start, *, bare: bool = False) -> Lease | None:
        """Claim the planned start: one batch of the caps' slots, the step's locks and the
        subject ref (moved from the planned tip to the claim commit). None when any of them
        is taken: the planner saw an older state, and the next cycle re-plans. `bare`: a
        batch member after the first, whose run the first one's slots and locks cover."""
        fac, step = self.step_of(start.factory, start.step)
        ref = refs.subject_ref(start.factory, start.subject)
        for _ in range(_BATCH_TRIES):
            subj, tip = self.store.read_subject(start.factory, start.subject)
            if tip != start.tip:
                return None
            caps = [] if bare else self.caps_for(fac, step)
            surveyed = self.caps.survey(caps, subj)
            full = self.caps.has_room(caps, subj, surveyed)
            if full is not None:  # seen before writing anything: the plan's view was stale
                self._emit(ProgressKind.WAITING, start, step=start.step, detail=full)
                return None
            try:
                touches = lane_of(step, subj) if not bare else ()
            except LaneProblem as exc:
                self._emit(ProgressKind.WAITING, start, step=start.step, detail=exc.message)
                return None
            written = self.clock.monotonic()  # before the write: the lease starts early for us
            change = transitions.claimed(
                subj,
                step=start.step,
                attempt=start.attempt,
                worker=self.worker,
                at=self.clock.now(),
                ttl=self.ttl,
                touches=touches,
            )
            oid = self.store.prepare(change.subject, change.event, parent=tip)
            try:
                lane = self._take_lane(change.subject) if touches else []
                slots = self.caps.choose(
                    caps,
                    claim=oid,
                    subject=change.subject,
                    describe=self.describe_cap,
                    surveyed=surveyed,
                )
                held, taking = self.locks.prepare(
                    []
                    if bare
                    else [(s.name, s.ttl or self.config.settings.lock_ttl) for s in step.locks],
                    holder=self.worker,
                    subject=f"{start.factory}/{start.subject}",
                    epoch=change.subject.epoch,
                )
            except (CapFull, LockHeld) as exc:
                self.store.discard(oid)  # never named by a ref: never written
                self._emit(ProgressKind.WAITING, start, step=start.step, detail=exc.message)
                return None
            try:
                self.store.update(
                    [*slots, *taking, *lane, RefUpdate(ref, oid, tip)], wait=CLAIM_WAIT
                )
            except RefConflict as exc:
                if exc.ref == ref:
                    return None  # the subject moved: re-plan
                continue  # a slot or lock was taken since it was read: survey again
            self._emit(ProgressKind.CLAIMED, start, step=start.step, attempt=start.attempt)
            return Lease(change.subject, oid, held, written=written, slots=slots)
        return None

    def _take_lane(self, subj: Subject) -> list[RefUpdate]:
        """The lanes ref moved to hold `subj`'s claim beside the live ones it read (dead
        holders are dropped by derivation, as cap slots are); LockHeld when a live one
        overlaps. One update, for the claim's batch: a concurrent claim that read the
        same tip loses its batch and surveys again."""
        claim = subj.claim
        assert claim is not None
        found = self.store.read_doc(LANES_REF, LANES_FILE)
        tip = found[1] if found else None
        holders: list[dict[str, object]] = []
        if found is not None:
            try:
                doc = json.loads(found[0])
                holders = [h for h in doc.get("holders", []) if isinstance(h, dict)]
            except (ValueError, AttributeError):
                # unreadable: rewritten from this claim alone; the planner still keeps
                # starts apart from the lanes that live claims record in their subjects
                holders = []
        now = self.clock.now()
        live = [h for h in holders if self._lane_live(h, now)]
        for h in live:
            theirs = tuple(str(g) for g in h.get("touches", ()))  # type: ignore[attr-defined]
            hit = first_overlap(claim.touches, theirs)
            if hit is not None:
                who = (
                    f"{h.get('factory')}/{h.get('subject')} {h.get('step')} "
                    f"attempt {h.get('attempt')}"
                )
                raise LockHeld(f"lane {hit[0]} overlaps {hit[1]} of {who}")
        mine = {
            "factory": subj.factory,
            "subject": subj.name,
            "step": claim.step,
            "attempt": claim.attempt,
            "epoch": claim.epoch,
            "holder": claim.holder,
            "touches": list(claim.touches),
            "at": refs.iso(now),
        }
        raw = json.dumps({"holders": [*live, mine]}, sort_keys=True, indent=1) + "\n"
        message = (
            f"lanes: {subj.factory}/{subj.name} {claim.step} attempt {claim.attempt} takes "
            f"{', '.join(claim.touches)}\n"
        )
        oid = self.store.prepare_doc({LANES_FILE: raw.encode()}, message, at=now, parent=tip)
        return [RefUpdate(LANES_REF, oid, tip)]

    def _lane_live(self, h: dict[str, object], now: datetime) -> bool:
        """A lane holder is live while its subject's claim is that attempt (same epoch and
        holder, lease not over by this worker's observer), or for PENDING after this worker
        first saw it while its claim may be about to be written."""
        key = (str(h.get("factory")), str(h.get("subject")))
        try:
            subj, tip = self.store.read_subject(*key)
        except (CorruptState, FreqError, OSError):
            return False
        c = subj.claim
        if c is not None and c.epoch == h.get("epoch") and c.holder == h.get("holder"):
            end = leases.claim_end(self.observer, subj, tip, now=now, mono=self.clock.monotonic())
            return end is None or end > now
        epoch = h.get("epoch")
        if subj.landing is not None and subj.epoch == epoch and subj.landing.touches:
            return True  # its work waits in the merge queue: the lane stays held
        if isinstance(epoch, int) and subj.epoch < epoch:
            seen = self._lane_seen.setdefault((key, epoch), self.clock.monotonic())
            return self.clock.monotonic() - seen < PENDING.total_seconds()
        return False

    def claim_batch(self, start: Start) -> list[Lease]:
        """Claim every member of a batch start: the first with the step's caps and locks,
        the rest bare. Members another worker took meanwhile are left out."""
        first = self.claim(start.batch[0])
        if first is None:
            return []
        rest = [self.claim(m, bare=True) for m in start.batch[1:]]
        return [first, *(lease for lease in rest if lease is not None)]

    def give_back(self, lease: Lease) -> None:
        """Release the attempt's locks after its last write. Its cap slots need no write:
        they are dead by derivation once the subject's claim has ended."""
        self.locks.release_all(lease.locks)

    # ------------------------------------------------------------ renew

    def renew(self, lease: Lease) -> bool:
        """Check that nobody moved the attempt's refs, and extend the lease (and its locks)
        once a third of their TTL has passed since their last write; False once the claim
        is lost, which stops the step."""
        with lease.lock:
            return self._renew(lease)

    def _renew(self, lease: Lease) -> bool:
        if lease.lost or lease.done:
            return False
        claim = lease.subject.claim
        if claim is None:
            return False  # recorded already: nothing left to renew
        lost = self._moved(lease)
        if lost is not None:
            return self._lose(lease, f"{lost}; stopping the step")
        mono = self.clock.monotonic()  # before any write: each lease restarts from here
        age = mono - lease.written
        if age >= self.ttl.total_seconds() * GIVE_UP:
            # Too late: near its expiry its cap slots and locks may soon be someone else's.
            # Renewing now would resurrect the claim over a full cap (test_runtime_model); so
            # the holder gives up while a third of the lease is left to stop its step in.
            return self._lose(lease, "lease expired before it was renewed; stopping the step")
        for held in lease.locks:
            due = mono - held.written >= held.lock.ttl.total_seconds() / 3
            if due and not self.locks.renew(held):
                return self._lose(lease, f"lock {held.lock.name} was taken over; stopping the step")
        if age < self.ttl.total_seconds() / 3:
            return True
        now = self.clock.now()
        change = transitions.renewed(lease.subject, at=now, ttl=self.ttl, worker=self.worker)
        try:
            lease.tip = self.store.advance(
                refs.subject_ref(*lease.key), change.subject, change.event, expected=lease.tip
            )
        except RefConflict:
            return self._lose(lease, "claim taken over; stopping the step")
        lease.subject = change.subject
        lease.written = mono
        return True

    def _moved(self, lease: Lease) -> str | None:
        """Why the attempt's refs are no longer its own (None: they are): its subject ref
        moved outside its claim (`git freq transition`, a requeue or approval, a takeover,
        `git update-ref`), or a lock ref moved or was deleted (a deletion is recorded as a
        break). Reading a ref under refs/frequency is one small file read, so every beat
        can afford it."""
        if self.store.read_ref(refs.subject_ref(*lease.key)) != lease.tip:
            return "subject moved outside its claim"
        for held in lease.locks:
            why = self.locks.check(held)
            if why is not None:
                return why
        return None

    def _lose(self, lease: Lease, why: str) -> bool:
        lease.lost = True
        claim = lease.subject.claim
        self._emit(
            ProgressKind.LOST,
            lease.subject,
            step=claim.step if claim else "",
            attempt=claim.attempt if claim else 0,
            detail=why,
        )
        return False

    # ------------------------------------------------------------ chain

    def chain(self, lease: Lease, done: transitions.Change, output: bytes) -> Lease | None:
        """Record the success `done` and claim the subject's next step in one commit, when
        the planner (over the last view, with this subject as it is now) would start that
        step here: it saves a claim commit and a planning round trip on the path every
        subject takes. The caps are still entered: the global and factory slots the
        chain took with its first claim stay there (the new claim names that claim in
        `slots_at`), a step's or a state's cap is entered as the step's own. None when
        the next step cannot start at once, or needs locks or a batch (an ordinary claim
        takes those); the caller then records plainly. RefConflict when the
        claim was taken over meanwhile (the result is refused)."""
        view = self.view
        if view is None:
            return None
        counts = self._counts
        if counts is None or counts[0] is not view.snap:
            counts = self._counts = (
                view.snap,
                count(self.config, view.snap, done.event.at, view.ends),
            )
        start = next_start(
            self.config,
            view.snap,
            done.subject,
            lease.tip,
            now=done.event.at,
            max_parallel=self.max_parallel,
            counts=counts[1],
            facts=view.facts,
            ends=view.ends,
            # the attempt that just ended spent too, and the view was read before it did
            spend=view.spend.including(costs.from_event(done.event)) if view.spend else None,
        )
        if start is None:
            return None
        fac, step = self.step_of(start.factory, start.step)
        if step.locks or step.batch is not None or step.touches:
            return None  # an ordinary claim takes locks, batches and lanes
        caps = self.caps_for(fac, step)
        kept, origin = _kept(lease, caps)
        written = self.clock.monotonic()
        both = transitions.chained(
            done,
            step=step.id,
            attempt=start.attempt,
            worker=self.worker,
            at=done.event.at,
            ttl=self.ttl,
            slots_at=origin,
        )
        ref = refs.subject_ref(*lease.key)
        if self.store.read_ref(ref) != lease.tip:
            raise RefConflict(ref)
        if any(self.store.read_ref(u.ref) != u.new for u in kept):
            return None  # a kept slot was taken meanwhile: record plainly
        oid = self.store.prepare(both.subject, both.event, parent=lease.tip, output=output)
        try:
            slots = self.caps.choose(
                [c for c in caps if not (kept and kept_in_chain(c))],
                claim=oid,
                subject=both.subject,
                describe=self.describe_cap,
                hand_on=lease.subject.claim,
                held=lease.slots,
            )
            self.store.update([*slots, RefUpdate(ref, oid, lease.tip)], wait=CLAIM_WAIT)
        except CapFull:
            self.store.discard(oid)  # never named by a ref: never written
            return None
        except RefConflict as exc:
            if exc.ref == ref:
                raise
            return None  # a slot moved: record plainly
        except GitLockHeld:
            return None  # a slot is busy: record plainly (which waits for its own ref)
        lease.tip = oid
        return Lease(both.subject, oid, [], written=written, slots=[*kept, *slots])


def _kept(lease: Lease, caps: Sequence[Cap]) -> tuple[list[RefUpdate], int | None]:
    """The slots of `lease` a claim chained from it keeps where they are (one in each
    global and factory cap of `caps`, at the claim its chain began with), and that claim's
    epoch; none and None when it holds no slot in one of them (the chained claim then
    takes its slots as an ordinary claim does, at its own commit)."""
    claim = lease.subject.claim
    if claim is None:
        return [], None
    kept: list[RefUpdate] = []
    for cap in caps:
        if kept_in_chain(cap):
            mine = slot_in(lease.slots, cap)
            if mine is None:
                return [], None
            kept.append(mine)
    if not kept:
        return [], None
    return kept, claim.slots_at if claim.slots_at is not None else claim.epoch


class Heartbeat:
    """A thread that watches and renews every registered lease, whatever the other threads
    are doing.

    It wakes every `interval` seconds of real time (at most a second, SPEC §5: a running
    attempt notices within a second that its refs were moved outside its claim). Renewal
    itself reads the injected clock, so under a FakeClock nothing is renewed until the
    test moves time; watching needs no time to pass."""

    def __init__(self, claims: Claims, *, interval: float) -> None:
        self.claims = claims
        self.interval = interval
        self._leases: dict[int, Lease] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        """Renew `lease` from now on (until `drop`)."""
        with self._guard:
            self._leases[id(lease)] = lease

    def drop(self, lease: Lease) -> None:
        """Stop renewing `lease`."""
        with self._guard:
            self._leases.pop(id(lease), None)

    def beat(self) -> None:
        """Watch and renew every registered lease once (what the thread does each interval). A
        renewal that fails (a git lock held too long, a full disk) is tried again at the
        next beat: the thread must outlive any one failure."""
        with self._guard:
            leases = list(self._leases.values())
        for lease in leases:
            with contextlib.suppress(FreqError, OSError):
                self.claims.renew(lease)

    def __enter__(self) -> Heartbeat:
        self._stop.clear()  # a worker may run more than once (each run enters anew)
        self._thread = threading.Thread(target=self._loop, name="freq-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


def alive(lease: Lease, cancelled: Callable[[], bool]) -> Callable[[], bool]:
    """For a step runner: whether its attempt should go on (lease held, not cancelled)."""
    return lambda: not lease.lost and not cancelled()
