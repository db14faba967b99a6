"""Remote mode over a real bare repository (file://): CAS pushes, sync, offline results."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freq import transitions
from freq.clock import FakeClock
from freq.config import load_config
from freq.errors import RefConflict, RemoteUnreachable
from freq.loop import Worker, remote_backoff
from freq.ops.app import App
from freq.ops.remote import connect, exchange
from freq.store import Store
from tests.conftest import FreqRepo, git

pytestmark = [pytest.mark.git]

FACTORY = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - id: work
    from_states: [new]
    to_state: done
    run: 'echo "$FREQ_SUBJECT $FREQ_ATTEMPT" >> "$LOG"'
"""


def _clone(remote: Path, where: Path) -> FreqRepo:
    git(where.parent, "clone", "-q", str(remote), where.name)
    r = FreqRepo(where)
    r.write(".frequency/f.yaml", FACTORY)
    return r


@pytest.fixture
def apps() -> Iterator[Callable[[Path], App]]:
    """Open Apps on repositories; their stores are closed at the end (dulwich's packs)."""
    opened: list[App] = []

    def make(path: Path) -> App:
        opened.append(App(path))
        return opened[-1]

    yield make
    for app in opened:
        app.store.close()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    return bare


def _refs(bare: Path) -> dict[str, str]:
    out = git(bare, "for-each-ref", "--format=%(refname) %(objectname)", "refs/frequency/")
    pairs = [line.split(" ") for line in out.splitlines() if line]
    return dict(pairs)


def test_add_and_sync_push_creations_and_a_second_clone_fetches_them(
    remote: Path, tmp_path: Path
) -> None:
    a = _clone(remote, tmp_path / "a")
    a.run("add", "f", "s1", "s2").assert_success()
    out = a.run("sync", "--remote", "origin").assert_success()
    assert "2 pushed" in out.out
    assert set(_refs(remote)) == {"refs/frequency/subjects/f/s1", "refs/frequency/subjects/f/s2"}
    b = _clone(remote, tmp_path / "b")
    b.run("sync", "--remote", "origin").assert_success()
    assert _refs(b.path / ".git") == _refs(remote)
    git(remote, "fsck", "--strict")


