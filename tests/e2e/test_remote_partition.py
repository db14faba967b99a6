"""A worker cut off from the remote mid-step: it keeps its result, stops claiming, another
worker takes the subject over once the lease expires, and the late result is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git

pytestmark = [pytest.mark.e2e, pytest.mark.git]

STEP = (
    'echo "start $FREQ_SUBJECT $FREQ_ATTEMPT $FREQ_WORKER" >> "$LOG"; '
    'while [ ! -f "$GO" ]; do sleep 0.05; done; echo "end $FREQ_SUBJECT $FREQ_ATTEMPT" >> "$LOG"'
)
FACTORY = f"""
factory_id: f
state: {{initial: new, terminal: [done]}}
steps:
  - id: work
    from_states: [new]
    to_state: done
    retry: {{max_attempts: 3, backoff: {{initial: 0s, factor: 1, max: 0s, jitter: 0}}}}
    run: '{STEP}'
"""


def _until(pred, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in time: {what}")
        time.sleep(0.05)


def _subject(repo: Path, name: str) -> dict:  # type: ignore[type-arg]
    ref = f"refs/frequency/subjects/f/{name}"
    return json.loads(git(repo, "cat-file", "blob", f"{ref}:subject.json"))  # type: ignore[no-any-return]


def _last(repo: Path) -> str:
    return git(repo, "log", "-1", "--format=%B", "refs/frequency/subjects/f/s1")


def test_a_partitioned_worker_keeps_its_result_and_its_late_push_is_refused(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    link = tmp_path / "via-a.git"  # machine a reaches the remote through this path only
    link.symlink_to(bare)
    clones = {}
    for name, url in (("a", link), ("b", bare)):
        git(tmp_path, "clone", "-q", str(url), name)
        c = tmp_path / name
        (c / ".frequency").mkdir()
        (c / ".frequency" / "frequency.yaml").write_text("lease: {ttl: 3s}\n")
        (c / ".frequency" / "f.yaml").write_text(FACTORY)
        clones[name] = c
    a, b = clones["a"], clones["b"]
    subprocess.run([sys.executable, "-m", "freq", "add", "f", "s1"], cwd=a, check=True)
    subprocess.run([sys.executable, "-m", "freq", "sync", "--remote", "origin"], cwd=a, check=True)
    log, go = tmp_path / "steps.log", tmp_path / "go"
    env = {**os.environ, "LOG": str(log), "GO": str(go)}
    worker_a = subprocess.Popen(
        [sys.executable, "-m", "freq", "run", "--remote", "origin"],
        cwd=a,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _until(lambda: log.exists() and "start s1 1" in log.read_text(), "a starts s1")
        link.unlink()  # the partition: a can no longer reach the remote
        go.touch()  # its step ends while it is cut off
        _until(lambda: _subject(a, "s1")["state"] == "done", "a keeps its result locally")
        assert _subject(bare, "s1")["claim"] is not None  # the remote still has a's claim
        # b takes the subject over once a's lease expires on b's clock, and runs it again
        done_b = subprocess.run(
            [sys.executable, "-m", "freq", "run", "--remote", "origin", "--until-idle"],
            cwd=b,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done_b.returncode == 0, done_b.stderr
        assert _subject(bare, "s1")["state"] == "done"
        assert "Freq-Attempt: 2" in _last(bare)  # b's attempt, after a's was lost
        link.symlink_to(bare)  # the partition heals: a's late result is pushed, and refused

        def kept() -> bool:
            out = git(bare, "for-each-ref", "--format=%(refname)", "refs/frequency/refused/")
            return "refs/frequency/refused/subjects/f/s1/" in out

        _until(kept, "a's refused result is kept on the remote")
    finally:
        worker_a.send_signal(signal.SIGTERM)
        _out, err_a = worker_a.communicate(timeout=60)
    assert "Traceback" not in err_a
    assert "cannot be reached" in err_a  # said once, while it was cut off
    assert "no longer apply" in err_a
    final = _subject(bare, "s1")
    assert final["state"] == "done" and "Freq-Attempt: 2" in _last(bare)  # b's, applied once
    assert _subject(a, "s1") == final  # a follows the remote again
    starts = [line for line in log.read_text().splitlines() if line.startswith("start")]
    assert [s.split()[2] for s in starts] == ["1", "2"]
    git(bare, "fsck", "--strict")
