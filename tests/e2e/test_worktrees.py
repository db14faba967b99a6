"""Worktree steps and the merge queue end to end, with real git and real processes.

The user's checkout stays on branch `dev` while the steps land on `main`, so every test can
check that HEAD, the index and the working tree are exactly as they were (SPEC §3: these
commits never touch the user's branch, index or working tree). The test of landing on a
checked-out branch checks git's updateInstead rule instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from freq import merges, ops
from freq.clock import FakeClock
from freq.model import MergeStrategy
from freq.store import Store
from tests.conftest import FreqRepo, git, new_repo

pytestmark = pytest.mark.e2e

NO_BACKOFF = "{max_attempts: %d, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}"


def _factory(run: str, *, fid: str = "f", extra: str = "", retry: int = 2) -> str:
    return (
        f"factory_id: {fid}\n"
        "state: {initial: new, terminal: [done]}\n"
        "steps:\n"
        "  - id: work\n"
        "    from_states: [new]\n"
        "    to_state: done\n"
        "    isolation: worktree\n"
        f"    run: {json.dumps(run)}\n"
        f"    retry: {NO_BACKOFF % retry}\n"
        f"{extra}"
    )


def _checkout_state(path: Path) -> tuple[str, str, str, str]:
    """HEAD's name and commit, the index's bytes (hashed) and `git status`."""
    index = hashlib.sha256((path / ".git" / "index").read_bytes()).hexdigest()
    return (
        git(path, "symbolic-ref", "HEAD").strip(),
        git(path, "rev-parse", "HEAD").strip(),
        index,
        git(path, "status", "--porcelain", "--untracked-files=all"),
    )


@pytest.fixture
def project(tmp_path: Path) -> Iterator[FreqRepo]:
    """A repository whose `main` holds shared.txt; the user works on branch `dev`, and
    after the test HEAD, index and working tree are as they were before it ran."""
    repo = new_repo(tmp_path / "repo")
    repo.write("shared.txt", "one\ntwo\nthree\n")
    repo.git("add", "shared.txt")
    repo.git("commit", "-q", "-m", "shared")
    repo.git("checkout", "-q", "-b", "dev")
    repo.write(".frequency/frequency.yaml", "max_parallel: 2\n")
    repo.git("add", ".frequency")
    repo.git("commit", "-q", "-m", "config")
    # the project's own config is committed on dev; main is where the steps land
    _BEFORE[repo.path] = _checkout_state(repo.path)
    yield repo
    assert _checkout_state(repo.path) == _BEFORE.pop(repo.path)


_BEFORE: dict[Path, tuple[str, str, str, str]] = {}


def _setup(repo: FreqRepo, text: str, *, settings: str | None = None) -> None:
    """Commit the factory (and settings) on dev: the checkout as the test leaves it."""
    repo.write(".frequency/f.yaml", text)
    if settings is not None:
        repo.write(".frequency/frequency.yaml", settings)
    repo.git("add", ".frequency")
    repo.git("commit", "-q", "-m", "factory")
    _BEFORE[repo.path] = _checkout_state(repo.path)


def _main_log(repo: FreqRepo) -> list[str]:
    return repo.git("log", "--format=%s", "main").splitlines()


def _show(repo: FreqRepo, name: str, fid: str = "f") -> dict[str, object]:
    out = repo.run("show", fid, name, "--json").assert_success().out
    doc: dict[str, object] = json.loads(out)["subject"]
    return doc


def test_a_success_lands_on_main_and_a_failure_does_not(project: FreqRepo) -> None:
    """A step that commits in its worktree lands its commit on main after it succeeds; one
    that commits and then fails leaves main alone, and its subject retries."""
    _setup(
        project,
        _factory(
            'echo "$FREQ_SUBJECT" > "$FREQ_SUBJECT.txt" && git add . && '
            'git commit -qm "add $FREQ_SUBJECT" && test "$FREQ_SUBJECT" != bad',
            retry=1,
        ),
    )
    project.run("add", "f", "good", "bad").assert_success()
    res = project.run("run", "--until-idle").assert_success()
    assert "1 landed" in res.out
    assert _main_log(project)[0] == "add good"
    assert "add bad" not in _main_log(project)
    assert project.git("show", "main:good.txt") == "good\n"
    assert _show(project, "good")["state"] == "done"
    bad = _show(project, "bad")
    assert bad["state"] == "new" and bad["parked"]
    # the step ran in a worktree of the pool, named by FREQ_WORKDIR, not in the checkout
    assert not (project.path / "good.txt").exists()
    pool = json.loads(project.run("status", "--json").assert_success().out)["worktrees"]
    assert Path(pool["dir"]).is_dir() and not Path(pool["dir"]).is_relative_to(project.path)
    # each step is recorded: queued, then landed with the commit (the intent to land is
    # on the queue's ref, written before main moved)
    events = project.git("log", "--format=%s", "refs/frequency/subjects/f/good").splitlines()
    assert events[:2] == [
        "f/good: work new -> done",
        "f/good: work queued to land on main (attempt 1)",
    ]
    queue = project.git("log", "--format=%s", "refs/frequency/queue/main").splitlines()
    assert queue[:2] == ["main: landed 1 (f/good)", "main: landing 1 (f/good)"]
    trailers = project.git("log", "-1", "--format=%(trailers)", "refs/frequency/subjects/f/good")
    assert f"Freq-Landed: {project.git('rev-parse', 'main').strip()}" in trailers
    # the branch is gone once it landed; the parked one's stays to be looked at
    assert project.git("branch", "--list", "freq/*").split() == ["freq/f/bad/work"]


def test_uncommitted_work_is_committed_and_lands(project: FreqRepo) -> None:
    """What a step leaves uncommitted in its worktree is committed on its branch for it."""
    _setup(project, _factory('echo hi > "$FREQ_SUBJECT.txt"'))
    project.run("add", "f", "a").assert_success()
    project.run("run", "--until-idle").assert_success()
    assert project.git("show", "main:a.txt") == "hi\n"
    assert _main_log(project)[0] == "f/a: work (attempt 1)"


def test_a_step_that_changes_nothing_moves_on_without_landing(project: FreqRepo) -> None:
    """No change, nothing to land: the subject moves at once and main stays."""
    _setup(project, _factory("true"))
    tip = project.git("rev-parse", "main")
    project.run("add", "f", "a").assert_success()
    project.run("run", "--until-idle").assert_success()
    assert _show(project, "a")["state"] == "done"
    assert project.git("rev-parse", "main") == tip


EDIT_SHARED = (
    'printf "%s\\n" "$FREQ_SUBJECT" two three > shared.txt && git commit -qam "$FREQ_SUBJECT"'
)


def test_two_edits_of_one_line_conflict_then_retry_from_the_new_tip(project: FreqRepo) -> None:
    """Two parallel steps edit the same line: one lands, the other conflicts, and its next
    attempt starts from the new tip and lands too (on_conflict: retry)."""
    barrier = project.path.parent / "barrier"
    barrier.mkdir()
    run = (
        f'touch {barrier}/"$FREQ_SUBJECT-$FREQ_ATTEMPT"; '
        f'i=0; while [ "$FREQ_ATTEMPT" = 1 ] && [ $(ls {barrier} | grep -c -- -1) -lt 2 ] '
        "&& [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; " + EDIT_SHARED
    )
    _setup(project, _factory(run, retry=3))
    project.run("add", "f", "a", "b").assert_success()
    res = project.run("run", "--until-idle").assert_success()
    assert "2 landed" in res.out and "1 turned away" in res.out
    content = project.git("show", "main:shared.txt").splitlines()
    assert content[0] in ("a", "b") and content[1:] == ["two", "three"]
    assert {_show(project, n)["state"] for n in ("a", "b")} == {"done"}
    failures = project.git(
        "log", "--format=%(trailers:key=Freq-Conflict,valueonly)", "--glob=refs/frequency/subjects"
    )
    assert "shared.txt" in failures
    history = project.git("log", "--format=%s", "refs/frequency/queue/main").splitlines()
    assert any("turned away" in line for line in history)
    assert sum("landed 1" in line for line in history) == 2


def test_a_conflict_with_on_conflict_terminal_is_parked_naming_the_paths(
    project: FreqRepo,
) -> None:
    """on_conflict: terminal files a dead-letter entry naming the conflicting path (main
    changed the same line while the step ran)."""
    mover = project.path.parent / "mover.py"
    mover.write_text(MOVER)
    step = f"{EDIT_SHARED} && {sys.executable} {mover}"
    _setup(project, _factory(step, extra="    merge: {on_conflict: terminal}\n"))
    project.run("add", "f", "b").assert_success()
    res = project.run("run", "--until-idle").assert_success()
    assert "1 turned away" in res.out
    assert project.git("show", "main:shared.txt") == "main\ntwo\nthree\n"
    b = _show(project, "b")
    assert b["parked"]
    listing = json.loads(project.run("dlq", "list", "--json").assert_success().out)
    entry = listing["entries"][0] if isinstance(listing, dict) else listing[0]
    shown = project.run("dlq", "show", entry["id"]).assert_success().out
    assert "merge conflict on main in shared.txt" in shown
    assert "conflict: shared.txt" in shown


MOVER = """\
import os, subprocess, tempfile