def test_run_remote_pushes_every_transition_and_two_clones_never_run_a_subject_twice(
    remote: Path, tmp_path: Path
) -> None:
    a = _clone(remote, tmp_path / "a")
    b = _clone(remote, tmp_path / "b")
    a.run("add", "f", *[f"s{i}" for i in range(24)]).assert_success()
    a.run("sync").assert_failure(code=2)  # no remote configured nor given: a usage error
    a.run("sync", "--remote", "origin").assert_success()
    log = tmp_path / "ran.log"
    env = {**os.environ, "LOG": str(log)}
    procs = [_worker(r, "--until-idle", env=env) for r in (a, b)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err
    ran = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert sorted(ran) == sorted(f"s{i}" for i in range(24))
    assert set(ran.values()) == {1}  # no attempt executed twice across the clones
    a.run("sync", "--remote", "origin").assert_success()
    states = Counter(
        json.loads(git(a.path, "cat-file", "blob", f"{oid}:subject.json"))["state"]
        for ref, oid in _refs(a.path / ".git").items()
        if ref.startswith("refs/frequency/subjects/")
    )
    assert states == {"done": 24}
    git(remote, "fsck", "--strict")
    # every transition is a commit on the remote's subject refs
    log_out = git(remote, "log", "--glob=refs/frequency/subjects", "--format=%s")
    assert log_out.count("work new -> done") == 24


def _sharing_s1(remote: Path, tmp_path: Path) -> tuple[FreqRepo, FreqRepo]:
    """Clones a and b of `remote`, both synced after a added subject f/s1."""
    a = _clone(remote, tmp_path / "a")
    b = _clone(remote, tmp_path / "b")
    a.run("add", "f", "s1").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    b.run("sync", "--remote", "origin").assert_success()
    return a, b


def _moved_by_hand(app: App) -> tuple[transitions.Change, str]:
    """f/s1 moved to done by hand, from its local tip (returned beside the change)."""
    subject, tip = app.store.read_subject("f", "s1")
    return transitions.moved(subject, state="done", at=app.clock.now(), by="a", reason=""), tip


def test_a_claim_whose_subject_moved_on_the_remote_is_a_lost_race(
    remote: Path, tmp_path: Path, apps: Callable[[Path], App]
) -> None:
    a, b = _sharing_s1(remote, tmp_path)
    # b moves s1 on the remote; a, not yet fetched, still sees the old tip
    b.run("transition", "f", "s1", "done", "--reason", "r").assert_success()
    b.run("sync", "--remote", "origin").assert_success()
    before = _refs(remote)
    app = apps(a.path)
    connect(app, "origin")
    subj_ref = "refs/frequency/subjects/f/s1"
    tip = app.store.read_ref(subj_ref)
    assert tip is not None and tip != before[subj_ref]
    change, _ = _moved_by_hand(app)
    with pytest.raises(RefConflict):
        app.store.advance(subj_ref, change.subject, change.event, expected=tip)
    assert _refs(remote) == before  # nothing forced, nothing written
    assert app.store.read_ref(subj_ref) == tip  # the local ref did not move either


def test_a_result_is_kept_locally_while_the_remote_is_unreachable_then_pushed(
    remote: Path, tmp_path: Path, apps: Callable[[Path], App]
) -> None:
    a = _clone(remote, tmp_path / "a")
    a.run("add", "f", "s1").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    app = apps(a.path)
    connect(app, "origin")
    change, tip = _moved_by_hand(app)
    hidden = remote.with_name("remote.hidden")
    remote.rename(hidden)  # the server is gone
    ref = "refs/frequency/subjects/f/s1"
    with pytest.raises(RemoteUnreachable):
        app.store.advance(ref, change.subject, change.event, expected=tip)
    new = app.store.advance(ref, change.subject, change.event, expected=tip, keep=True)
    assert app.store.read_ref(ref) == new  # recorded here
    hidden.rename(remote)
    assert _refs(remote)[ref] == tip  # not yet there
    done = exchange(app, "origin")
    assert done.pushed == (ref,)
    assert _refs(remote)[ref] == new
    git(remote, "fsck", "--strict")


def test_run_once_against_an_unreachable_remote_fails_in_one_line(
    remote: Path, tmp_path: Path
) -> None:
    a = _clone(remote, tmp_path / "a")
    a.run("add", "f", "s1").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    remote.rename(remote.with_name("remote.hidden"))  # the server is gone
    out = a.run("run", "--remote", "origin", "--once").assert_failure(code=1)
    assert "remote origin could not be reached: nothing was claimed or pushed" in out.err
    assert "Traceback" not in out.err
    state = json.loads(git(a.path, "cat-file", "blob", "refs/frequency/subjects/f/s1:subject.json"))
    assert state["state"] == "new" and state.get("claim") is None  # nothing claimed here


def test_a_worker_tries_an_unreachable_remote_again_with_backoff_and_claims_once_back(
    remote: Path, tmp_path: Path
) -> None:
    a = _clone(remote, tmp_path / "a")
    a.run("add", "f", "s1").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    clock = FakeClock()
    store = Store.discover(a.path, clock=clock)
    try:
        store.attach("origin", str(remote))
        w = Worker(store, load_config(a.path), clock=clock, worker="h:1:1")
        hidden = remote.with_name("remote.hidden")
        remote.rename(hidden)
        tried = []  # the seconds at which the worker tried the remote (it raised)
        for _ in range(160):  # 40 s in steps of 0.25 s (exact in binary): each cycle's exchange
            try:
                assert w._exchange() is False  # waiting out the backoff: no contact, no plan
            except RemoteUnreachable:
                tried.append(clock.monotonic())
            clock.advance(0.25)
        gaps = [b - a for a, b in itertools.pairwise(tried)]
        assert gaps[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
        assert all(g <= remote_backoff(10**6) for g in gaps)  # capped
        hidden.rename(remote)
        clock.advance(remote_backoff(10**6))
        assert w._exchange() is True  # back: the next contact after the backoff succeeds
        assert w._exchange() is True  # and the backoff is over
    finally:
        store.close()


def test_a_kept_result_is_refused_when_the_remote_moved_meanwhile(
    remote: Path, tmp_path: Path, apps: Callable[[Path], App]
) -> None:
    a, b = _sharing_s1(remote, tmp_path)
    app = apps(a.path)
    mirror = connect(app, "origin")
    mirror.refresh()
    change, tip = _moved_by_hand(app)
    hidden = remote.with_name("remote.hidden")
    remote.rename(hidden)
    ref = "refs/frequency/subjects/f/s1"
    mine = app.store.advance(ref, change.subject, change.event, expected=tip, keep=True)
    hidden.rename(remote)
    b.run(
        "transition", "f", "s1", "new", "--reason", "r"
    ).assert_success()  # b changes it meanwhile
    b.run("sync", "--remote", "origin").assert_success()
    theirs = _refs(remote)[ref]
    done = exchange(app, "origin")
    assert not done.pushed and not done.replayed
    assert len(done.diverged) == 1 and done.diverged[0].startswith(f"{ref}: 1 event(s) kept at")
    assert "the remote moved it meanwhile" in done.diverged[0]
    assert _refs(remote)[ref] == theirs  # never forced
    assert app.store.read_ref(ref) == theirs  # the local ref follows the remote
    kept = [r for r, oid in _refs(remote).items() if r.startswith("refs/frequency/refused/")]
    assert kept == [f"refs/frequency/refused/subjects/f/s1/{mine[:12]}"]  # never lost, shared
    assert _refs(remote)[kept[0]] == mine
    again = a.run("sync", "--remote", "origin").assert_success()
    assert "0 pushed" in again.out


def test_diverged_control_changes_are_replayed_onto_the_remote_tip(
    remote: Path, tmp_path: Path
) -> None:
    a = _clone(remote, tmp_path / "a")
    b = _clone(remote, tmp_path / "b")
    a.run("pause", "f", "--reason", "first").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    b.run("sync", "--remote", "origin").assert_success()
    a.run("resume", "f").assert_success()  # offline, on a
    b.run("pause", "f", "--reason", "second").assert_success()
    b.run("sync", "--remote", "origin").assert_success()
    out = a.run("sync", "--remote", "origin").assert_success()
    assert "1 replayed onto the remote" in out.out
    ref = "refs/frequency/control/f"
    lines = git(remote, "log", "--format=%s", ref).splitlines()
    assert len(lines) == 3 and "resume" in lines[0]  # a's change on top of b's
    assert _refs(a.path / ".git")[ref] == _refs(remote)[ref]
    git(remote, "fsck", "--strict")


def test_sync_names_an_unknown_remote_in_one_line(remote: Path, tmp_path: Path) -> None:
    a = _clone(remote, tmp_path / "a")
    out = a.run("sync", "--remote", "nowhere")
    assert out.code == 2
    assert "no remote named 'nowhere'" in out.err
    assert "Traceback" not in out.err


WORKTREE = """
factory_id: w
state: {initial: new, terminal: [done]}
steps:
  - id: work
    from_states: [new]
    to_state: done
    isolation: worktree
    run: 'echo "$FREQ_SUBJECT" > "$FREQ_SUBJECT.txt"'
"""


def _with_main(remote: Path, tmp_path: Path) -> FreqRepo:
    """Clone a of `remote`, whose main branch it created (one commit), with factory w."""
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    git(seed, "commit", "-q", "--allow-empty", "-m", "first")
    git(seed, "push", "-q", str(remote), "main")
    git(remote, "symbolic-ref", "HEAD", "refs/heads/main")
    a = _clone(remote, tmp_path / "a")
    a.write(".frequency/w.yaml", WORKTREE)
    return a


def _worker(r: FreqRepo, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`git freq run --remote origin ARGS` in clone `r`, as a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "freq", "run", "--remote", "origin", *args],
        cwd=r.path,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _landed_files(remote: Path) -> Counter[str]:
    """How many times main's history on `remote` added each file."""
    out = git(remote, "log", "main", "--format=", "--name-only", "--diff-filter=A")
    return Counter(line for line in out.splitlines() if line)


def test_two_clones_land_worktree_steps_on_the_remotes_main_atomically(
    remote: Path, tmp_path: Path
) -> None:
    a = _with_main(remote, tmp_path)
    names = [f"s{i}" for i in range(8)]
    a.run("add", "w", *names).assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    b = _clone(remote, tmp_path / "b")
    b.write(".frequency/w.yaml", WORKTREE)
    mine = git(a.path, "rev-parse", "main")
    workers = [_worker(r, "--until-idle") for r in (a, b)]
    for p in workers:
        _out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert "Traceback" not in err
    # every subject's work is on the remote's main exactly once, and the subject is done
    assert _landed_files(remote) == Counter({f"{n}.txt": 1 for n in names})
    for n in names:
        doc = git(remote, "cat-file", "blob", f"refs/frequency/subjects/w/{n}:subject.json")
        assert json.loads(doc)["state"] == "done"
    # the landed branches are gone from the remote; the users' own main did not move
    assert git(remote, "for-each-ref", "refs/heads/freq/") == ""
    assert git(a.path, "rev-parse", "main") == mine
    log = git(remote, "log", "--format=%s", "refs/frequency/queue/main")
    assert sum(int(line.split(" ")[2]) for line in log.splitlines() if " landed " in line) == 8
    git(remote, "fsck", "--strict")


def test_a_landing_left_by_a_killed_worker_is_landed_from_another_clone(
    remote: Path, tmp_path: Path
) -> None:
    a = _with_main(remote, tmp_path)
    marker = tmp_path / "checking"
    # the merge check waits in clone a (no `.lands-here` there) until a is killed
    check = (
        '    merge:\n      check: \'touch "$MARK"; test -e "$FREQ_REPO/.lands-here" || '
        "sleep 600'\n"
    )
    a.write(".frequency/w.yaml", WORKTREE + check)
    a.run("add", "w", "s1").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    p = _worker(a, "--until-idle", env={**os.environ, "MARK": str(marker)})
    for _ in range(2400):  # the check announces itself; a worker that ended is a failure
        if marker.exists():
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=0.05)
            pytest.fail(f"the worker ended before its merge check: {p.communicate()[1]}")
    assert marker.exists(), "the merge check never started"
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    ref = "refs/frequency/subjects/w/s1"
    queued = json.loads(git(remote, "cat-file", "blob", f"{ref}:subject.json"))
    assert queued["landing"]["branch"] == "freq/w/s1/work"
    pushed = git(remote, "rev-parse", "refs/heads/freq/w/s1/work").strip()
    assert pushed == queued["landing"]["commit"]
    # clone b never ran the step: it lands a's work from the branch a pushed with its result
    b = _clone(remote, tmp_path / "b")
    b.write(".frequency/w.yaml", WORKTREE + check)
    b.write(".lands-here", "")
    q = _worker(b, "--until-idle", env={**os.environ, "MARK": str(tmp_path / "b-checking")})
    _out, err = q.communicate(timeout=120)
    assert q.returncode == 0, err
    assert _landed_files(remote) == Counter({"s1.txt": 1})
    assert json.loads(git(remote, "cat-file", "blob", f"{ref}:subject.json"))["state"] == "done"
    assert git(remote, "for-each-ref", "refs/heads/freq/") == ""
    assert git(b.path, "rev-parse", "refs/remotes/origin/main") == git(remote, "rev-parse", "main")
    git(remote, "fsck", "--strict")


def test_a_fetch_asks_only_for_refs_frequency_over_protocol_v2(
    remote: Path, tmp_path: Path
) -> None:
    a = _clone(remote, tmp_path / "a")
    git(a.path, "commit", "-q", "--allow-empty", "-m", "x")
    git(a.path, "push", "-q", "origin", "HEAD:refs/heads/main")  # a branch the fetch skips
    a.run("add", "f", "s1").assert_success()
    a.run("sync", "--remote", "origin").assert_success()
    b = _clone(remote, tmp_path / "b")
    trace = tmp_path / "packets.txt"
    done = subprocess.run(
        [sys.executable, "-m", "freq", "sync", "--remote", "origin"],
        cwd=b.path,
        env={**os.environ, "GIT_TRACE_PACKET": str(trace)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    packets = trace.read_text()
    assert "upload-pack> version 2" in packets
    assert "upload-pack< ref-prefix refs/frequency/" in packets
    assert "refs/heads/main" not in packets.split("command=fetch")[0]  # not listed


def test_remote_in_frequency_yaml_is_what_run_and_sync_use(remote: Path, tmp_path: Path) -> None:
    a = _clone(remote, tmp_path / "a")
    a.write(".frequency/frequency.yaml", "remote: origin\n")
    a.run("validate").assert_success()
    a.run("add", "f", "s1").assert_success()
    a.run("sync").assert_success()  # no --remote: the configured one
    assert list(_refs(remote)) == ["refs/frequency/subjects/f/s1"]
    log = tmp_path / "ran.log"
    done = subprocess.run(
        [sys.executable, "-m", "freq", "run", "--until-idle"],
        cwd=a.path,
        env={**os.environ, "LOG": str(log)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ref = "refs/frequency/subjects/f/s1"
    state = json.loads(git(remote, "cat-file", "blob", f"{ref}:subject.json"))["state"]
    assert state == "done"  # the run's transitions were pushed, with no --remote given


def test_run_remote_archives_on_the_remote_in_one_push(remote: Path, tmp_path: Path) -> None:
    a = _clone(remote, tmp_path / "a")
    a.write(".frequency/frequency.yaml", "archive_after: 0\n")
    a.run("add", "f", "s1", "s2").assert_success()
    done = _worker(a, "--until-idle", env={**os.environ, "LOG": str(tmp_path / "ran.log")})
    _out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    listed = git(remote, "for-each-ref", "--format=%(refname)", "refs/frequency/").split()
    assert "refs/frequency/archive/f" in listed
    assert not [r for r in listed if r.startswith("refs/frequency/subjects/")]
    # another clone sees the archived subjects, their history whole on the remote
    b = _clone(remote, tmp_path / "b")
    b.write(".frequency/frequency.yaml", "archive_after: 0\n")
    b.run("sync", "--remote", "origin").assert_success()
    assert "archived: in refs/frequency/archive/f" in b.run("show", "f", "s1").assert_success().out
    log = git(remote, "log", "--format=%s", "refs/frequency/archive/f")
    assert "f/s1: created -> new" in log and "f/s2: work new -> done" in log
    git(remote, "fsck", "--strict")


def test_a_first_sync_follows_more_refs_than_one_batch_locks(remote: Path, tmp_path: Path) -> None:
    from freq.store.mirror import FOLLOW

    a = _clone(remote, tmp_path / "a")
    a.write(".frequency/frequency.yaml", "remote: origin\n")
    names = [f"s{i:04d}" for i in range(2 * FOLLOW + 3)]
    a.run("add", "f", *names).assert_success()
    a.run("sync").assert_success()  # one push of every ref it is ahead on
    assert len(_refs(remote)) == len(names)
    b = _clone(remote, tmp_path / "b")
    b.write(".frequency/frequency.yaml", "remote: origin\n")
    out = b.run("sync").assert_success()
    assert _refs(b.path / ".git") == _refs(remote)
    assert "Traceback" not in out.err
