"""A user's classify pattern cannot hang `run`: it matches with RE2 over the bounded tail."""

from __future__ import annotations

import json

from .conftest import FreqRepo

BUILD = """\
factory_id: build
state: {initial: selected, terminal: [done, failed]}
steps:
  - id: noisy
    from_states: [selected]
    to_state: done
    # 64 KiB of "a" and a final "b": with Python's re, (a+)+$ backtracks for ever here
    run: head -c 65000 /dev/zero | tr '\\0' a; echo b; exit 1
    retry: {max_attempts: 1}
    on_terminal: failed
    classify:
      - {match: "(a+)+$", as: needs_human}
      - {match: "(a+)+b$", as: terminal}
"""


def test_a_pathological_pattern_in_run(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The first rule cannot match and is passed over; the second decides: terminal."""
    r: FreqRepo = freq_repo({".frequency/build.yaml": BUILD})
    r.run("add", "build", "app").assert_success()
    r.run("run", "--until-idle").assert_success()
    shown = json.loads(r.run("show", "build", "app", "--json").assert_success().out)
    assert shown["subject"]["state"] == "failed"
    assert shown["subject"]["last_error"]["rule"] == "classify rule 2: match '(a+)+b$'"
    assert shown["output_tail"].endswith("aaab\n")
