"""Random interleavings of claim, renew, complete, fail, lease expiry, recovery and manual
moves by several simulated workers, against the real store in a temporary repository,
checked after every step against a simple model (Hypothesis stateful testing).

Each simulated worker is a Worker (freq/loop.py) with its own Store (its own dulwich Repo, as a
separate process would have). Their clocks share one FakeClock timeline, so lease expiry is
exact, but their wall clocks disagree by up to 40 s (two thirds of a ttl either way) and
their monotonic clocks have origins of their own: each judges other workers' leases by its
own Observer (freq/leases.py), and the invariants judge a lease by its holder's own clock.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from freq import refs
from freq.claims import Lease, View
from freq.clock import FakeClock
from freq.errors import RefConflict
from freq.loop import Worker
from freq.model import Backoff, Config, Factory, Limits, LockSpec, RetryPolicy, Settings, Step
from freq.planner import plan
from freq.runners import StepResult
from freq.runtime import Event, EventKind, Subject
from freq.store import Store

from .clocks import SkewedClock

SUBJECTS = ("a", "b", "c", "d")
WORKERS = ("w1", "w2", "w3")
SKEW = {"w1": 0.0, "w2": 20.0, "w3": -20.0}  # seconds each wall clock is off
TTL = 30
CAP = 2


def _config(root: str) -> Config:
    retry = RetryPolicy(
        max_attempts=3,
        backoff=Backoff(
            initial=timedelta(seconds=5), factor=2, max=timedelta(seconds=20), jitter=0.2
        ),
    )
    steps = (
        Step(id="build", from_states=("new",), to_state="built", run="true", retry=retry),
        Step(
            id="test",
            from_states=("built",),
            to_state="tested",
            run="true",
            retry=retry,
            max_parallel=1,
        ),
        Step(
            id="ship",
            from_states=("tested",),
            to_state="done",
            run="true",
            retry=retry,
            locks=(LockSpec(name="L", ttl=timedelta(seconds=TTL)),),
        ),
    )
    fac = Factory(
        factory_id="f",
        path="f.yaml",
        initial="new",
        terminal=("done",),
        steps=steps,
        limits=Limits(),
    )
    return Config(
        root=root,
        settings=Settings(max_parallel=CAP, lease_ttl=timedelta(seconds=TTL)),
        factories=(fac,),
    )


def _result(ok: bool) -> StepResult:
    return StepResult(
        exit_code=0 if ok else 1,
        duration_ms=5,
        tail=b"ok\n" if ok else b"boom\n",
        how="exit 0" if ok else "exit 1",
    )


@dataclass
class Held:
    """A lease a simulated worker believes it holds."""

    worker: str
    lease: Lease


class Runtime(RuleBasedStateMachine):
    """Several workers racing over a few subjects under a global cap and a lock."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="freq-model-"))
        subprocess.run(["git", "init", "-q", str(self.dir)], check=True)
        self.clock = FakeClock()  # the true timeline (and a person's clock)
        clocks = {
            w: SkewedClock(self.clock, SKEW[w], mono_origin=1000.0 * i)
            for i, w in enumerate(WORKERS)
        }
        self.config = _config(str(self.dir))
        self.stores = {w: Store.discover(self.dir, clock=clocks[w]) for w in WORKERS}
        self.ex = {
            w: Worker(
                self.stores[w],
                self.config,
                clock=clocks[w],
                worker=f"host:{w}:1",
                rng=random.Random(i),
            )
            for i, w in enumerate(WORKERS)
        }
        now = self.clock.now()
        self.stores["w1"].create_many(
            [
                (
                    Subject(
                        factory="f",
                        name=n,
                        state="new",
                        created_at=now,
                        updated_at=now,
                        entered_at=now,
                    ),
                    Event(
                        kind=EventKind.CREATED,
                        factory="f",
                        subject=n,
                        at=now,
                        worker="setup",
                        to_state="new",
                    ),
                )
                for n in SUBJECTS
            ]
        )
        self.held: list[Held] = []
        self.recorded = 0  # results and recoveries the store accepted: each one commit

    def teardown(self) -> None:
        for s in self.stores.values():
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ helpers

    def _subject(self, name: str) -> Subject:
        return self.stores["w1"].read_subject("f", name)[0]

    def _plan(self, worker: str, cap: int | None = None):  # type: ignore[no-untyped-def]
        """What the worker's loop plans: leases judged by its own observer."""
        ex = self.ex[worker]
        snap = ex.store.snapshot()
        now = ex.clock.now()
        ends = ex.claims.observe(snap, now)
        ex.claims.view = View(snap=snap, facts=None, ends=ends)
        return plan(self.config, snap, now=now, max_parallel=cap, ends=ends)

    def _live(self, s: Subject) -> bool:
        """The subject's claim is live by its holder's own clock (the truth here)."""
        if s.claim is None:
            return False
        worker = s.claim.holder.split(":")[1]
        return s.claim.expires_at - timedelta(seconds=SKEW[worker]) > self.clock.now()

    # ------------------------------------------------------------ rules

    @rule(worker=st.sampled_from(WORKERS), name=st.sampled_from(SUBJECTS))
    def claim(self, worker: str, name: str) -> None:
        """A worker plans and claims a subject the plan offers it."""
        start = next((s for s in self._plan(worker).starts if s.subject == name), None)
        if start is None:
            return
        lease = self.ex[worker].claims.claim(start)
        event("claim won" if lease else "claim lost (cap, lock or race)")
        if lease is not None:
            self.held.append(Held(worker=worker, lease=lease))

    @rule(worker=st.sampled_from(WORKERS), other=st.sampled_from(WORKERS))
    def claim_from_stale_plans(self, worker: str, other: str) -> None:
        """Two workers plan from the same state, one as if the cap were 4 (a stale or
        misconfigured view), then both claim everything they planned: only the semaphores,
        locks and subject CAS stand between them and a broken cap."""
        stale = self._plan(worker, cap=len(SUBJECTS)).starts
        fresh = self._plan(other).starts[:1]
        for who, starts in ((other, fresh), (worker, stale)):
            for start in starts:
                lease = self.ex[who].claims.claim(start)
                event("stale-plan claim won" if lease else "stale-plan claim refused")
                if lease is not None:
                    self.held.append(Held(worker=who, lease=lease))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        """A worker renews one of its leases (it may find it taken over)."""
        h = data.draw(st.sampled_from(self.held))
        self.ex[h.worker].claims.renew(h.lease)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), ok=st.booleans())
    def complete(self, data: st.DataObject, ok: bool) -> None:
        """A step ends (success or failure); a stale attempt's result must be refused."""
        h = data.draw(st.sampled_from(self.held))
        self.held.remove(h)
        mine = h.lease.subject.claim
        assert mine is not None
        current = self._subject(h.lease.subject.name)
        stale = current.claim is None or current.claim.epoch != mine.epoch
        tip_before = self.stores["w1"].read_ref(refs.subject_ref("f", current.name))
        out = self.ex[h.worker].attempts.record(h.lease, _result(ok))
        event("stale result" if stale else "live result")
        if stale:
            assert not out.recorded, "a result from a stale epoch was applied"
            after = self.stores["w1"].read_ref(refs.subject_ref("f", current.name))
            assert after == tip_before, "a refused result still moved the ref"
        else:
            assert out.recorded
            self.recorded += 1

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def complete_and_chain(self, data: st.DataObject) -> None:
        """A step succeeds and its worker claims the next step in the same commit."""
        h = data.draw(st.sampled_from(self.held))
        self.held.remove(h)
        mine = h.lease.subject.claim
        assert mine is not None
        current = self._subject(h.lease.subject.name)
        stale = current.claim is None or current.claim.epoch != mine.epoch
        ex = self.ex[h.worker]
        ex.claims.view = View(snap=ex.store.snapshot(), facts=None)
        out, nxt = ex.attempts._record(h.lease, _result(True), chain=True)
        event("chained" if nxt else "not chained")
        assert out.recorded != stale
        if out.recorded:
            self.recorded += 1
        if nxt is not None:
            self.held.append(Held(worker=h.worker, lease=nxt))

    @rule(seconds=st.integers(min_value=1, max_value=45))
    def tick(self, seconds: int) -> None:
        """Time passes: leases, locks and backoffs may expire."""
        self.clock.advance(seconds)

    @rule(worker=st.sampled_from(WORKERS))
    def recover(self, worker: str) -> None:
        """A worker records expired leases as `worker lost`."""
        for exp in self._plan(worker).expired:
            if self.ex[worker].repair.recover(exp):
                self.recorded += 1

    @rule(name=st.sampled_from(SUBJECTS))
    def manual_move(self, name: str) -> None:
        """A person moves a subject back to `new` by hand (ending any claim)."""
        store = self.stores["w2"]
        subj, tip = store.read_subject("f", name)
        now = self.clock.now()
        new = Subject(
            factory="f",
            name=name,
            state="new",
            epoch=subj.epoch + 1,
            created_at=subj.created_at,
            updated_at=now,
            entered_at=now,
        )
        ev = Event(
            kind=EventKind.MOVED,
            factory="f",
            subject=name,
            at=now,
            worker="person",
            from_state=subj.state,
            to_state="new",
            epoch=new.epoch,
            reason="test",
        )
        try:
            store.advance(refs.subject_ref("f", name), new, ev, expected=tip)
        except RefConflict:
            return
        self.recorded += 1

    # ------------------------------------------------------------ invariants

    @invariant()
    def caps_hold(self) -> None:
        """Never more live claims than the global cap, nor than the step cap on `test`."""
        subs = [self._subject(n) for n in SUBJECTS]
        live = [s for s in subs if self._live(s)]
        assert len(live) <= CAP
        assert sum(1 for s in live if s.claim and s.claim.step == "test") <= 1

    @invariant()
    def one_believer_per_live_claim(self) -> None:
        """At most one worker's lease matches a subject's live claim epoch."""
        for n in SUBJECTS:
            s = self._subject(n)
            if s.claim is None or not self._live(s):
                continue
            believers = [
                h
                for h in self.held
                if h.lease.subject.name == n
                and h.lease.subject.claim is not None
                and h.lease.subject.claim.epoch == s.claim.epoch
            ]
            assert len(believers) <= 1

    @invariant()
    def lock_has_one_holder(self) -> None:
        """Lock L is held by at most one live `ship` claim at any instant, and names it."""
        lock, _ = self.ex["w1"].claims.locks.read("L")
        holders = [
            s
            for s in (self._subject(n) for n in SUBJECTS)
            if s.claim is not None and s.claim.step == "ship" and self._live(s)
        ]
        assert len(holders) <= 1
        if holders:
            assert lock is not None and not lock.released
            assert lock.subject == f"f/{holders[0].name}"

    @invariant()
    def no_event_lost(self) -> None:
        """Every accepted result, recovery and move is one commit in the subjects' history."""
        out = subprocess.run(
            [
                "git",
                "log",
                "--format=%(trailers:key=Freq-Event,valueonly)",
                "--glob=refs/frequency/subjects",
            ],
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        counted = sum(out.count(k) for k in ("transitioned", "failed", "moved", "released"))
        assert counted == self.recorded


TestRuntime = Runtime.TestCase
TestRuntime.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
