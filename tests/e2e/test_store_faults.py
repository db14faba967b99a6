"""Real workers against git locks and a full disk: they wait and go on, never exit.

A ref lock held by a live process skips that subject for the cycle (the others run); once
its holder is killed, the lock is recognised as stale and the subject runs too. A disk
that fills up during a run is said in one line, with no traceback and no lock left
behind, and the worker goes on when space comes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FreqRepo, live_lock, new_repo, one_step
from tests.e2e.test_workers import _wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.git]

FACTORY = one_step("""'echo "$FREQ_SUBJECT" >> "$LOG"'""")


def _worker(path: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "freq", "run", *args],
        cwd=path,
        env={**os.environ, "LOG": str(log)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done(log: Path) -> set[str]:
    return set(log.read_text().split()) if log.exists() else set()


def test_a_held_subject_lock_skips_that_subject_only(repo: FreqRepo, tmp_path: Path) -> None:
    """A live process holds one subject's ref lock: the worker runs every other subject,
    says once that it is waiting, and runs the held one once its holder is killed."""
    repo.write(".frequency/f.yaml", FACTORY)
    repo.run("add", "f", "a", "b", "c", "d").assert_success()
    lock = repo.path / ".git/refs/frequency/subjects/f/b.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "steps.log"
    with live_lock(lock) as holder:
        worker = _worker(repo.path, log, "--until-idle")
        assert worker.stderr is not None
        said = worker.stderr.readline()
        assert said == (
            "warning: git lock refs/frequency/subjects/f/b.lock is held by another process; "
            "trying again\n"
        )
        _wait_for(lambda: _done(log) == {"a", "c", "d"})
        assert worker.poll() is None  # still there, waiting for b
        holder.kill()
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert _done(log) == {"a", "b", "c", "d"}
    assert "Traceback" not in err
    assert not list((repo.path / ".git").rglob("*.lock"))
    status = repo.run("status", "f", "--json").assert_success()
    assert status.out.count('"done"') >= 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (needs mount rights: root here; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.strip() or 'not root'}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    """Write `path` until the disk is full."""
    with path.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_is_one_line_and_the_worker_waits_for_space(
    small_disk: Path, tmp_path: Path
) -> None:
    """Fill the disk under a repository: a command says `disk full ...; nothing was
    changed` in one line and leaves no lock; a running worker says it waits for space,
    does not die, and finishes every subject once space is freed."""
    repo = new_repo(small_disk / "repo")
    path = repo.path
    repo.write(".frequency/f.yaml", FACTORY)
    repo.run_process("add", "f", "a", "b").assert_success()
    filler = small_disk / "filler"
    _fill(filler)

    added = repo.run_process("add", "f", "c").assert_failure()
    assert added.err.strip().startswith("git freq: disk full while writing"), added.err
    assert len(added.err.strip().splitlines()) == 1, added.err
    assert "nothing was changed" in added.err
    assert "Exception ignored" not in added.err
    assert not list((path / ".git").rglob("*.lock"))

    log = tmp_path / "steps.log"  # outside the full disk: the steps themselves can write
    worker = _worker(path, log, "--until-idle")
    assert worker.stderr is not None
    line = worker.stderr.readline()
    assert "disk full while writing" in line and "waiting for space" in line, line
    assert worker.poll() is None
    filler.unlink()
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert _done(log) == {"a", "b"}
    assert not list((path / ".git").rglob("*.lock"))
    fsck = subprocess.run(
        ["git", "fsck", "--strict"], cwd=path, capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stderr


_KILLED_WRITER = """
import os, signal, sys
from freq.store.lockfiles import Locker
Locker(guard=sys.argv[2], now=lambda: 0.0).take(sys.argv[1])
os.kill(os.getpid(), signal.SIGKILL)  # killed inside the write, holding the lock
"""


def test_a_worker_killed_inside_a_ref_write_stops_nobody(repo: FreqRepo, tmp_path: Path) -> None:
    """A Frequency process SIGKILLed while it holds a subject's ref lock and a cap slot's,
    and a stale lock beside the empty blob every step writes: a fresh worker clears them
    and runs every subject (before: exit 1 for 30 s, or for ever for the object lock)."""
    repo.write(".frequency/f.yaml", FACTORY)
    repo.run("add", "f", "a", "b").assert_success()
    git_dir = repo.path / ".git"
    for ref in ("refs/frequency/subjects/f/a", "refs/frequency/caps/global/0"):
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_WRITER, str(git_dir / ref), str(tmp_path / "guard")],
            check=False,
        )
        assert killed.returncode == -9
        assert (git_dir / (ref + ".lock")).exists()
    blob_lock = git_dir / "objects/e6/9de29bb2d1d6434b8b29ae775ad8c2e48c5391.lock"
    blob_lock.parent.mkdir(parents=True, exist_ok=True)
    blob_lock.write_text("")
    log = tmp_path / "steps.log"
    worker = _worker(repo.path, log, "--until-idle")
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert _done(log) == {"a", "b"}
    assert "Traceback" not in err
    assert not (git_dir / "refs/frequency/subjects/f/a.lock").exists()  # met, and cleared


def test_a_disk_that_fills_while_a_step_runs_costs_no_result(
    small_disk: Path, tmp_path: Path
) -> None:
    """The disk fills up while a step runs (its log cannot be written, then neither can
    its result): the worker keeps the result, says it is retrying, and records it once
    space comes back; the step is not run again."""
    repo = new_repo(small_disk / "repo")
    path = repo.path
    gate = tmp_path / "gate"
    body = f'echo "$FREQ_SUBJECT" >> "$LOG"; until [ -e {gate} ]; do sleep 0.05; done; seq 200000'
    repo.write(
        ".frequency/f.yaml",
        f"""
        factory_id: f
        state: {{initial: new, terminal: [done]}}
        steps:
          - id: work
            from_states: [new]
            to_state: done
            run: '{body}'
        """,
    )
    repo.run_process("add", "f", "a").assert_success()
    log = tmp_path / "steps.log"
    worker = _worker(path, log, "--until-idle")
    _wait_for(lambda: _done(log) == {"a"})  # running
    filler = small_disk / "filler"
    _fill(filler)
    gate.touch()  # the step now prints ~1.3 MB into a log on a full disk, and ends
    assert worker.stderr is not None
    line = worker.stderr.readline()
    assert "disk full while writing" in line and line.rstrip().endswith("retrying"), line
    filler.unlink()
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Traceback" not in err and "Exception" not in err, err
    assert log.read_text().split() == ["a"]  # run once: its result was kept
    shown = repo.run_process("show", "f", "a", "--json").assert_success()
    assert '"state": "done"' in shown.out


def test_a_read_only_repository_reads_and_refuses_writes_in_one_line(small_disk: Path) -> None:
    """On a disk remounted read-only: status and plan work, add and run say in one line
    why nothing could be written (no traceback), and nothing is left behind."""
    repo = new_repo(small_disk / "repo")
    repo.write(".frequency/f.yaml", FACTORY)
    repo.run_process("add", "f", "a").assert_success()
    repo.run_process("status").assert_success()  # caches written while writable
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        assert "f" in repo.run_process("status").assert_success().out
        repo.run_process("plan").assert_success()
        for args in (("add", "f", "b"), ("run", "--once")):
            out = repo.run_process(*args).assert_failure()
            lines = out.err.strip().splitlines()
            assert lines == [
                "git freq: .git/frequency is on a read-only file system; nothing was written; "
                "reading commands (status, plan, show, log) still work"
            ], out
            assert "Traceback" not in out.err and "internal error" not in out.err
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