def git(*args, env=None, stdin=None):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True,
                          env=env, input=stdin).stdout.strip()

# someone changes the first line of shared.txt on main (plumbing: no checkout is touched)
with tempfile.TemporaryDirectory() as tmp:
    env = dict(os.environ, GIT_INDEX_FILE=os.path.join(tmp, "index"))
    git("read-tree", "main", env=env)
    blob = git("hash-object", "-w", "--stdin", stdin="main\\ntwo\\nthree\\n")
    git("update-index", "--cacheinfo", f"100644,{blob},shared.txt", env=env)
    tree = git("write-tree", env=env)
    git("update-ref", "refs/heads/main", git("commit-tree", tree, "-p", "main", "-m", "main edits"))
"""

RESOLVER = """\
import os, pathlib, subprocess, sys

path = pathlib.Path("shared.txt")
if "<<<<<<<" in path.read_text():
    path.write_text("resolved\\ntwo\\nthree\\n")
    subprocess.run(["git", "commit", "-qam", "resolve"], check=True)
else:
    path.write_text(os.environ["FREQ_SUBJECT"] + "\\ntwo\\nthree\\n")
    subprocess.run(["git", "commit", "-qam", os.environ["FREQ_SUBJECT"]], check=True)
    subprocess.run([sys.executable, sys.argv[1]], check=True)  # main moves meanwhile
