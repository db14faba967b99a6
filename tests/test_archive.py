"""The archive (SPEC §3): finished subjects folded into refs/frequency/archive/<factory>,
their refs deleted, still seen by show, log, status, predicates and add."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest

from freq import archival, refs, transitions
from freq.clock import FakeClock, SystemClock
from freq.config import load_config
from freq.ops.app import App
from freq.ops.archive import archive as ops_archive
from freq.runtime import Snapshot
from freq.store import RefUpdate, Store

from .conftest import FreqRepo

pytestmark = [pytest.mark.git]

F = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - {id: work, from_states: [new], to_state: done, run: "true"}
"""
# g's step waits for f's subject of the same name to be done: archived counts
G = """
factory_id: g
state: {initial: new, terminal: [done]}
steps:
  - id: follow
    from_states: [new]
    to_state: done
    run: "true"
    requires: [{subject_state: {factory_id: f, subject: "{subject}", states: [done]}}]
"""


@pytest.fixture
def finished(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """f/a, f/b, f/c run to done and archived at once (archive_after: 0)."""
    r = freq_repo(
        {
            ".frequency/frequency.yaml": "archive_after: 0\n",
            ".frequency/f.yaml": F,
            ".frequency/g.yaml": G,
        }
    )
    r.run("validate").assert_success()
    r.run("add", "f", "a", "b", "c").assert_success()
    out = r.run("run", "--until-idle").assert_success()
    assert "archived" in out.err or "archived" in out.out
    return r


def _refs(r: FreqRepo, prefix: str = "refs/frequency/") -> list[str]:
    return r.git("for-each-ref", "--format=%(refname)", prefix).split()


def test_run_folds_finished_subjects_and_deletes_their_refs(finished: FreqRepo) -> None:
    r = finished
    assert _refs(r, "refs/frequency/subjects/") == []
    assert _refs(r, "refs/frequency/archive/") == ["refs/frequency/archive/f"]
    # the archive's history reaches every archived subject's whole history
    log = r.git("log", "--format=%s", "refs/frequency/archive/f")
    for name in "abc":
        assert f"f/{name}: created -> new" in log
        assert f"f/{name}: work new -> done" in log
    tree = r.git("ls-tree", "-r", "--name-only", "refs/frequency/archive/f").split()
    for name in "abc":
        shard = refs.archive_shard(name)
        assert f"{shard}/{name}/subject.json" in tree and f"{shard}/index.json" in tree
    doc = json.loads(
        r.git("show", f"refs/frequency/archive/f:{refs.archive_shard('a')}/a/subject.json")
    )
    assert doc["state"] == "done"
    assert json.loads(r.git("show", "refs/frequency/archive/f:counts.json")) == {"done": 3}
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=r.path, check=True)


def test_archived_subjects_are_seen_by_show_log_status_and_predicates(finished: FreqRepo) -> None:
    r = finished
    shown = r.run("show", "f", "a").assert_success().out
    assert "state:    done" in shown and "archived: in refs/frequency/archive/f" in shown
    assert json.loads(r.run("show", "f", "a", "--json").out)["archived"] is True
    assert "f/a: work new -> done" in r.run("log", "f", "a").assert_success().out
    assert "f: archived" in r.run("log", "f").assert_success().out
    status = json.loads(r.run("status", "--json").assert_success().out)
    (f,) = [x for x in status["factories"] if x["factory"] == "f"]
    assert dict(map(tuple, f["states"])) == {"new": 0, "done": 3}
    assert (f["subjects"], f["archived"]) == (3, 3)
    # g's steps wait for f's subjects of the same name: archived ones are done
    r.run("add", "g", "a", "b", "zzz").assert_success()
    r.run("run", "--until-idle").assert_success()
    why = r.run("why", "g", "zzz").assert_success().out
    assert "f/zzz in [done]: it does not exist" in why
    assert json.loads(r.run("show", "g", "a", "--json").out)["subject"]["state"] == "done"


