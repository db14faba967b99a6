"""A running attempt whose refs are moved outside its claim stops at the next heartbeat
(Faults issue, item 5): real step processes, the heartbeat driven by hand, no sleeping to
measure time (a FakeClock that never moves: nothing here is a renewal)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from freq import ops, refs
from freq.attempts import StepOutcome
from freq.claims import Lease
from freq.clock import FakeClock
from freq.config import load_config
from freq.loop import Worker
from freq.report import Collecting, ProgressKind
from freq.store import Store

from .conftest import FreqRepo

pytestmark = pytest.mark.git


def _factory(pids: Path) -> str:
    # the step's shell and its child sleep, both in the step's process group
    return f"""
factory_id: f
state: {{initial: new, terminal: [done]}}
steps:
  - id: work
    from_states: [new]
    to_state: done
    locks: [deploy]
    run: 'sleep 60 & echo $$ $! > {pids}; wait'
"""


def _until(pred: Callable[[], bool], what: str) -> None:
    """Wait for a condition another process brings about (bounded; never a timing check)."""
    deadline = time.monotonic() + 30
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Running:
    """A worker with one attempt running its real step process on a thread of its own."""

    worker: Worker
    lease: Lease
    events: Collecting
    pids: tuple[int, int]
    thread: threading.Thread
    outcome: list[StepOutcome]

    def stopped(self) -> StepOutcome:
        """The attempt's outcome once its thread ended; its whole process group is gone."""
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        for pid in self.pids:
            _until(lambda pid=pid: not _alive(pid), f"step process {pid} gone")  # type: ignore[misc]
        return self.outcome[0]

    def lost(self) -> list[str]:
        return [e.detail for e in self.events.events if e.event is ProgressKind.LOST]


@contextmanager
def _running(r: FreqRepo, pids: Path) -> Iterator[Running]:
    events = Collecting()
    clock = FakeClock()
    w = Worker(
        Store.discover(r.path, clock=clock),
        load_config(r.path),
        clock=clock,
        worker="w:1:1",
        reporter=events,
        rng=random.Random(1),
    )
    (start,) = w._plan(1, None).starts
    lease = w.claims.claim(start)
    assert lease is not None
    outcome: list[StepOutcome] = []
    thread = threading.Thread(target=lambda: outcome.append(w.attempts.execute(lease)))
    thread.start()
    try:
        _until(lambda: pids.exists() and len(pids.read_text().split()) == 2, "step started")
        shell, child = (int(p) for p in pids.read_text().split())
        run = Running(w, lease, events, (shell, child), thread, outcome)
        w.heartbeat.beat()  # nothing moved yet: a beat changes nothing
        assert not lease.lost and all(_alive(p) for p in run.pids)
        yield run
    finally:
        w.attempts.cancel.set()  # whatever happened, stop the step
        thread.join(timeout=60)
        w.store.close()


@pytest.fixture
def project(freq_repo, tmp_path: Path) -> tuple[FreqRepo, Path]:  # type: ignore[no-untyped-def]
    pids = tmp_path / "pids"
    r = freq_repo({".frequency/f.yaml": _factory(pids)})
    r.run("add", "f", "x").assert_success()
    return r, pids


def test_a_manual_move_stops_the_running_step_at_the_next_beat(project) -> None:  # type: ignore[no-untyped-def]
    """`git freq transition` (ops) moves the subject: the next beat loses the lease, the
    step's group is stopped, and its result is refused."""
    r, pids = project
    with _running(r, pids) as run:
        ops.transition(ops.App(r.path), "f", "x", "done", reason="shipped by hand")
        run.worker.heartbeat.beat()
        assert run.lease.lost
        assert run.lost() == ["subject moved outside its claim; stopping the step"]
        out = run.stopped()
    assert not out.recorded
    assert out.detail == "result refused: the claim was taken over (stale epoch)"
    last = r.git("log", "-1", "--format=%s", refs.subject_ref("f", "x")).strip()
    assert last == "f/x: manual new -> done"


def test_a_plain_update_ref_stops_the_running_step_too(project) -> None:  # type: ignore[no-untyped-def]
    """Moving the subject ref behind Frequency's back (`git update-ref` to its parent) is
    noticed the same way."""
    r, pids = project
    with _running(r, pids) as run:
        ref = refs.subject_ref("f", "x")
        r.git("update-ref", ref, f"{run.lease.tip}^", run.lease.tip)
        run.worker.heartbeat.beat()
        assert run.lost() == ["subject moved outside its claim; stopping the step"]
        out = run.stopped()
    assert not out.recorded


def test_a_deleted_lock_ref_stops_the_step_and_is_recorded_as_a_break(project) -> None:  # type: ignore[no-untyped-def]
    """`git update-ref -d` of a held lock: the holder stops its step and writes the lock
    back, released, on top of its last tip, saying what happened; the history is kept."""
    r, pids = project
    lock = refs.lock_ref("deploy")
    with _running(r, pids) as run:
        r.git("update-ref", "-d", lock)
        run.worker.heartbeat.beat()
        why = "lock deploy broken: its ref was deleted outside Frequency"
        assert run.lost() == [f"{why}; stopping the step"]
        out = run.stopped()
    assert out.recorded  # the claim is still the attempt's: its stopped run is recorded
    assert r.git("log", "--format=%s", lock).splitlines() == [
        "lock deploy: break by w:1:1",
        "lock deploy: acquire by w:1:1",
    ]
    assert f"Freq-Reason: {why}\n" in r.git("log", "-1", "--format=%B", lock)
    state = r.run("locks", "--all", "--json").assert_success().out
    assert '"held": false' in state and '"why": "released"' in state


def test_a_lock_broken_by_hand_stops_the_step(project) -> None:  # type: ignore[no-untyped-def]
    """`git freq locks break` moves the lock ref: the holder loses its lease at once."""
    r, pids = project
    with _running(r, pids) as run:
        r.run("locks", "break", "deploy", "--reason", "needed it").assert_success()
        run.worker.heartbeat.beat()
        assert run.lost() == ["lock deploy was taken over; stopping the step"]
        run.stopped()


def test_the_attempts_own_last_write_is_not_a_move(project) -> None:  # type: ignore[no-untyped-def]
    """A beat that comes after the attempt recorded its result (its own move of the ref)
    loses nothing and writes nothing."""
    r, pids = project
    with _running(r, pids) as run:
        run.worker.attempts.cancel.set()  # end the step; the attempt records a release
        run.stopped()
        tip = r.git("rev-parse", refs.subject_ref("f", "x")).strip()
        run.worker.heartbeat.beat()
        assert not run.worker.claims.renew(run.lease)
        assert run.lost() == []
        assert r.git("rev-parse", refs.subject_ref("f", "x")).strip() == tip