print("prompt:", sys.argv[-1][:80])
"""


def test_on_conflict_agent_runs_the_agent_once_more_on_the_conflict(project: FreqRepo) -> None:
    """on_conflict: agent gives the step's agent the conflict in its worktree (main changed
    the same line while it ran); what it resolves lands."""
    script = project.path.parent / "resolver.py"
    script.write_text(RESOLVER)
    mover = project.path.parent / "mover.py"
    mover.write_text(MOVER)
    text = (
        "factory_id: f\n"
        "state: {initial: new, terminal: [done]}\n"
        "steps:\n"
        "  - id: work\n"
        "    from_states: [new]\n"
        "    to_state: done\n"
        "    agent: {use: fixer, prompt: 'edit shared.txt for {subject}'}\n"
        "    merge: {on_conflict: agent}\n"
        f"    retry: {NO_BACKOFF % 3}\n"
    )
    settings = f"agents:\n  fixer: {{use: command, args: [{sys.executable}, {script}, {mover}]}}\n"
    _setup(project, text, settings=settings)
    project.run("add", "f", "a").assert_success()
    res = project.run("run", "--until-idle").assert_success()
    assert "1 landed" in res.out and "1 turned away" in res.out
    assert project.git("show", "main:shared.txt") == "resolved\ntwo\nthree\n"
    assert _main_log(project)[:2] == ["resolve", "a"] or "resolve" in _main_log(project)
    assert _show(project, "a")["state"] == "done"
    log = project.path / ".git" / "frequency" / "logs" / "f" / "a"
    second = sorted(log.glob("work-2-*.log"))
    assert second and "Merging main into this branch" in second[0].read_text()


def test_merge_check_bisects_a_batch_and_lands_the_rest(project: FreqRepo) -> None:
    """A batch of three is checked together; the check fails, bisection finds the one that
    breaks it, the two others land and the culprit fails its attempt."""
    _setup(
        project,
        _factory(
            'echo x > "$FREQ_SUBJECT.txt"; test "$FREQ_SUBJECT" != c || touch broken',
            retry=1,
            # the check says it ran: each run's log (made by its first line) counts it
            extra="    merge: {check: 'echo checked; test ! -e broken', batch: 3}\n",
        ),
        settings="max_parallel: 3\n",
    )
    project.run("add", "f", "a", "b", "c").assert_success()
    # --once: the three run, then the queue is served once, all three waiting together
    res = project.run("run", "--once").assert_success()
    assert "2 landed" in res.out and "1 turned away" in res.out
    on_main = set(project.git("ls-tree", "--name-only", "main").split())
    assert {"a.txt", "b.txt"} <= on_main
    assert not {"c.txt", "broken"} & on_main
    history = project.git("log", "--format=%s", "refs/frequency/queue/main").splitlines()
    assert any("turned away f/c work attempt 1: merge check failed" in h for h in history)
    project.run("run", "--until-idle").assert_success()  # parks the final failure
    c = _show(project, "c")
    assert c["parked"] and "merge check failed" in str(c["last_error"])
    checks = list(
        (project.path / ".git" / "frequency" / "logs" / "queue" / "main").glob("*[0-9].log")
    )
    assert len(checks) >= 3  # the batch, then its halves: bisected, not one at a time only


def test_touches_keeps_overlapping_steps_apart_and_lets_disjoint_ones_meet(
    project: FreqRepo,
) -> None:
    """Two attempts whose lanes overlap never run at once; disjoint ones do (each waits
    for the other to start, so running together is required, not luck)."""
    spans = project.path.parent / "spans"
    spans.mkdir()
    run = (
        f'echo start $(date +%s%N) > {spans}/"$FREQ_SUBJECT"; '
        f'if [ "$FREQ_DATA_LANE" = own ]; then i=0; '
        f"while [ $(ls {spans} | grep -c own) -lt 2 ] && [ $i -lt 400 ]; "
        "do sleep 0.05; i=$((i+1)); done; "
        f"[ $(ls {spans} | grep -c own) -ge 2 ] || exit 9; else sleep 0.5; fi; "
        f'echo end $(date +%s%N) >> {spans}/"$FREQ_SUBJECT"; echo x > "$FREQ_SUBJECT.txt"'
    )
    _setup(
        project,
        _factory(run, extra='    touches: ["{data.lane}/**"]\n', retry=1),
        settings="max_parallel: 4\n",
    )
    project.run("add", "f", "same-1", "--data", "lane=src").assert_success()
    project.run("add", "f", "same-2", "--data", "lane=src").assert_success()
    project.run("add", "f", "own-1", "--data", "lane=own").assert_success()
    project.run("add", "f", "own-2", "--data", "lane=own2").assert_success()
    project.run("run", "--until-idle").assert_success()
    for n in ("same-1", "same-2", "own-1", "own-2"):
        assert _show(project, n)["state"] == "done", n

    def span(n: str) -> tuple[int, int]:
        lines = (spans / n).read_text().split()
        return int(lines[1]), int(lines[3])

    a, b = span("same-1"), span("same-2")
    assert a[1] <= b[0] or b[1] <= a[0], "overlapping lanes ran at the same time"


def test_a_landing_on_a_checked_out_dirty_branch_waits_then_updates_it(tmp_path: Path) -> None:
    """Landing on the branch checked out in the user's worktree follows updateInstead:
    with local changes it waits (why says so); once clean, it lands and the user's tree
    and index follow the new tip, HEAD still naming the branch."""
    repo = new_repo(tmp_path / "repo")
    repo.write(".frequency/f.yaml", _factory('echo new > "$FREQ_SUBJECT.txt"'))
    repo.write("README", "local change\n")
    repo.run("add", "f", "a").assert_success()
    repo.run("run", "--until-idle").assert_success()
    assert _show(repo, "a")["state"] == "new"
    why = repo.run("why", "f", "a").assert_success().out
    assert "queued to land work attempt 1 on main" in why
    assert "main is checked out at" in why and "uncommitted changes in README" in why
    status = repo.run("status").assert_success().out
    assert "merge queue main: 1 branch waiting" in status
    repo.git("checkout", "README")
    repo.run("run", "--until-idle").assert_success()
    assert _show(repo, "a")["state"] == "done"
    assert (repo.path / "a.txt").read_text() == "new\n"
    assert repo.git("symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert repo.git("status", "--porcelain", "--untracked-files=no") == ""


def _queued_behind_a_dirty_checkout(tmp_path: Path) -> tuple[FreqRepo, Store, str, str]:
    """A repository whose subject f/a waits in main's queue (the checkout was dirty while
    it ran; clean now): the repo, a store, main's tip and the commit a lander would land."""
    repo = new_repo(tmp_path / "repo")
    repo.write(".frequency/f.yaml", _factory('echo new > "$FREQ_SUBJECT.txt"'))
    repo.write("README", "local change\n")  # keeps the landing waiting: we play the lander
    repo.run("add", "f", "a").assert_success()
    repo.run("run", "--until-idle").assert_success()
    repo.git("checkout", "README")
    store = Store.discover(repo.path, clock=FakeClock())
    subj, _tip = store.read_subject("f", "a")
    x = subj.landing
    assert x is not None
    old = repo.git("rev-parse", "main").strip()
    got = merges.combine(
        repo.path, onto=old, branch_tip=x.commit, strategy=MergeStrategy.REBASE, message="m"
    )
    assert isinstance(got, merges.Combined)
    return repo, store, old, got.commit


