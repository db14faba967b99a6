"""Predicates end to end: subject_state across factories, capacity, command facts."""

from __future__ import annotations

import json

from .conftest import FreqRepo

BUILD = """
factory_id: build
state: {initial: selected, terminal: [promoted]}
steps:
  - id: promote
    from_states: [selected]
    to_state: promoted
    run: "true"
"""
DEPLOY = """
factory_id: deploy
state: {initial: queued, terminal: [live]}
steps:
  - id: ship
    from_states: [queued]
    to_state: live
    requires:
      - subject_state: {factory_id: build, subject: "{subject}", states: [promoted]}
      - command: {run: "echo run >> command-runs.txt; test -f open.txt", timeout: 5s}
    run: "true"
"""


def test_cross_factory_and_command_predicates(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """deploy waits for build to promote the same subject and for a command to pass; why
    says which and with what values; the command runs once per planning cycle."""
    r: FreqRepo = freq_repo({".frequency/build.yaml": BUILD, ".frequency/deploy.yaml": DEPLOY})
    r.run("add", "build", "a", "b").assert_success()
    r.run("add", "deploy", "a", "b", "c").assert_success()
    why = json.loads(r.run("why", "deploy", "a", "--json").assert_success().out)
    assert why["reasons"] == [
        "requires subject_state build/a in [promoted]: it is in [selected]; "
        "command `echo run >> command-runs.txt; test -f open.txt` does not exit 0"
    ]
    runs = (r.path / "command-runs.txt").read_text().count("run")
    assert runs == 1
    r.run("plan").assert_success()
    assert (r.path / "command-runs.txt").read_text().count("run") == 2  # once per cycle
    (r.path / "open.txt").write_text("")
    r.run("run", "--until-idle").assert_success()
    states = {
        f["factory"]: dict(f["states"])
        for f in json.loads(r.run("status", "--json").out)["factories"]
    }
    assert states["deploy"] == {"queued": 1, "live": 2}
    c = json.loads(r.run("why", "deploy", "c", "--json").out)
    assert c["reasons"] == ["requires subject_state build/c in [promoted]: it does not exist"]
