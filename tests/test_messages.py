"""Messages a new user meets: each says what is true, in one line, naming what to fix."""

from __future__ import annotations

import json
import sys

from .conftest import FreqRepo

GUARDED = """
factory_id: f
description: Ship things, carefully.
state: {initial: s, terminal: [d, gave_up]}
steps:
  - id: go
    from_states: [s]
    to_state: d
    approval: true
    requires:
      - changed: {paths: [src], branch: release}
      - command: {run: "sleep 5", timeout: 1s}
    run: "true"
"""
FAILING = """
factory_id: f
description: Ship things, carefully.
state: {initial: s, terminal: [d, gave_up]}
steps:
  - {id: go, from_states: [s], to_state: d, run: "false", failure: terminal,
     on_terminal: gave_up}
"""


def test_why_names_manual_autonomy_alone_a_missing_branch_and_a_timeout(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Under manual autonomy `why` does not also claim supervised; a `changed` predicate on
    a branch that does not exist says so; a timed-out command says after how long."""
    r: FreqRepo = freq_repo({".frequency/f.yaml": GUARDED})
    r.run("add", "f", "x").assert_success()
    r.run("autonomy", "f", "manual").assert_success()
    assert r.run("why", "f", "x").assert_success().out == (
        "f/x [s]:\n"
        "  - autonomy is manual: go waits for approval (`git freq approve f x go`)\n"
        "  - changed src: branch release does not exist; command `sleep 5` timed out "
        "after 1s\n"
    )


def test_hand_edited_subject_json_names_the_missing_field(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A subject.json without `state` is reported with the ref and the field, not a KeyError."""
    r: FreqRepo = freq_repo({".frequency/f.yaml": FAILING})
    r.run("add", "f", "x").assert_success()
    ref = "refs/frequency/subjects/f/x"
    doc = json.loads(r.git("show", f"{ref}:subject.json"))
    del doc["state"]
    blob = r.git("hash-object", "-w", "--stdin", input_text=json.dumps(doc)).strip()
    tree = r.git("mktree", input_text=f"100644 blob {blob}\tsubject.json\n").strip()
    r.git("update-ref", ref, r.git("commit-tree", tree, "-p", ref, "-m", "edit").strip())
    err = r.run("show", "f", "x").assert_failure().err
    assert err == f"git freq: {ref}: subject.json has no field 'state'\n"
    assert (
        r.run("status").assert_success().err
        == f"warning: {ref}: subject.json has no field 'state'\n"
    )


def test_status_shows_description_and_counts_dlq_entries_from_the_queue(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A terminal failure moved to `on_terminal` still waits in the DLQ: status counts it,
    and shows the factory's description; `dlq show` of a requeue record says what it is."""
    r: FreqRepo = freq_repo({".frequency/f.yaml": FAILING})
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    head = r.run("status").assert_success().out.splitlines()[:2]
    assert head == [
        "f: 1 subject, 0 running, 1 waiting in the dead-letter queue",
        "  Ship things, carefully.",
    ]
    # without on_terminal the next failure stays parked in s, and can be requeued
    r.run("transition", "f", "x", "s", "--reason", "try again").assert_success()
    r.write(
        ".frequency/f.yaml", FAILING.replace("on_terminal: gave_up", "retry: {max_attempts: 1}")
    )
    r.run("run", "--until-idle").assert_success()
    r.run("dlq", "requeue", "f#2", "--reason", "fixed the key").assert_success()
    shown = r.run("dlq", "show", "f#3").assert_success().out.splitlines()
    commit = r.git("rev-parse", "refs/frequency/dlq/f").strip()[:12]
    who = r.git("log", "-1", "--format=%(trailers:key=Freq-By,valueonly)", "refs/frequency/dlq/f")
    assert shown[0] == f"f#3 ({commit})  requeue record of f#2 by {who.strip()}"
    assert shown[1:3] == ["  subject:  f/x", "  reason:   fixed the key"]
    assert shown[4] == "  failure:  `git freq dlq show f#2`"


def test_run_summary_counts_a_refused_result(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A step whose subject is moved by hand while it runs: its result is refused, and the
    summary counts it instead of saying 0 failed after a `failed` line."""
    step = f'"{sys.executable}" -m freq transition f "$FREQ_SUBJECT" d --reason by-hand'
    r: FreqRepo = freq_repo(
        {
            ".frequency/f.yaml": f"""
                factory_id: f
                state: {{initial: s, terminal: [d]}}
                steps:
                  - id: go
                    from_states: [s]
                    to_state: d
                    run: '{step}'
                """
        }
    )
    r.run("add", "f", "x").assert_success()
    out = r.run("run", "--until-idle").assert_success().out.splitlines()
    assert out == [
        "failed    f/x go #1: result refused: the claim was taken over (stale epoch)",
        "done: 0 succeeded, 0 failed, 0 recovered, 0 lost races, 1 refused (claim lost)",
    ]
