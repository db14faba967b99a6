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


CHANGED = """
factory_id: docs
state: {initial: stale, terminal: [never]}
steps:
  - id: publish
    from_states: [stale]
    to_state: stale
    requires:
      - changed: {paths: ["docs/**/*.md", "README"], branch: main}
    run: "true"
"""


def test_changed_holds_until_the_step_succeeds_then_again_on_a_new_change(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """`changed`: true before the first success (README exists), false right after, true
    again once a matching file changes on the branch, and not for other files."""
    r: FreqRepo = freq_repo({".frequency/docs.yaml": CHANGED})
    r.run("add", "docs", "site").assert_success()
    assert json.loads(r.run("why", "docs", "site", "--json").out)["kind"] == "ready"
    r.run("run", "--once").assert_success()
    why = json.loads(r.run("why", "docs", "site", "--json").out)
    assert why["reasons"] == ["docs/**/*.md, README unchanged since last success"]
    r.write("src/main.py", "print()\n")
    r.git("add", "-A")
    r.git("commit", "-qm", "code only")
    assert json.loads(r.run("why", "docs", "site", "--json").out)["kind"] == "predicate"
    r.write("docs/guide/intro.md", "# hi\n")
    r.git("add", "docs")
    r.git("commit", "-qm", "docs")
    assert json.loads(r.run("why", "docs", "site", "--json").out)["kind"] == "ready"


def test_path_globs() -> None:
    """`*` stays in a folder, `**` spans folders, a folder name covers what is under it."""
    from freq.facts import path_matches

    assert path_matches("docs/**/*.md", "docs/a/b/c.md")
    assert path_matches("docs/**/*.md", "docs/c.md")
    assert not path_matches("docs/*.md", "docs/a/c.md")
    assert path_matches("src", "src/x/y.py") and path_matches("src/", "src/y.py")
    assert not path_matches("src", "srcs/y.py")
