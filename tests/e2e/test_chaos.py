"""Chaos: workers SIGKILLed at random (a seeded schedule), audited from git and the steps.

Three worker processes run 24 subjects through three steps under a global cap of 3, a
step cap of 1 and a named lock, with a 2 s lease. A seeded schedule SIGKILLs a random
worker (mid-step, mid-write, wherever it is) and starts a replacement, eight times. Then
the audit, from git alone and from the steps' own records (tests/e2e/chaos_step.py):
no run of a step overlapped another run of the same step for the same subject, the caps
and the lock held at every step's start, every subject reached `done`, and `git fsck
--strict` is clean. The figures (kills, recoveries, time from a kill to the retry, dangling
objects) are printed for the record.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FreqRepo

pytestmark = [pytest.mark.e2e, pytest.mark.git]

SEED = 20261201
SUBJECTS = 24
KILLS = 8
STEP = Path(__file__).with_name("chaos_step.py")


def _config(repo: FreqRepo) -> None:
    run = f"{sys.executable} {STEP}"
    repo.write(".frequency/frequency.yaml", "max_parallel: 3\nlease: {ttl: 2s}\n")
    repo.write(
        ".frequency/chaos.yaml",
        f"""
        factory_id: chaos
        poll_interval: 1s
        state: {{initial: new, terminal: [done]}}
        steps:
          - id: build
            from_states: [new]
            to_state: built
            run: {run} 0.3
            retry: {{max_attempts: 20, backoff: {{initial: 100ms, max: 200ms}}}}
          - id: check
            from_states: [built]
            to_state: checked
            max_parallel: 1
            run: {run} 0.1
            retry: {{max_attempts: 20, backoff: {{initial: 100ms, max: 200ms}}}}
          - id: ship
            from_states: [checked]
            to_state: done
            locks: [deploy]
            run: {run} 0.1
            retry: {{max_attempts: 20, backoff: {{initial: 100ms, max: 200ms}}}}
        """,
    )


def _worker(repo: FreqRepo, audit: Path) -> subprocess.Popen[bytes]:
    n = len(list(audit.glob("worker-*.err")))
    with (audit / f"worker-{n}.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "freq", "run"],
            cwd=repo.path,
            env={**os.environ, "AUDIT": str(audit)},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its steps are its own business: the test kills only it
        )


def _states(repo: FreqRepo) -> dict[str, str]:
    out = repo.git(
        "for-each-ref", "--format=%(refname:lstrip=4)", "refs/frequency/subjects/chaos/"
    ).split()
    states = {}
    for name in out:
        doc = repo.git("show", f"refs/frequency/subjects/chaos/{name}:subject.json")
        states[name] = json.loads(doc)["state"]
    return states


def _rows(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_killing_workers_at_random_breaks_no_invariant(repo: FreqRepo, tmp_path: Path) -> None:
    """Kill workers at random for a while, then let the fleet finish: audit everything."""
    _config(repo)
    audit = tmp_path / "audit"
    audit.mkdir()
    names = [f"s{i:02d}" for i in range(SUBJECTS)]
    repo.run("add", "chaos", *names).assert_success()
    rng = random.Random(SEED)
    workers = [_worker(repo, audit) for _ in range(3)]
    kills: list[tuple[float, int]] = []  # (when, pid of the worker killed)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.5))
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            kills.append((time.time(), victim.pid))
            victim.wait()
            workers.append(_worker(repo, audit))
        deadline = time.monotonic() + 120
        while set(_states(repo).values()) != {"done"}:
            assert time.monotonic() < deadline, f"not finished: {_states(repo)}"
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()

    starts = _rows(audit / "audit.jsonl")
    assert {r["subject"] for r in starts} == set(names)
    overlaps = [r for r in starts if r["twin"]]
    assert overlaps == [], f"a step ran twice at once: {overlaps[:3]}"
    assert max(int(r["running"]) for r in starts) <= 3, "global max_parallel exceeded"  # type: ignore[call-overload]
    for step in ("check", "ship"):  # max_parallel 1, and the lock deploy
        peak = max(int(r["same_step"]) for r in starts if r["step"] == step)  # type: ignore[call-overload]
        assert peak <= 1, f"{step}: {peak} at once"
    assert set(_states(repo).values()) == {"done"}

    said = "".join(p.read_text() for p in sorted(audit.glob("worker-*.err")))
    assert "Traceback" not in said and "internal error" not in said, said
    lock_lines = [line for line in said.splitlines() if "git lock" in line or "stale lock" in line]

    fsck = subprocess.run(
        ["git", "fsck", "--strict"], cwd=repo.path, capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "missing" not in fsck.stdout + fsck.stderr
    journal = repo.git("log", "--glob=refs/frequency", "--format=%B")
    assert journal  # the whole audit is readable by git

    # figures for the record: how long a killed worker's subject waited for its retry
    retries: list[float] = []  # a run of the killed worker, and a later run of the same
    for when, pid in kills:  # subject and step (its result was never recorded)
        mine = [r for r in starts if str(r["worker"]).split(":")[1] == str(pid)]
        for r in mine:
            if float(r["at"]) > when:  # type: ignore[arg-type]
                continue
            later = [
                float(s["at"])  # type: ignore[arg-type]
                for s in starts
                if (s["subject"], s["step"]) == (r["subject"], r["step"]) and float(s["at"]) > when  # type: ignore[arg-type]
            ]
            if later:
                retries.append(min(later) - when)
    dangling = subprocess.run(
        ["git", "fsck", "--dangling", "--no-reflogs"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.count("dangling")
    print(
        f"\nchaos: {KILLS} kills, {len(starts)} step starts, {len(retries)} killed attempts "
        f"retried, kill-to-retry median {statistics.median(retries) if retries else 0:.2f}s "
        f"max {max(retries, default=0):.2f}s, {dangling} dangling objects, "
        f"{len(lock_lines)} git lock warnings"
    )
    for line in lock_lines:
        print(f"  {line}")
