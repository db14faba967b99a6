"""The state store against real repositories: CAS, bulk create, snapshot, corruption."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freq import refs
from freq.clock import FakeClock
from freq.errors import CorruptState, RefConflict, SubjectExists, UnknownSubject
from freq.runtime import Event, EventKind, Subject
from freq.store import Store

from .conftest import FreqRepo, new_repo

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _subject(name: str, state: str = "selected", factory: str = "build") -> Subject:
    return Subject(
        factory=factory, name=name, state=state, created_at=T0, updated_at=T0, entered_at=T0
    )


def _created(s: Subject) -> Event:
    return Event(
        kind=EventKind.CREATED,
        factory=s.factory,
        subject=s.name,
        at=T0,
        worker="w:1:1",
        to_state=s.state,
    )


def _moved(s: Subject, to: str) -> Event:
    return Event(
        kind=EventKind.TRANSITIONED,
        factory=s.factory,
        subject=s.name,
        at=T0,
        worker="w:1:1",
        step="implement",
        from_state=s.state,
        to_state=to,
        attempt=1,
        epoch=1,
        duration_ms=5,
    )


@pytest.fixture
def store(repo: FreqRepo):  # type: ignore[no-untyped-def]
    st = Store.discover(repo.path, clock=FakeClock(T0))
    yield st
    st.close()


def test_create_many_then_snapshot_reads_every_subject(store: Store, repo: FreqRepo) -> None:
    """Subjects created in one write are all visible to a fresh reader and to git."""
    subs = [_subject(f"app-{i}") for i in range(5)]
    store.create_many([(s, _created(s)) for s in subs])
    fresh = Store.discover(repo.path, clock=FakeClock(T0))
    snap = fresh.snapshot()
    fresh.close()
    assert sorted(n for _, n in snap.subjects) == [f"app-{i}" for i in range(5)]
    listed = repo.git("for-each-ref", "--format=%(refname)", "refs/frequency/subjects/build")
    assert listed.split() == [f"refs/frequency/subjects/build/app-{i}" for i in range(5)]
    repo.git("fsck", "--strict")


def test_create_many_is_all_or_nothing(store: Store, repo: FreqRepo) -> None:
    """Adding a batch where one subject exists adds none of them."""
    a = _subject("a")
    store.create_many([(a, _created(a))])
    batch = [_subject("b"), _subject("a"), _subject("c")]
    with pytest.raises(SubjectExists, match="subject already exists: build/a"):
        store.create_many([(s, _created(s)) for s in batch])
    assert sorted(n for _, n in store.snapshot().subjects) == ["a"]


def test_advance_is_compare_and_swap(store: Store, repo: FreqRepo) -> None:
    """Two writers from the same tip: the first wins, the second gets RefConflict."""
    s = _subject("x")
    (tip,) = store.create_many([(s, _created(s))])
    ref = refs.subject_ref("build", "x")
    other = Store.discover(repo.path, clock=FakeClock(T0))
    won = other.advance(
        ref, replace(s, state="implemented"), _moved(s, "implemented"), expected=tip
    )
    with pytest.raises(RefConflict, match="lost race on refs/frequency/subjects/build/x"):
        store.advance(ref, replace(s, state="reviewed"), _moved(s, "reviewed"), expected=tip)
    other.close()
    assert repo.git("rev-parse", ref).strip() == won
    subj, _ = store.read_subject("build", "x")
    assert subj.state == "implemented"


def test_commits_carry_trailers_readable_by_git(store: Store, repo: FreqRepo) -> None:
    """`git log --format=%(trailers)` shows what the store wrote."""
    s = _subject("x")
    (tip,) = store.create_many([(s, _created(s))])
    store.advance(
        refs.subject_ref("build", "x"),
        replace(s, state="implemented"),
        _moved(s, "implemented"),
        expected=tip,
        output=b"hello\n",
    )
    out = repo.git(
        "log",
        "-1",
        "--format=%s%n%(trailers:key=Freq-To,valueonly)",
        "refs/frequency/subjects/build/x",
    )
    assert out.split("\n")[:2] == ["build/x: implement selected -> implemented", "implemented"]
    assert repo.git("show", "refs/frequency/subjects/build/x:output.log") == "hello\n"
    repo.git("fsck", "--strict")


def test_user_head_index_and_worktree_untouched(store: Store, repo: FreqRepo) -> None:
    """Writing state never moves HEAD or branches, nor touches the index or files."""
    before = (
        repo.git("rev-parse", "HEAD"),
        repo.git("status", "--porcelain"),
        (repo.path / ".git" / "index").read_bytes(),
    )
    subs = [_subject(f"s{i}") for i in range(3)]
    store.create_many([(x, _created(x)) for x in subs])
    after = (
        repo.git("rev-parse", "HEAD"),
        repo.git("status", "--porcelain"),
        (repo.path / ".git" / "index").read_bytes(),
    )
    assert before == after


def test_corrupt_subject_json_is_a_problem_not_a_crash(store: Store, repo: FreqRepo) -> None:
    """A subject ref whose subject.json is garbage is skipped and described."""
    good = _subject("good")
    store.create_many([(good, _created(good))])
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        input="{not json",
        text=True,
        capture_output=True,
        cwd=repo.path,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "mktree"],
        input=f"100644 blob {blob}\tsubject.json\n",
        text=True,
        capture_output=True,
        cwd=repo.path,
        check=True,
    ).stdout.strip()
    commit = repo.git("commit-tree", tree, "-m", "junk").strip()
    repo.git("update-ref", "refs/frequency/subjects/build/bad", commit)
    snap = store.snapshot()
    assert list(snap.subjects) == [("build", "good")]
    assert snap.problems == (
        "refs/frequency/subjects/build/bad: subject.json is not JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
    )
    with pytest.raises(CorruptState, match=r"build/bad: subject\.json is not JSON"):
        store.read_subject("build", "bad")


def test_foreign_ref_is_reported_and_ignored(store: Store, repo: FreqRepo) -> None:
    """A ref under refs/frequency/subjects/ that is not <factory>/<subject> is skipped."""
    head = repo.git("rev-parse", "HEAD").strip()
    repo.git("update-ref", "refs/frequency/subjects/stray", head)
    repo.git("update-ref", "refs/frequency/subjects/build/app/deeper", head)
    repo.git("update-ref", "refs/frequency/subjects/build/plain", head)
    snap = store.snapshot()
    assert snap.subjects == {}
    assert snap.problems == (
        "refs/frequency/subjects/build/app/deeper: not a Frequency subject ref (expected "
        "refs/frequency/subjects/<factory>/<subject>); ignored",
        f"refs/frequency/subjects/build/plain: commit {head[:12]} has no subject.json",
        "refs/frequency/subjects/stray: not a Frequency subject ref (expected "
        "refs/frequency/subjects/<factory>/<subject>); ignored",
    )


def test_unknown_subject(store: Store) -> None:
    """Reading a subject that does not exist names it."""
    with pytest.raises(UnknownSubject, match="no subject 'nope' in factory 'build'"):
        store.read_subject("build", "nope")


def test_snapshot_cache_survives_torn_and_foreign_lines(store: Store, repo: FreqRepo) -> None:
    """Garbage in the cache file costs only a miss; the state read is still right."""
    s = _subject("x")
    store.create_many([(s, _created(s))])
    cache = Path(repo.path, ".git", "frequency", "cache", "subjects.v1")
    with cache.open("ab") as f:
        f.write(b"0" * 40 + b' deadbeef {"state": "forged"}\n' + b"torn-line-without-newline")
    fresh = Store.discover(repo.path, clock=FakeClock(T0))
    assert fresh.snapshot().subjects[("build", "x")].state == "selected"
    fresh.close()
    cache.unlink()
    cold = Store.discover(repo.path, clock=FakeClock(T0))
    assert cold.snapshot().subjects[("build", "x")].state == "selected"
    cold.close()


# ---------------------------------------------------------------- batches


def _tips(repo: FreqRepo) -> dict[str, str]:
    out = repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/frequency")
    return dict(line.split() for line in out.splitlines())


def test_a_batch_moves_every_ref_or_none(store: Store, repo: FreqRepo) -> None:
    """Store.update: each ref against its expected value; one stale value moves nothing."""
    from freq.store import RefUpdate

    s = _subject("a")
    first = store.advance(refs.subject_ref("build", "a"), s, _created(s), expected=None)
    second = store.prepare(replace(s, state="implemented"), _moved(s, "implemented"), parent=first)
    slot = "refs/frequency/caps/global/0"
    lock = "refs/frequency/locks/deploy"
    store.update(
        [
            RefUpdate(slot, second, None),
            RefUpdate(lock, second, None),
            RefUpdate(refs.subject_ref("build", "a"), second, first),
        ]
    )
    assert _tips(repo) == {slot: second, lock: second, refs.subject_ref("build", "a"): second}
    before = _tips(repo)
    with pytest.raises(RefConflict) as info:
        store.update(
            [
                RefUpdate(slot, first, None),  # already exists: stale
                RefUpdate(lock, None, second),  # would delete
                RefUpdate(refs.subject_ref("build", "a"), first, second),
            ]
        )
    assert info.value.ref == slot
    assert _tips(repo) == before  # nothing moved, nothing deleted
    assert not list((repo.path / ".git" / "refs" / "frequency").rglob("*.lock"))
    store.update([RefUpdate(lock, None, second), RefUpdate(slot, None, second)])
    assert set(_tips(repo)) == {refs.subject_ref("build", "a")}
    fsck = subprocess.run(
        ["git", "fsck", "--no-dangling"], cwd=repo.path, capture_output=True, check=False
    )
    assert fsck.returncode == 0, fsck.stderr


def test_bulk_creates_from_two_processes_never_overwrite_each_other(repo: FreqRepo) -> None:
    """Two processes add overlapping names at once: every subject is created exactly once,
    by one of them, and the process that lost wrote none of its batch (all or nothing)."""
    script = (
        "import sys\n"
        "from freq.clock import SystemClock\n"
        "from freq.errors import SubjectExists\n"
        "from freq.store import Store\n"
        "from freq import transitions as t\n"
        "from datetime import datetime, UTC\n"
        "names = sys.argv[2].split(',')\n"
        "st = Store.discover('.', clock=SystemClock())\n"
        "now = datetime.now(UTC)\n"
        "items = [(c.subject, c.event) for c in (t.created('build', n, 'selected', at=now,\n"
        "         worker=sys.argv[1], data={'by': sys.argv[1]}) for n in names)]\n"
        "try:\n"
        "    st.create_many(items)\n"
        "    print('created')\n"
        "except SubjectExists:\n"
        "    print('exists')\n"
    )
    a = ",".join(f"s{i}" for i in range(300))
    b = ",".join(f"s{i}" for i in range(150, 450))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, who, names],
            cwd=repo.path,
            stdout=subprocess.PIPE,
            text=True,
        )
        for who, names in (("A", a), ("B", b))
    ]
    said = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(said) == ["created", "exists"]  # the overlap makes the second one refuse
    store = Store.discover(repo.path, clock=FakeClock(T0))
    snap = store.snapshot()
    owners = {name: s.data["by"] for (_, name), s in snap.subjects.items()}
    for who, names, verdict in (("A", a, said[0]), ("B", b, said[1])):
        mine = [n for n in names.split(",") if owners.get(n) == who]
        assert len(mine) == (len(names.split(",")) if verdict == "created" else 0)
    assert len(owners) == 300  # only the winner's batch
    store.close()


def test_head_of_a_linked_worktree_is_its_own(repo: FreqRepo, tmp_path: Path) -> None:
    """HEAD is per worktree: a store opened in a linked worktree reads that worktree's HEAD,
    not the main one's (refs/frequency/ are shared and read from the common folder)."""
    first = repo.git("rev-parse", "HEAD").strip()
    repo.git("checkout", "-q", "--detach")
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "-b", "work", str(linked))
    (linked / "more").write_text("x\n")
    subprocess.run(["git", "add", "more"], cwd=linked, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "more"], cwd=linked, check=True)
    second = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=linked, capture_output=True, text=True, check=True
    ).stdout.strip()
    st = Store.discover(linked, clock=FakeClock(T0))
    assert st.branch_tip(None) == second != first
    assert st.common_dir == repo.path / ".git"
    st.close()


