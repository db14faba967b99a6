"""Recovering an expired claim: what is left of the lost attempt on this host is stopped first,
never a process that merely reuses a pid the claim names, never an attempt still running here."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from freq import proc, refs, transitions
from freq.clock import FakeClock, SystemClock
from freq.config import load_config
from freq.loop import Worker
from freq.planner import Expired, plan
from freq.runtime import attempt_marks
from freq.store import Store

from .conftest import NO_BACKOFF, FreqRepo, one_step

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds processes through /proc and pidfds"
)

FACTORY = one_step('"true"', retry=NO_BACKOFF % 2)


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def _lost_claim(r: FreqRepo, holder: str) -> int:
    """Write a claim of f/x by `holder` that expired an hour ago, as a killed worker leaves
    it; its epoch. Its lease is 1 s: a worker that sees it first waits that long (on its
    own clock) before taking it over."""
    store = Store.discover(r.path, clock=SystemClock())
    try:
        subj, tip = store.read_subject("f", "x")
        at = datetime.now(UTC) - timedelta(hours=1)
        c = transitions.claimed(
            subj, step="work", attempt=1, worker=holder, at=at, ttl=timedelta(seconds=1)
        )
        store.advance(refs.subject_ref("f", "x"), c.subject, c.event, expected=tip)
        return c.subject.epoch
    finally:
        store.close()


def _sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], env={**os.environ, **env}, start_new_session=True)


def _project(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    r: FreqRepo = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    return r


def test_recovery_stops_the_lost_attempts_processes_on_this_host(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A process that carries the lost attempt's variables is stopped, and gone, before the
    claim is recorded as `worker lost`; the retry then runs."""
    r = _project(freq_repo)
    holder = f"{proc.this_host()}:999999:1"  # a worker of this host that is gone
    epoch = _lost_claim(r, holder)
    left = _sleeper(attempt_marks(worker=holder, factory="f", subject="x", epoch=epoch))
    out = r.run("run", "--until-idle").assert_success().out.splitlines()
    assert left.poll() == -15  # SIGTERM, from the recovery
    assert out == [
        f"recovered f/x work #1: worker lost: {holder} (stopped its 1 process)",
        "finished  f/x work #2: new -> done",
        "done: 1 succeeded, 0 failed, 1 recovered, 0 lost races",
    ]


def test_a_pid_the_lost_claim_names_is_never_signalled_when_another_process_has_it(
    freq_repo,
) -> None:  # type: ignore[no-untyped-def]
    """The holder `host:pid:start` names a pid that now belongs to an unrelated process, and
    other processes carry part of the attempt's identity (another epoch, another subject):
    none of them is signalled. Only the whole identity, read through a pidfd, counts."""
    r = _project(freq_repo)
    unrelated = _sleeper({})
    holder = f"{proc.this_host()}:{unrelated.pid}:{_start_time(unrelated.pid)}"
    epoch = _lost_claim(r, holder)
    marks = attempt_marks(worker=holder, factory="f", subject="x", epoch=epoch)
    earlier = _sleeper({**marks, "FREQ_EPOCH": str(epoch - 1)})
    neighbour = _sleeper({**marks, "FREQ_SUBJECT": "y"})
    try:
        out = r.run("run", "--until-idle").assert_success().out.splitlines()
        assert out[0] == (
            f"recovered f/x work #1: worker lost: {holder} (none of its processes was left)"
        )
        assert [p.poll() for p in (unrelated, earlier, neighbour)] == [None, None, None]
    finally:
        for p in (unrelated, earlier, neighbour):
            p.kill()
            p.wait()


def test_a_claim_of_another_host_is_recovered_and_says_nothing_could_be_stopped(
    freq_repo,
) -> None:  # type: ignore[no-untyped-def]
    """Processes on another machine are out of reach: the line says so, and recovery goes on."""
    r = _project(freq_repo)
    _lost_claim(r, "elsewhere:42:7")
    out = r.run("run", "--until-idle").assert_success().out.splitlines()
    assert out[0] == (
        "recovered f/x work #1: worker lost: elsewhere:42:7 "
        "(on another host: its processes cannot be stopped from here)"
    )


def test_an_attempt_this_process_runs_is_not_recovered_by_it(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Its own claim looks expired to a worker whose heartbeat was held up (SIGSTOP, a
    stalled disk), yet the step runs in this very process: it is not lost, so it is neither
    recorded as `worker lost` nor stopped; its heartbeat renews the claim or finds it taken."""
    ready = tmp_path / "ready"
    r = freq_repo(
        {
            ".frequency/f.yaml": FACTORY.replace('"true"', f"'echo > {ready}; sleep 30'"),
        }
    )
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    w = Worker(
        Store.discover(r.path, clock=clock),
        load_config(r.path),
        clock=clock,
        worker=proc.worker_identity(proc.this_host()),
        rng=random.Random(1),
    )
    try:
        lease = w.claims.claim(plan(w.config, w.store.snapshot(), now=clock.now()).starts[0])
        assert lease is not None
        done = threading.Event()
        step = threading.Thread(target=lambda: (w.attempts.execute(lease), done.set()))
        step.start()
        for _ in range(1000):
            if ready.exists():
                break
            threading.Event().wait(0.01)
        clock.advance(3600)  # no renewal was written meanwhile: the lease has run out
        p = plan(w.config, w.store.snapshot(), now=clock.now())
        assert [e.subject for e in p.expired] == ["x"]
        assert w.repair.recover(p.expired[0]) is False
        assert not done.is_set()  # the step was not stopped
        subj, _tip = w.store.read_subject("f", "x")
        assert subj.claim is not None and subj.last_error is None
        w.kill()  # a second Ctrl-C: the step stops and gives its claim back
        step.join(timeout=30)
        assert done.is_set()
        after = Expired.of(subj, w.store.read_ref(refs.subject_ref("f", "x")) or "")
        assert w.repair.recover(after) is False  # nothing left to recover
    finally:
        w.store.close()
