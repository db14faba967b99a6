"""Pause, autonomy, approvals, gates and named locks through the CLI."""

from __future__ import annotations

import json

from .conftest import FreqRepo

FACTORY = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - id: build
    from_states: [new]
    to_state: built
    run: "true"
  - id: ship
    from_states: [built]
    to_state: shipped
    approval: true
    locks: ["deploy"]
    run: "true"
  - id: sign_off
    from_states: [shipped]
    to_state: done
"""


def _state(r: FreqRepo, name: str) -> str:
    return json.loads(r.run("show", "f", name, "--json").out)["subject"]["state"]  # type: ignore[no-any-return]


def test_supervised_waits_for_approval_and_gate_moves_on_approve(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Under supervised, `approval: true` steps wait; approving lets them run; a gate
    step moves the subject the moment it is approved."""
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    r.run("autonomy", "f", "supervised", "--reason", "new team").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _state(r, "x") == "built"
    why = r.run("why", "f", "x").assert_success().out
    assert why == (
        "f/x [built]:\n  - autonomy is supervised: ship waits for approval "
        "(`git freq approve f x ship`)\n"
    )
    r.run("approve", "f", "x", "ship").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _state(r, "x") == "shipped"
    gate = r.run("why", "f", "x", "--json").assert_success()
    assert json.loads(gate.out)["kind"] == "gate"
    res = r.run("approve", "f", "x", "sign_off", "--reason", "looks good").assert_success()
    assert res.out == "f/x: sign_off approved -> done\n"
    assert _state(r, "x") == "done"
    msg = r.git("log", "-1", "--format=%B", "refs/frequency/subjects/f/x")
    assert "approved by " in msg and "looks good" in msg
    control = r.git("log", "--format=%s", "refs/frequency/control/f").splitlines()
    assert control == ["f: approve x ship", "f: autonomy supervised"]


def test_manual_autonomy_and_pause_explain_themselves(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """manual: nothing starts without approval; paused: nothing is claimed at all."""
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    r.run("autonomy", "f", "manual").assert_success()
    assert "autonomy is manual: build waits for approval" in r.run("why", "f", "x").out
    r.run("autonomy", "f", "auto").assert_success()
    r.run("pause", "f", "--reason", "incident").assert_success()
    assert r.run("why", "f", "x").out.endswith(": incident\n")
    assert r.run("run", "--until-idle").assert_success().out.startswith("done: 0 succeeded")
    r.run("resume", "f").assert_success()
    r.run("run", "--once").assert_success()
    assert _state(r, "x") == "built"


def test_approve_refuses_wrong_step_or_state(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Approving a step that cannot start from the subject's state says why."""
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    bad = r.run("approve", "f", "x", "ship").assert_failure()
    assert bad.err == "git freq: f/x is in new; step ship starts from built\n"
    nope = r.run("approve", "f", "x", "deploy").assert_failure()
    assert nope.err == "git freq: factory 'f' has no step 'deploy' (steps: build, ship, sign_off)\n"


def test_locks_list_and_break(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A held lock is listed with its holder; breaking it is a commit with the reason."""
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    assert r.run("locks").out == "no locks held\n"
    r.run("run", "--until-idle").assert_success()  # ship runs, takes and releases `deploy`
    rows = json.loads(r.run("locks", "--all", "--json").assert_success().out)
    assert [(row["name"], row["held"]) for row in rows] == [("deploy", False)]
    history = r.git("log", "--format=%s", "refs/frequency/locks/deploy").splitlines()
    assert [h.split(": ")[1].split()[0] for h in history] == ["release", "acquire"]
    broke = r.run("locks", "break", "deploy", "--reason", "tidy").assert_success()
    assert broke.out.startswith("broke lock deploy (was held by ")
    assert "Freq-Reason: tidy" in r.git("log", "-1", "--format=%B", "refs/frequency/locks/deploy")
    missing = r.run("locks", "break", "nope", "--reason", "x").assert_failure()
    assert missing.err == "git freq: no lock named 'nope'; see `git freq locks --all`\n"


SHIP = """
factory_id: g
state: {initial: new, terminal: [done]}
steps:
  - {id: ship, from_states: [new], to_state: done, locks: [deploy], run: "true"}
"""


def test_a_lock_whose_claim_ended_is_stale_at_once(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A worker took `deploy` for x and was then recorded lost: `locks` shows the lock as
    stale and why, `status` no longer counts it held, and y, which needs it, is ready,
    though the lock's own ttl has minutes to go."""
    import random

    from freq import refs, transitions
    from freq.clock import SystemClock
    from freq.config import load_config
    from freq.loop import Worker
    from freq.store import Store

    r = freq_repo({".frequency/g.yaml": SHIP})
    r.run("add", "g", "x", "y").assert_success()
    clock = SystemClock()
    w = Worker(Store.discover(r.path, clock=clock), load_config(r.path), clock=clock, worker="h:1")
    lease = w.claims.claim(w._plan(1, None).starts[0])
    assert lease is not None and lease.subject.name == "x"
    assert r.run("locks").out.splitlines()[1].split()[-1] == "held"
    assert r.run("status").out.endswith("locks held: deploy\n")
    lost = transitions.worker_lost(
        lease.subject,
        w.config.step("g", "ship"),
        at=clock.now(),
        worker="h:2",
        rng=random.Random(1),
    )
    w.store.advance(refs.subject_ref("g", "x"), lost.subject, lost.event, expected=lease.tip)
    w.store.close()
    assert r.run("locks").out.splitlines()[1].endswith("stale: its claim ended: worker lost")
    (row,) = json.loads(r.run("locks", "--json").out)
    assert (row["held"], row["why"]) == (False, "its claim ended: worker lost")
    assert "locks held" not in r.run("status").out
    assert r.run("why", "g", "y").out == "g/y [new]:\n  - ready: ship attempt 1 would start now\n"