def test_a_subject_json_that_only_python_json_reads_is_never_cached(
    store: Store, repo: FreqRepo
) -> None:
    """A hand-made subject.json with NaN: json reads it, the cache's reader would not. It
    is read from git every time (and never turns into a crash on the second read)."""
    s = _subject("odd")
    raw = refs.subject_to_json(s).replace(b'"attempt": 0', b'"attempt": 0, "note": NaN')
    blob = repo.git("hash-object", "-w", "--stdin", input_text=raw.decode()).strip()
    tree = repo.git("mktree", input_text=f"100644 blob {blob}\tsubject.json\n").strip()
    commit = repo.git("commit-tree", tree, "-m", "hand-made").strip()
    repo.git("update-ref", "refs/frequency/subjects/build/odd", commit)
    for _ in range(2):
        fresh = Store.discover(repo.path, clock=FakeClock(T0))
        assert fresh.snapshot().subjects[("build", "odd")].state == "selected"
        assert fresh.read_subject("build", "odd")[0].name == "odd"
        fresh.close()


def test_loose_refs_win_over_packed_ones(store: Store, repo: FreqRepo) -> None:
    """A ref both packed and loose is listed with its loose (newer) value, as git reads it."""
    s = _subject("a")
    old = store.advance(refs.subject_ref("build", "a"), s, _created(s), expected=None)
    repo.git("pack-refs", "--all")
    new = store.advance(
        refs.subject_ref("build", "a"), replace(s, state="x"), _moved(s, "x"), expected=old
    )
    assert store.list_refs(refs.SUBJECTS) == {refs.subject_ref("build", "a"): new}