def test_adding_an_archived_name_is_refused_unless_reopened(finished: FreqRepo) -> None:
    r = finished
    out = r.run("add", "f", "a", "new1")
    assert out.code == 1
    assert "f: a is archived (done)" in out.err and "--reopen" in out.err
    assert "Traceback" not in out.err
    assert _refs(r, "refs/frequency/subjects/") == []  # nothing added: all or none
    r.run("add", "f", "a", "new1", "--skip-existing").assert_success()
    assert _refs(r, "refs/frequency/subjects/") == ["refs/frequency/subjects/f/new1"]
    r.run("add", "f", "b", "--reopen").assert_success()
    # b's history goes on from its archived commits, and it left the archive
    log = r.git("log", "--format=%s", "refs/frequency/subjects/f/b")
    assert log.splitlines()[0] == "f/b: created -> new"
    assert "f/b: work new -> done" in log
    status = json.loads(r.run("status", "f", "--json").out)["factories"][0]
    assert dict(map(tuple, status["states"])) == {"new": 2, "done": 2}  # counted once
    assert json.loads(r.git("show", "refs/frequency/archive/f:counts.json")) == {"done": 2}
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=r.path, check=True)


def test_a_pass_stopped_between_fold_and_delete_is_tolerated_and_finished(
    freq_repo,  # type: ignore[no-untyped-def]
) -> None:
    r = freq_repo({".frequency/frequency.yaml": "archive_after: 0\n", ".frequency/f.yaml": F})
    r.run("add", "f", "a", "b").assert_success()
    r.run("run", "--until-idle").assert_success()
    # as if the pass had stopped after the archive commit: a's ref is back at its last tip
    tip = r.git(
        "log", "-1", "--format=%H", "--grep=^f/a: work new -> done", "refs/frequency/archive/f"
    )
    r.git("update-ref", "refs/frequency/subjects/f/a", tip.strip())
    status = json.loads(r.run("status", "f", "--json").out)["factories"][0]
    assert dict(map(tuple, status["states"])) == {"new": 0, "done": 2}  # not 3
    assert "archived:" not in r.run("show", "f", "a").assert_success().out  # live wins
    out = r.run("archive").assert_success().out
    assert "f: archived 1 (a)" in out
    assert _refs(r, "refs/frequency/subjects/") == []
    assert json.loads(r.git("show", "refs/frequency/archive/f:counts.json")) == {"done": 2}


