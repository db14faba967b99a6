"""Batch steps: one run for many subjects, when enough wait or the oldest waited long."""

from __future__ import annotations

import json

from .conftest import FreqRepo

RELEASE = """
factory_id: release
state: {initial: ready, terminal: [shipped]}
steps:
  - id: ship
    from_states: [ready]
    to_state: shipped
    batch: {min: MIN, max: MAX, max_wait: WAIT}
    retry: {max_attempts: 2, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}
    run: >-
      echo "run: $(echo "$FREQ_SUBJECTS" | tr '\\n' ' ')" >> runs.txt;
      test "$(cat "$FREQ_SUBJECTS_FILE" | wc -l)" -gt 0; test ! -f fail
"""


def _repo(freq_repo, min_: int = 3, max_: int = 10, wait: str = "1h") -> FreqRepo:  # type: ignore[no-untyped-def]
    text = RELEASE.replace("MIN", str(min_)).replace("MAX", str(max_)).replace("WAIT", wait)
    return freq_repo({".frequency/release.yaml": text})  # type: ignore[no-any-return]


def _states(r: FreqRepo) -> dict[str, int]:
    return dict(json.loads(r.run("status", "--json").out)["factories"][0]["states"])


def test_batch_waits_for_min_then_runs_once_for_all(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Two waiting of min 3: nothing runs and why says so; a third: one run for three."""
    r = _repo(freq_repo)
    r.run("add", "release", "a", "b").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _states(r) == {"ready": 2, "shipped": 0}
    why = json.loads(r.run("why", "release", "a", "--json").out)
    assert why["kind"] == "batch"
    assert why["reasons"][0].startswith("batch ship: 2 of 3 waiting; runs when 3 wait or at ")
    r.run("add", "release", "c").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _states(r) == {"ready": 0, "shipped": 3}
    assert (r.path / "runs.txt").read_text() == "run: a b c \n"
    msgs = r.git("log", "--format=%s", "--glob=refs/frequency/subjects/release")
    assert sum("ship ready -> shipped" in m for m in msgs.splitlines()) == 3


def test_max_wait_runs_a_short_batch_and_max_splits(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """max_wait passed: fewer than min run; more than max: split over runs."""
    r = _repo(freq_repo, wait="0s")
    r.run("add", "release", "a", "b").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert (r.path / "runs.txt").read_text() == "run: a b \n"
    s = _repo(freq_repo, min_=1, max_=2)
    (s.path / "runs.txt").unlink()
    s.run("add", "release", "c", "d", "e").assert_success()
    s.run("run", "--until-idle").assert_success()
    assert _states(s) == {"ready": 0, "shipped": 5}
    assert (s.path / "runs.txt").read_text() == "run: c d \nrun: e \n"


def test_a_failed_batch_fails_each_member(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The failure policy applies to each member: each records the failure and retries."""
    r = _repo(freq_repo, wait="0s")
    (r.path / "fail").write_text("")
    r.run("add", "release", "a", "b", "c").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _states(r) == {"ready": 3, "shipped": 0}
    for name in "abc":
        failures = r.git(
            "log",
            "--format=%(trailers:key=Freq-Failure,valueonly)",
            f"refs/frequency/subjects/release/{name}",
        ).split("\n")
        assert [f for f in failures if f.strip()] == [
            "retryable (exit code 1; retries exhausted (2 of 2))",
            "retryable (exit code 1)",
        ]
    assert (r.path / "runs.txt").read_text().count("run: a b c") == 2
    assert len(json.loads(r.run("dlq", "list", "--json").out)) == 3