def test_a_batch_naming_one_object_twice_writes_a_readable_pack(
    store: Store, repo: FreqRepo
) -> None:
    """40 subjects moved in one batch with the same output tail: more objects than the pack
    threshold, the tail's blob named 40 times. The pack holds it once, dulwich and git
    read every commit, and `git fsck` is clean."""
    from freq.store import RefUpdate

    subjects = [_subject(f"app-{i:02d}") for i in range(40)]
    tips = store.create_many([(s, _created(s)) for s in subjects])
    batch = []
    for s, tip in zip(subjects, tips, strict=True):
        done = replace(s, state="implemented")
        oid = store.prepare(done, _moved(s, "implemented"), parent=tip, output=b"same tail\n")
        batch.append(RefUpdate(refs.subject_ref(s.factory, s.name), oid, tip))
    store.update(batch)
    fresh = Store.discover(repo.path, clock=FakeClock(T0))
    try:
        for u in batch:
            assert fresh.read_output(u.new or "") == b"same tail\n"
        assert {s.state for s in fresh.snapshot().subjects.values()} == {"implemented"}
    finally:
        fresh.close()
    repo.git("fsck", "--strict")


OPS = st.lists(
    st.tuples(
        st.sampled_from(["advance", "swap", "delete", "junk", "recreate", "nothing"]),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_a_snapshot_made_from_the_last_one_is_the_state_read_afresh(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]
) -> None:
    """The Store's snapshot reads only the refs that moved since its last one; whatever
    moved them (this store, plain git, a ref pointed at another subject's commit or at no
    commit, a ref deleted and made again), it equals a fresh Store's full read."""
    repo = new_repo(tmp_path_factory.mktemp("incremental"))
    names = [f"s{i}" for i in range(4)]
    live = Store.discover(repo.path, clock=FakeClock(T0))
    try:
        subs = [_subject(n) for n in names]
        live.create_many([(s, _created(s)) for s in subs])
        live.snapshot()
        states = ["a", "b", "c"]
        for op, i, j in ops:
            ref = refs.subject_ref("build", names[i])
            tip = repo.git("rev-parse", "-q", "--verify", ref, check=False).strip()
            if op == "advance" and tip:
                s = live.read_subject("build", names[i])[0]
                to = states[(states.index(s.state) + 1) % 3 if s.state in states else 0]
                live.advance(ref, replace(s, state=to), _moved(s, to), expected=tip)
            elif op == "swap":
                other = repo.git(
                    "rev-parse", "-q", "--verify", refs.subject_ref("build", names[j]), check=False
                ).strip()
                if other:
                    _write_loose(repo, ref, other)
            elif op == "delete" and tip:
                (repo.path / ".git" / ref).unlink(missing_ok=True)
                repo.git("update-ref", "-d", ref, check=False)  # its packed value, if any
            elif op == "junk":
                _write_loose(repo, ref, "not a commit id")
            elif op == "recreate":
                (repo.path / ".git" / ref).unlink(missing_ok=True)
                repo.git("update-ref", "-d", ref, check=False)
                s = _subject(names[i])
                live.create_many([(s, _created(s))])
            got = live.snapshot()
            fresh = Store.discover(repo.path, clock=FakeClock(T0))
            try:
                want = fresh.snapshot()
            finally:
                fresh.close()
            assert got.subjects == want.subjects and got.tips == want.tips
            assert got.state_counts == want.state_counts
            assert got.problems == want.problems
    finally:
        live.close()


def _write_loose(repo: FreqRepo, ref: str, value: str) -> None:
    """Set a loose ref by hand (git refuses to move a ref that holds no commit id)."""
    path = repo.path / ".git" / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(value + "\n")
    tmp.replace(path)