def test_archive_waits_archive_after_and_a_dry_run_changes_nothing(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/frequency.yaml": "archive_after: 2h\n", ".frequency/f.yaml": F})
    r.run("add", "f", "a").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _refs(r, "refs/frequency/subjects/") == ["refs/frequency/subjects/f/a"]
    clock = FakeClock()
    app = App(r.path, clock=clock)
    try:
        clock.advance(3600)
        assert app.store.snapshot() and not archival.due(
            app.config, app.store.snapshot(), _now(app)
        )
        assert r.run("archive", "--dry-run").assert_success().out.startswith("nothing to archive")
    finally:
        app.store.close()
    later = App(r.path, clock=FakeClock())
    try:
        snap = later.store.snapshot()
        now = snap.subjects[("f", "a")].entered_at + timedelta(hours=2, seconds=1)
        due = archival.due(later.config, snap, now)
        assert [s.name for s, _ in due["f"]] == ["a"]
    finally:
        later.store.close()


def _now(app: App):  # type: ignore[no-untyped-def]
    return app.store.snapshot().subjects[("f", "a")].entered_at + timedelta(hours=1)


def test_due_skips_claimed_unknown_and_young_subjects(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": F})
    cfg = load_config(r.path)
    t0 = FakeClock().now()
    done = transitions.created("f", "old", "done", at=t0, worker="w").subject
    young = transitions.created(
        "f", "young", "done", at=t0 + timedelta(hours=23), worker="w"
    ).subject
    other = transitions.created("gone", "x", "done", at=t0, worker="w").subject
    new = transitions.created("f", "new", "new", at=t0, worker="w").subject
    snap = Snapshot(
        subjects={(s.factory, s.name): s for s in (done, young, other, new)},
        tips={(s.factory, s.name): "0" * 40 for s in (done, young, other, new)},
    )
    due = archival.due(cfg, snap, t0 + timedelta(days=1))  # the default: 1d
    assert {f: [s.name for s, _ in items] for f, items in due.items()} == {"f": ["old"]}


def test_one_archive_commit_folds_a_chunk_and_a_moved_subject_stays_live(freq_repo) -> None:  # type: ignore[no-untyped-def]
    from freq import archiver

    r = freq_repo({".frequency/f.yaml": F})
    r.run("add", "f", "a", "b", "c", "--state", "done").assert_success()
    store = Store.discover(r.path, clock=FakeClock())
    try:
        snap = store.snapshot()
        items = [(snap.subjects[("f", n)], snap.tips[("f", n)]) for n in "abc"]
        # b moves after the snapshot: its CAS fails, the chunk is folded without it
        subj, tip = store.read_subject("f", "b")
        moved = transitions.moved(subj, state="new", at=store.clock.now(), by="t", reason="x")
        store.advance(refs.subject_ref("f", "b"), moved.subject, moved.event, expected=tip)
        done = archiver.fold(store, "f", items, at=store.clock.now())
        assert (sorted(done.subjects), done.moved, len(done.commits)) == (["a", "c"], ("b",), 1)
        assert store.find_subject("f", "b")[2] is False  # live, in new
        assert store.find_subject("f", "a")[2] is True
        store.update([RefUpdate("refs/frequency/bench/x", tip, None)])  # the store still writes
    finally:
        store.close()
    parents = r.git("log", "-1", "--format=%P", "refs/frequency/archive/f").split()
    assert len(parents) == 3  # the archive's root, then a's and c's last commits


def test_a_pass_larger_than_a_chunk_is_a_chain_of_fold_commits_in_one_batch(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/frequency.yaml": "archive_after: 0\n", ".frequency/f.yaml": F})
    names = [f"s{i:04d}" for i in range(archival.CHUNK * 2 + 7)]
    r.run("add", "f", *names, "--state", "done").assert_success()
    out = r.run("archive").assert_success().out
    assert f"f: archived {len(names)} (" in out
    assert _refs(r, "refs/frequency/subjects/") == []
    folds = r.git("log", "--first-parent", "--format=%s", "refs/frequency/archive/f").splitlines()
    assert [f.split(" (")[0] for f in folds] == [
        "f: archived 7",
        f"f: archived {archival.CHUNK}",
        f"f: archived {archival.CHUNK}",
        "f: archive",
    ]
    assert json.loads(r.git("show", "refs/frequency/archive/f:counts.json")) == {"done": len(names)}
    for n in (names[0], names[archival.CHUNK], names[-1]):
        shown = json.loads(r.run("show", "f", n, "--json").assert_success().out)
        assert shown["archived"] is True and shown["subject"]["name"] == n
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=r.path, check=True)


def test_an_archive_pass_that_folded_ends_with_git_s_upkeep(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """`git freq archive` writes a pack per batch; past gc.autoPackLimit git repacks them
    (gc.autoDetach off here, so that it is done when the command returns), and a pass
    that folds nothing runs no gc."""
    r = freq_repo({".frequency/frequency.yaml": "archive_after: 1d\n", ".frequency/f.yaml": F})
    r.git("config", "gc.autoDetach", "false")
    r.git("config", "gc.autoPackLimit", "2")
    packs = r.path / ".git" / "objects" / "pack"
    for name in ("a", "b", "c"):
        r.run("add", "f", name).assert_success()
        r.git("repack", "-q", "-d")
    r.run("run", "--until-idle").assert_success()  # its start repacks: 3 packs > 2
    assert len(list(packs.glob("*.pack"))) == 1
    for name in ("d", "e"):
        r.run("add", "f", name, "--state", "done").assert_success()
        r.git("repack", "-q", "-d")
    assert len(list(packs.glob("*.pack"))) == 3
    (r.path / ".frequency" / "frequency.yaml").write_text("archive_after: 0\n")
    app = App(r.path, clock=SystemClock())
    try:
        dry = ops_archive(app, dry_run=True)
        assert dry.total == 5 and len(list(packs.glob("*.pack"))) == 3  # a dry run: no gc
        done = ops_archive(app)
    finally:
        app.store.close()
    assert done.total == 5 and done.upkeep is None
    assert len(list(packs.glob("*.pack"))) == 1
    shown = json.loads(r.run("show", "f", "d", "--json").assert_success().out)
    assert shown["subject"]["state"] == "done"  # archived, and read from the one pack
