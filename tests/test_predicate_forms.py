"""The design post's predicate form (`- type: subject_state` with its fields beside it) loads as
written and means the same as the keyed form (`- subject_state: {...}`), nested in either."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import yaml

from freq.config import expand_config, load_config
from freq.model import AllOf, AnyOf, Capacity, Changed, Command, Not, SubjectState

from .conftest import FreqRepo

BUILD = """\
factory_id: build
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
"""


def _step(requires: str) -> str:
    """A deploy factory whose one step has the `requires:` block `requires` (YAML)."""
    return (
        "factory_id: deploy\n"
        "state: {initial: queued, terminal: [live]}\n"
        "steps:\n"
        "  - id: ship\n"
        "    from_states: [queued]\n"
        "    to_state: live\n"
        "    run: ./ship\n" + textwrap.indent(textwrap.dedent(requires).strip("\n"), "    ") + "\n"
    )


def _requires(tmp_path: Path, requires: str) -> tuple[object, ...]:
    """The predicate records `requires` loads into, beside the seed's build factory."""
    folder = tmp_path / ".frequency"
    folder.mkdir(parents=True)
    (folder / "build.yaml").write_text(BUILD)
    (folder / "deploy.yaml").write_text(_step(requires))
    deploy = load_config(tmp_path).factory("deploy")
    assert deploy is not None
    return deploy.steps[0].requires


# The design post's snippet, verbatim (SPEC §4): "Deploy waits for build to finish".
POST_SUBJECT_STATE = """
# Deploy waits for build to finish
requires:
  - type: subject_state
    factory_id: build
    subject: "{subject}"
    states: [promoted]
"""


def test_the_posts_subject_state_snippet_loads_as_written(tmp_path: Path) -> None:
    """The seed post's literal snippet gives the record the keyed form gives."""
    typed = _requires(tmp_path / "typed", POST_SUBJECT_STATE)
    keyed = _requires(
        tmp_path / "keyed",
        'requires:\n  - subject_state: {factory_id: build, subject: "{subject}", '
        "states: [promoted]}",
    )
    assert typed == keyed == (SubjectState(factory_id="build", states=("promoted",)),)


def test_every_kind_and_nesting_means_the_same_in_both_forms(tmp_path: Path) -> None:
    """Typed inside keyed inside typed: the same records as the all-keyed form."""
    typed = _requires(
        tmp_path / "typed",
        """
        requires:
          - {type: capacity, factory_id: build, states: [selected, implemented], below: 5}
          - {type: command, run: "test -f x", timeout: 5s}
          - type: all
            predicates:
              - any:
                  - {type: changed, paths: [src], since: last_success, branch: main}
                  - type: not
                    predicate: {subject_state: {factory_id: build, not_states: [failed]}}
              - type: any
                predicates: [{type: subject_state, factory_id: build, states: [promoted]}]
        """,
    )
    keyed = _requires(
        tmp_path / "keyed",
        """
        requires:
          - capacity: {factory_id: build, states: [selected, implemented], below: 5}
          - command: {run: "test -f x", timeout: 5s}
          - all:
              - any:
                  - changed: {paths: [src], since: last_success, branch: main}
                  - not: {subject_state: {factory_id: build, not_states: [failed]}}
              - any: [{subject_state: {factory_id: build, states: [promoted]}}]
        """,
    )
    assert typed == keyed
    assert typed == (
        Capacity(factory_id="build", states=("selected", "implemented"), below=5),
        Command(run="test -f x", timeout=timedelta(seconds=5)),
        AllOf(
            items=(
                AnyOf(
                    items=(
                        Changed(paths=("src",), branch="main"),
                        Not(item=SubjectState(factory_id="build", not_states=("failed",))),
                    )
                ),
                AnyOf(items=(SubjectState(factory_id="build", states=("promoted",)),)),
            )
        ),
    )


def test_expand_keeps_each_predicate_as_written(tmp_path: Path) -> None:
    """`validate --expand` shows the typed form as the file has it."""
    _requires(tmp_path, POST_SUBJECT_STATE)
    step = expand_config(tmp_path)[".frequency/deploy.yaml"]["steps"][0]
    assert step["requires"] == yaml.safe_load(POST_SUBJECT_STATE)["requires"]


IDEAS = """\
factory_id: ideas
state: {initial: new, terminal: [queued]}
steps:
  - id: ideate
    from_states: [new]
    to_state: queued
    run: echo "freq:subject $FREQ_SUBJECT"
    emits: {factory_id: build, state: selected}
    max_parallel: 1
    # ideas stops while build queue is full (the design post's capacity gating)
    requires:
      - type: capacity
        factory_id: build
        states: [selected]
        below: 2
"""


def test_ideas_stops_while_the_build_queue_is_full(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The post's capacity idea, typed: ideas feeds build only while build's queue has room."""
    r: FreqRepo = freq_repo({".frequency/build.yaml": BUILD, ".frequency/ideas.yaml": IDEAS})
    r.run("add", "build", "x").assert_success()
    r.run("add", "ideas", "a", "b", "c").assert_success()
    r.run("run", "--until-idle").assert_success()
    status = {
        f["factory"]: dict(f["states"])
        for f in json.loads(r.run("status", "--json").assert_success().out)["factories"]
    }
    assert (status["build"]["selected"], status["ideas"]) == (2, {"new": 2, "queued": 1})
    for waiting in ("b", "c"):
        why = json.loads(r.run("why", "ideas", waiting, "--json").assert_success().out)
        assert why["reasons"] == ["requires capacity build [selected] below 2: 2 there"]
