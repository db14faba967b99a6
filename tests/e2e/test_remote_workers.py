"""Three clones of one bare remote, one `git freq run --remote` process each: caps and a
named lock hold across machines, no attempt runs twice, every subject ends done, and a
worktree step's work lands on the remote's main exactly once, whichever machine lands it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import git
from tests.e2e.test_workers import _events, _max_overlap, _step

pytestmark = [pytest.mark.e2e, pytest.mark.git]

# `make test-remote` runs the 300 (about 100 s over file://); `make test` runs 60
SUBJECTS = int(os.environ.get("FREQ_REMOTE_SUBJECTS", "60"))

FACTORY = f"""
factory_id: f
state: {{initial: new, terminal: [done]}}
limits:
  max_parallel: 3
steps:
  - id: build
    from_states: [new]
    to_state: built
    max_parallel: 2
    run: '{_step("true")}'
  - id: ship
    from_states: [built]
    to_state: done
    locks: [deploy]
    run: '{_step("true")}'
"""


# a worktree step: its commit joins the merge queue of the remote's main
WORKTREE = """
factory_id: w
state: {initial: new, terminal: [done]}
steps:
  - id: write
    from_states: [new]
    to_state: done
    isolation: worktree
    run: 'echo "$FREQ_SUBJECT" > "$FREQ_SUBJECT.txt"'
"""
LANDED = max(3, SUBJECTS // 6)


def _clone(url: str, where: Path) -> Path:
    git(where.parent, "clone", "-q", url, where.name)
    (where / ".frequency").mkdir()
    (where / ".frequency" / "frequency.yaml").write_text("max_parallel: 4\nlease: {ttl: 20s}\n")
    (where / ".frequency" / "f.yaml").write_text(FACTORY)
    (where / ".frequency" / "w.yaml").write_text(WORKTREE)
    return where


def _main(url: str, bare: Path, tmp_path: Path) -> None:
    """The remote's main branch (one commit), named by its HEAD, pushed over `url`."""
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    git(seed, "commit", "-q", "--allow-empty", "-m", "first")
    git(seed, "push", "-q", url, "main")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")


def _freq(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "freq", *args],
        cwd=cwd,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_three_workers(url: str, bare: Path, tmp_path: Path) -> None:
    """The whole audit, against the remote at `url` (whose repository is `bare`)."""
    _main(url, bare, tmp_path)
    clones = [_clone(url, tmp_path / f"m{i}") for i in range(3)]
    names = "\n".join(f"s{i:03d}" for i in range(SUBJECTS)) + "\n"
    (clones[0] / "subjects.txt").write_text(names)
    landed = [f"l{i:03d}" for i in range(LANDED)]
    for args in (
        ("add", "f", "--from", "subjects.txt"),
        ("add", "w", *landed),
        ("sync", "--remote", "origin"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "freq", *args],
            cwd=clones[0],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    log = tmp_path / "steps.log"
    env = {**os.environ, "LOG": str(log)}
    workers = [_freq(c, "run", "--remote", "origin", "--until-idle", env=env) for c in clones]
    try:
        for w in workers:
            _out, err = w.communicate(timeout=600)
            assert w.returncode == 0, err
            assert "Traceback" not in err
    finally:  # one failed: the others are stopped, not left running into the next test
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()
    events = _events(log)
    starts = [(s, st, a) for what, _, s, st, a in events if what == "start"]
    assert len(starts) == 2 * SUBJECTS and len(set(starts)) == 2 * SUBJECTS, "ran twice"
    span: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _what, t, s, st, _a in events:
        span[(s, st)].append(t)
    runs = {k: (min(v), max(v)) for k, v in span.items()}
    assert _max_overlap(list(runs.values())) <= 3  # the factory's cap, across machines
    assert _max_overlap([v for (_, st), v in runs.items() if st == "build"]) <= 2
    assert _max_overlap([v for (_, st), v in runs.items() if st == "ship"]) <= 1  # the lock
    # the remote's history says the same: every subject done, each step once
    subjects = git(bare, "for-each-ref", "--format=%(objectname)", "refs/frequency/subjects/")
    states = [
        json.loads(git(bare, "cat-file", "blob", f"{oid}:subject.json"))["state"]
        for oid in subjects.split()
    ]
    assert states == ["done"] * (SUBJECTS + LANDED)
    # each worktree step's work is on the remote's main once; no landed branch is left
    added = git(bare, "log", "main", "--format=", "--name-only", "--diff-filter=A").split()
    assert sorted(added) == [f"{n}.txt" for n in landed]
    assert git(bare, "for-each-ref", "refs/heads/freq/") == ""
    moves = git(bare, "log", "--format=%s", "--glob=refs/frequency/subjects").splitlines()
    assert sum(m.endswith("build new -> built") for m in moves) == SUBJECTS
    assert sum(m.endswith("ship built -> done") for m in moves) == SUBJECTS
    git(bare, "fsck", "--strict")


def test_three_machines_over_file_url(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    run_three_workers(f"file://{bare}", bare, tmp_path)


def test_three_machines_over_git_daemon(tmp_path: Path) -> None:
    from tests.servers import GitDaemon

    with GitDaemon(tmp_path / "served") as server:
        bare = server.init("remote.git")
        run_three_workers(server.url("remote.git"), bare, tmp_path)


def test_three_machines_over_smart_http(tmp_path: Path) -> None:
    from tests.servers import HttpBackend, find_lighttpd

    if find_lighttpd() is None and not os.environ.get("CI"):
        pytest.skip("lighttpd is not installed (.ci/run installs it)")
    with HttpBackend(tmp_path / "served") as server:
        bare = server.init("remote.git")
        run_three_workers(server.url("remote.git"), bare, tmp_path)
