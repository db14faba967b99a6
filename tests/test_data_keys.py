"""Subject data keys are identifiers, one FREQ_DATA_ variable each, wherever data comes from."""

from __future__ import annotations

import json

from .conftest import FreqRepo

BUILD = """
factory_id: build
state: {initial: selected, terminal: [done]}
steps:
  - id: make
    from_states: [selected]
    to_state: done
    run: 'echo "lower=$FREQ_DATA_LOWER"'
"""
IDEAS = """
factory_id: ideas
state: {initial: new, terminal: [sent]}
steps:
  - id: think
    from_states: [new]
    to_state: sent
    emits: {factory_id: build, state: selected}
    run: >-
      echo "freq:subject clash lower=2 LOWER=3";
      echo "freq:subject spaced a-b=1";
      echo "freq:subject fine lower=1"
"""


def _refs(r: FreqRepo) -> str:
    return r.git("for-each-ref", "--format=%(refname:lstrip=3)", "refs/frequency/subjects")


def test_add_refuses_clashing_or_non_identifier_keys(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """--data, --from lines and the two merged: each refusal names the keys; nothing is added."""
    r = freq_repo({".frequency/build.yaml": BUILD})
    out = r.run("add", "build", "a", "--data", "lower=2", "--data", "LOWER=3").assert_failure(2)
    assert out.err == (
        "git freq: --data: data keys 'lower' and 'LOWER' would both be FREQ_DATA_LOWER; keep one\n"
    )
    out = r.run("add", "build", "a", "--data", "with space=1").assert_failure(2)
    assert out.err == (
        "git freq: --data: data key 'with space' is not an identifier (letters, digits and _, "
        "not starting with a digit)\n"
    )
    r.write("list.txt", "ok x=1\nbad 9lives=1\n")
    out = r.run("add", "build", "--from", "list.txt").assert_failure(2)
    assert out.err == (
        "git freq: line 2: data key '9lives' is not an identifier (letters, digits and _, "
        "not starting with a digit)\n"
    )
    r.write("list.txt", "ok LOWER=1\n")
    out = r.run("add", "build", "--from", "list.txt", "--data", "lower=2").assert_failure(2)
    assert out.err == (
        "git freq: subject 'ok': data keys 'lower' and 'LOWER' would both be "
        "FREQ_DATA_LOWER; keep one\n"
    )
    assert _refs(r) == ""
    r.run("add", "build", "a", "--data", "lower=2").assert_success()
    r.run("run", "--once").assert_success()
    shown = json.loads(r.run("show", "build", "a", "--json").out)
    assert shown["output_tail"] == "lower=2\n"


def test_emitted_lines_with_bad_keys_are_refused_with_a_warning(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """`freq:subject NAME K=V` lines follow the same rule; good lines still create subjects."""
    r = freq_repo({".frequency/ideas.yaml": IDEAS, ".frequency/build.yaml": BUILD})
    r.run("add", "ideas", "x").assert_success()
    out = r.run("run", "--once").assert_success()
    assert "emitted subject 'clash': data keys 'lower' and 'LOWER' would both be" in out.err
    assert "emitted subject 'spaced': data key 'a-b' is not an identifier" in out.err
    assert _refs(r) == "build/fine\nideas/x\n"