def _intent(store: Store, repo: FreqRepo, old: str, new: str) -> None:
    """What a lander writes before it moves main: the intent on main's queue ref."""
    _subj, tip = store.read_subject("f", "a")
    doc = {
        "event": "landing",
        "old": old,
        "new": new,
        "entries": [{"factory": "f", "subject": "a", "tip": tip, "commit": new}],
    }
    ref = "refs/frequency/queue/main"
    store.write_doc(
        ref,
        {"queue.json": json.dumps(doc).encode()},
        "main: landing 1 (f/a)\n",
        at=store.clock.now(),
        expected=store.read_ref(ref),
    )


def test_a_crash_between_moving_main_and_recording_is_repaired_once(tmp_path: Path) -> None:
    """A lander that wrote its intent, moved main and died before recording the subject:
    the next worker records the landing once (main holds the work once, the subject moves
    once, the intent is closed), and later runs change nothing."""
    repo, store, old, new = _queued_behind_a_dirty_checkout(tmp_path)
    _intent(store, repo, old, new)
    repo.git("update-ref", "refs/heads/main", new, old)
    repo.git("read-tree", "-u", "-m", old, new)  # as the lander did for the checkout
    repo.run("run", "--until-idle").assert_success()
    assert _show(repo, "a")["state"] == "done"
    assert repo.git("rev-parse", "main").strip() == new
    landed = repo.git(
        "log", "--format=%(trailers:key=Freq-Landed,valueonly)", "refs/frequency/subjects/f/a"
    )
    assert [line for line in landed.split() if line] == [new]
    history = repo.git("log", "--format=%s", "refs/frequency/queue/main").splitlines()
    assert history[:2] == ["main: landed 1 (f/a)", "main: landing 1 (f/a)"]
    repo.run("run", "--until-idle").assert_success()
    assert repo.git("rev-parse", "main").strip() == new
    assert repo.git("log", "--format=%s", "refs/frequency/queue/main").splitlines() == history


