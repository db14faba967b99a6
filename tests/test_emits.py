"""emits: `freq:subject NAME K=V` lines of a successful step create subjects elsewhere,
recorded with the success so that a worker killed in between is repaired, once."""

from __future__ import annotations

import json
import random

from freq.clock import SystemClock
from freq.config import load_config
from freq.loop import Worker
from freq.planner import plan
from freq.store import Store

IDEAS = """
factory_id: ideas
state: {initial: new, terminal: [sent]}
steps:
  - id: think
    from_states: [new]
    to_state: sent
    emits: {factory_id: build, state: selected}
    run: >-
      echo "thinking about $FREQ_SUBJECT";
      echo "freq:subject $FREQ_SUBJECT-app owner=ana tier=2";
      echo "freq:subject $FREQ_SUBJECT-lib";
      echo "freq:subject bad/name"
"""
BUILD = """
factory_id: build
state: {initial: selected, terminal: [done]}
steps:
  - id: make
    from_states: [selected]
    to_state: done
    run: "true"
"""


def test_emitted_subjects_are_created_with_their_data(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A success creates each emitted subject in the target factory and state, once."""
    r = freq_repo({".frequency/ideas.yaml": IDEAS, ".frequency/build.yaml": BUILD})
    r.run("add", "ideas", "x").assert_success()
    out = r.run("run", "--once").assert_success()
    assert out.out.count("finished") == 1
    status = {
        f["factory"]: dict(f["states"])
        for f in json.loads(r.run("status", "--json").out)["factories"]
    }
    assert status["build"]["selected"] == 2
    app = json.loads(r.run("show", "build", "x-app", "--json").out)["subject"]
    assert app["data"] == {"owner": "ana", "tier": "2"}
    created = r.git("log", "-1", "--format=%B", "refs/frequency/subjects/build/x-lib")
    assert "emitted by ideas/x" in created
    ideas = json.loads(r.run("show", "ideas", "x", "--json").out)["subject"]
    assert [e["name"] for e in ideas["emitted"]] == ["x-app", "x-lib"]
    r.run("run", "--until-idle").assert_success()
    status = {
        f["factory"]: dict(f["states"])
        for f in json.loads(r.run("status", "--json").out)["factories"]
    }
    assert status["build"]["done"] == 2


def test_a_worker_killed_between_success_and_emits_is_repaired_once(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The success is recorded but the subjects are not created: the next run creates
    them, and a further run creates nothing more."""
    r = freq_repo({".frequency/ideas.yaml": IDEAS, ".frequency/build.yaml": BUILD})
    r.run("add", "ideas", "y").assert_success()
    store = Store.discover(r.path, clock=SystemClock())
    cfg = load_config(r.path)
    ex = Worker(store, cfg, clock=SystemClock(), worker="h:1:1", rng=random.Random(1))
    start = plan(cfg, store.snapshot(), now=SystemClock().now()).starts[0]
    lease = ex.claims.claim(start)
    assert lease is not None
    ex.repair.create = lambda *a, **k: 0  # type: ignore[method-assign]  # "killed" right after
    assert ex.attempts.execute(lease).recorded
    store.close()
    assert r.git("for-each-ref", "refs/frequency/subjects/build") == ""
    p = json.loads(r.run("plan", "--json").out)
    assert [(e["factory"], e["subject"]) for e in p["emits"]] == [("ideas", "y")]
    r.run("run", "--once").assert_success()
    refs = r.git("for-each-ref", "--format=%(refname:lstrip=3)", "refs/frequency/subjects/build")
    assert refs.split() == ["build/y-app", "build/y-lib"]
    assert json.loads(r.run("plan", "--json").out)["emits"] == []