def test_a_crash_before_moving_main_leaves_the_entry_queued_and_it_lands_once(
    tmp_path: Path,
) -> None:
    """A lander that wrote its intent and died before moving main: the next worker gives
    the intent up (main never moved) and lands the entry itself, once."""
    repo, store, old, new = _queued_behind_a_dirty_checkout(tmp_path)
    _intent(store, repo, old, new)
    repo.run("run", "--until-idle").assert_success()
    assert _show(repo, "a")["state"] == "done"
    history = repo.git("log", "--format=%s", "refs/frequency/queue/main").splitlines()
    assert history == [
        "main: landed 1 (f/a)",
        "main: landing 1 (f/a)",
        "main: landing given up: the target never moved to it",
        "main: landing 1 (f/a)",
    ]
    assert repo.git("log", "--format=%s", "main").splitlines().count("f/a: work (attempt 1)") == 1


WRITES_THEN_SLEEPS = 'echo half > "$FREQ_SUBJECT.txt"; echo started > "{flag}"; sleep 60'


def test_a_killed_workers_worktree_is_salvaged_and_removed_and_a_live_one_kept(
    project: FreqRepo,
) -> None:
    """SIGKILL a worker mid-step: while its claim is live, cleanup leaves its worktree;
    once the claim is gone and the step's timeout plus a lease have passed, cleanup saves
    the uncommitted file on a salvage ref (named by show) and removes the worktree."""
    flag = project.path.parent / "started"
    _setup(
        project,
        _factory(WRITES_THEN_SLEEPS.format(flag=flag), extra="    timeout: 5m\n"),
    )
    project.run("add", "f", "a").assert_success()
    worker = subprocess.Popen(
        [sys.executable, "-m", "freq", "run"],
        cwd=project.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(400):
            if flag.exists():
                break
            time.sleep(0.05)
        assert flag.exists()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    pool = Path(
        json.loads(project.run("status", "--json").assert_success().out)["worktrees"]["dir"]
    )
    slots = [p for p in pool.iterdir() if p.is_dir()]
    assert len(slots) == 1 and (slots[0] / "a.txt").exists()
    now = FakeClock(start=datetime.now(UTC))  # the claim (60 s lease) is live now
    app = ops.App(project.path, clock=now)
    ops.cleanup(app)
    assert slots[0].exists(), "a live claim's worktree was touched"
    later = FakeClock(start=now.now() + timedelta(minutes=5, seconds=61))
    ops.cleanup(ops.App(project.path, clock=later))
    assert not slots[0].exists()
    saved = project.git("for-each-ref", "--format=%(refname)", "refs/frequency/salvage/")
    assert saved.strip() == "refs/frequency/salvage/f/a/1"
    assert project.git("show", "refs/frequency/salvage/f/a/1:a.txt") == "half\n"
    shown = project.run("show", "f", "a").assert_success().out
    assert "salvaged: refs/frequency/salvage/f/a/1" in shown
    assert "freq/f/a/work" not in project.git("worktree", "list")


def test_a_landing_that_would_overwrite_an_untracked_file_waits_without_spinning(
    tmp_path: Path,
) -> None:
    """On a checked-out target, an untracked file of the user's that the landing would
    overwrite makes it wait (git's updateInstead refuses too): the run ends, having written
    a bounded number of commits, and lands once the file is gone."""
    repo = new_repo(tmp_path / "repo")
    repo.write(".frequency/f.yaml", _factory('echo new > "$FREQ_SUBJECT.txt"'))
    repo.run("add", "f", "a").assert_success()
    repo.write("a.txt", "mine\n")  # untracked, where the step writes
    repo.run("run", "--until-idle").assert_success()
    assert _show(repo, "a")["state"] == "new"
    assert (repo.path / "a.txt").read_text() == "mine\n"
    assert int(repo.git("rev-list", "--count", "refs/frequency/queue/main").strip()) <= 4
    (repo.path / "a.txt").unlink()
    repo.run("run", "--until-idle").assert_success()
    assert _show(repo, "a")["state"] == "done"
    assert (repo.path / "a.txt").read_text() == "new\n"


def test_setup_runs_once_per_pool_worktree_and_worktrees_dir_places_the_pool(
    project: FreqRepo,
) -> None:
    """Through `run`: `worktrees.dir` puts the pool where it says; `setup` with
    `when_changed` runs in a fresh worktree, is skipped when the next attempt reuses it
    with the lock file unchanged, and what it installed (ignored) is there for the step."""
    counter = project.path.parent / "setups"
    pool = project.path.parent / "pool"
    project.write(".gitignore", "deps/\n")
    project.write("package-lock.json", "{}\n")
    project.git("checkout", "-q", "main")
    project.git("add", ".gitignore", "package-lock.json")
    project.git("commit", "-q", "-m", "lock file")
    project.git("checkout", "-q", "dev")
    setup = f"mkdir -p deps && touch deps/ok && echo ran >> {counter}"
    extra = f"    setup: {{run: {json.dumps(setup)}, when_changed: [package-lock.json]}}\n"
    step = 'test -f deps/ok && echo "$FREQ_WORKDIR" > "$FREQ_SUBJECT.txt"'
    _setup(
        project,
        _factory(step, extra=extra),
        settings=f"max_parallel: 1\nworktrees: {{max: 1, dir: {pool}}}\n",
    )
    project.run("add", "f", "a", "b").assert_success()
    project.run("run", "--until-idle").assert_success()
    assert {_show(project, n)["state"] for n in ("a", "b")} == {"done"}
    assert counter.read_text() == "ran\n"  # once: b reused a's worktree, lock file unchanged
    assert project.git("show", "main:a.txt").strip() == str(pool / "w1")
    assert "deps/ok" not in project.git("ls-tree", "-r", "--name-only", "main")


@pytest.mark.parametrize(("strategy", "parents"), [("squash", 1), ("merge", 2)])
def test_squash_and_merge_strategies_land_through_run(
    project: FreqRepo, strategy: str, parents: int
) -> None:
    """`merge.strategy` squash lands the step's two commits as one commit on main;
    merge lands them under a merge commit."""
    step = (
        'echo 1 > "$FREQ_SUBJECT.txt" && git add . && git commit -qm one && '
        'echo 2 >> "$FREQ_SUBJECT.txt" && git commit -qam two'
    )
    tip = project.git("rev-parse", "main").strip()
    _setup(project, _factory(step, extra=f"    merge: {{strategy: {strategy}}}\n"))
    project.run("add", "f", "a").assert_success()
    project.run("run", "--until-idle").assert_success()
    assert project.git("show", "main:a.txt") == "1\n2\n"
    new = project.git("rev-list", f"{tip}..main").split()
    assert len(new) == (1 if strategy == "squash" else 3)
    assert len(project.git("log", "-1", "--format=%P", "main").split()) == parents
