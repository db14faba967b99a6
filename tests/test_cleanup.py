"""`git freq cleanup [--repair] [--dry-run]`: broken chains found, reported and mended.

Real repositories; objects are deleted by hand from .git/objects as `git gc --prune=now`
would, and one test runs that gc on a real race (a prepared commit no ref reaches yet).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from datetime import timedelta

import pytest

from freq import chains, refs, transitions
from freq.clock import SystemClock
from freq.errors import RefConflict
from freq.store import RefUpdate, Store

from .conftest import FreqRepo
from .test_broken_history import GC, drop, ref, rev

WHOLE = "every chain whole"
SUMMARY = (
    "{n}: `git freq cleanup --repair` returns each to its last intact state as a new commit "
    "(add --dry-run to see how first)"
)


def _refs(r: FreqRepo) -> str:
    return r.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/frequency")


def _slots_on(r: FreqRepo, commit: str) -> list[str]:
    """Cap slots whose chain holds `commit` (they break with it)."""
    slots = r.git("for-each-ref", "--format=%(refname)", "refs/frequency/caps").split()
    is_on = ["git", "merge-base", "--is-ancestor", commit]
    return [
        s for s in slots if subprocess.run([*is_on, s], cwd=r.path, check=False).returncode == 0
    ]


def _trailers(r: FreqRepo, spec: str) -> dict[str, str]:
    return refs.parse_trailers(r.git("log", "-1", "--format=%B", spec))


def _healthy(r: FreqRepo) -> None:
    """What the issue asks of a repaired repository: fsck finds nothing missing, the
    journal reads with plain git, gc runs, and cleanup finds every chain whole."""
    fsck = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"],
        cwd=r.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (fsck.returncode, fsck.stdout, fsck.stderr) == (0, "", "")
    r.git("log", "--glob=refs/frequency", "--format=%H")
    r.git("gc", "-q")
    assert r.run("cleanup").assert_success().out.rstrip().endswith(WHOLE)


def test_a_whole_repository_has_nothing_to_clean(chains_repo: FreqRepo) -> None:
    """Every ref walked, each commit once: one line, exit 0."""
    n_refs = len(_refs(chains_repo).splitlines())
    n_commits = len(chains_repo.git("rev-list", "--glob=refs/frequency").split())
    out = chains_repo.run("cleanup").assert_success().out
    assert out == (
        f"history: {n_refs} refs under refs/frequency/ checked ({n_commits} commits), {WHOLE}\n"
    )


def test_report_dry_run_and_repair_of_a_chain_broken_in_the_middle(chains_repo: FreqRepo) -> None:
    """app-1~2's tree gone: cleanup reports it (exit 1) and changes nothing; --dry-run says
    what it would write and writes nothing; --repair writes one commit on app-1~3 (the
    newest commit below which the chain is intact) holding the tip's state, with trailers
    naming what was missing and what left the history; the repository is healthy after."""
    tip, broken, base = (rev(chains_repo, f"{ref('app-1')}{s}") for s in ("", "~2", "~3"))
    tree = rev(chains_repo, f"{broken}^{{tree}}")
    drop(chains_repo, tree)
    slots = _slots_on(chains_repo, broken)
    problem = f"history broken at {broken[:12]} (its tree {tree[:12]} is missing: {GC} removed it?)"
    found = [
        *(f"{'broken':15} {s}: {problem}" for s in slots),
        f"broken          {ref('app-1')}: {problem}",
    ]
    before = _refs(chains_repo)
    report = chains_repo.run("cleanup").assert_failure()
    assert _refs(chains_repo) == before
    cache = (chains_repo.path / ".git/frequency/cache/subjects.v1").read_bytes()
    n = len(found)
    assert report.out.splitlines() == [*found, SUMMARY.format(n=f"{n} broken chain{'s' * (n > 1)}")]

    dry = chains_repo.run("cleanup", "--repair", "--dry-run").assert_failure()
    what = (
        f"back to done as of {tip[:12]} on top of {base[:12]}, dropping 3 commits from its history"
    )
    assert f"would repair    {ref('app-1')}: {what}" in dry.out.splitlines()
    assert _refs(chains_repo) == before
    assert (chains_repo.path / ".git/frequency/cache/subjects.v1").read_bytes() == cache

    done = chains_repo.run("cleanup", "--repair").assert_success()
    new = rev(chains_repo, ref("app-1"))
    assert f"repaired        {ref('app-1')}: {what} (commit {new[:12]})" in done.out.splitlines()
    freed = "deleted (a cap slot is free once the claim it points at is gone)"
    for slot in slots:
        assert f"repaired        {slot}: {freed}" in done.out.splitlines()
    assert rev(chains_repo, f"{new}^") == base
    old_state = json.loads(chains_repo.git("show", f"{tip}:subject.json"))
    new_state = json.loads(chains_repo.git("show", f"{new}:subject.json"))
    assert new_state["epoch"] == old_state["epoch"] + 1
    assert {k: v for k, v in new_state.items() if k not in ("epoch", "updated_at")} == {
        k: v for k, v in old_state.items() if k not in ("epoch", "updated_at")
    }
    assert chains_repo.git("show", f"{new}:output.log") == "three\n"
    message = chains_repo.git("log", "-1", "--format=%B", new)
    assert (
        message.splitlines()[0] == "build/app-1: repaired in done (history broken, 3 commits lost)"
    )
    for oid in (tip, rev(chains_repo, f"{tip}~1"), broken):
        assert f"  {oid[:12]} build/app-1: " in message
    t = _trailers(chains_repo, new)
    assert (t["Freq-Event"], t["Freq-Missing"], t["Freq-Lost"], t["Freq-Restored-From"]) == (
        "repaired",
        tree,
        "3 commits",
        tip,
    )
    assert t["Freq-Epoch"] == str(new_state["epoch"])
    _healthy(chains_repo)
    shown = chains_repo.run("show", "build", "app-1").assert_success()
    assert shown.err == ""


def _claim(r: FreqRepo, name: str) -> tuple[str, str]:
    """Give `name` a live claim (as a worker's claim commit would); (tip, holder)."""
    store = Store.discover(r.path, clock=SystemClock())
    try:
        subj, tip = store.read_subject("build", name)
        change = transitions.claimed(
            subj,
            step="one",
            attempt=1,
            worker="w:1:1",
            at=store.clock.now(),
            ttl=timedelta(hours=1),
        )
        return store.advance(ref(name), change.subject, change.event, expected=tip), "w:1:1"
    finally:
        store.close()


def test_a_missing_tip_comes_back_from_the_cache_with_its_claim_ended(
    chains_repo: FreqRepo,
) -> None:
    """The claim commit at the tip is gone but the snapshot cache has its subject.json:
    --repair restores that state as a new root, ends the claim (attempt given back, epoch +
    1, so the attempt still running is fenced off), and a worker then runs the subject."""
    tip, holder = _claim(chains_repo, "fresh")
    drop(chains_repo, tip)
    chains_repo.run("show", "build", "fresh").assert_failure()  # moves the cached copy aside
    done = chains_repo.run("cleanup", "--repair").assert_success()
    new = rev(chains_repo, ref("fresh"))
    assert (
        f"repaired        {ref('fresh')}: back to selected as of {tip[:12]} (cached copy) as a "
        "new root, dropping 1 commit (and those below the missing one) from its history; the "
        f"claim of {holder} on one attempt 1 ended (commit {new[:12]})"
    ) in done.out.splitlines()
    state = json.loads(chains_repo.git("show", f"{new}:subject.json"))
    assert (state["claim"], state["attempt"], state["epoch"]) == (None, 0, 2)
    assert chains_repo.git("log", "--format=%H", new).split() == [new]
    assert _trailers(chains_repo, new)["Freq-Restored-From"] == f"{tip} (cached copy)"
    _healthy(chains_repo)
    ran = chains_repo.run("run", "--until-idle").assert_success()
    assert "finished  build/fresh three #1: three -> done" in ran.out


def test_a_subject_with_no_readable_state_is_reported_with_what_to_do(
    chains_repo: FreqRepo,
) -> None:
    """Tip gone and no cache: `not repairable`, with the commands that help; exit 1; --json
    carries the same as data; other breaks are still mended."""
    drop(chains_repo, rev(chains_repo, ref("fresh")))
    shutil.rmtree(chains_repo.path / ".git/frequency/cache")
    out = chains_repo.run("cleanup", "--repair").assert_failure()
    assert out.out.splitlines()[-1] == (
        f"not repairable  {ref('fresh')}: no state of it can be read (no commit left of its "
        "chain holds a readable subject.json, and the snapshot cache has no copy); delete the "
        f"ref (`git update-ref -d {ref('fresh')}`) and add the subject again (`git freq add "
        "build fresh --state STATE`)"
    )
    data = json.loads(chains_repo.run("cleanup", "--repair", "--json").assert_failure().out)
    task, locks, worktrees, packing, objects, caches, logs = data["tasks"]
    assert (caches["task"], caches["lines"]) == ("caches", [])  # few dead entries: kept
    assert (logs["task"], logs["lines"]) == ("logs", [])
    assert (locks["task"], locks["lines"]) == ("git-locks", [])
    assert (worktrees["task"], worktrees["lines"]) == ("worktrees", [])
    assert (packing["task"], packing["lines"]) == ("refs", [])  # few loose refs: not packed
    assert (objects["task"], objects["lines"]) == ("objects", [])  # few packs: not repacked
    assert (task["task"], task["left"], data["left"]) == ("history", 1, 1)
    (row,) = task["chains"]
    assert (row["ref"], row["kind"], row["action"], row["base"]) == (
        ref("fresh"),
        "subject",
        "not repairable",
        None,
    )
    assert row["missing"] == [rev(chains_repo, ref("fresh"))]


def test_git_gc_prune_now_during_a_run_then_repair(chains_repo: FreqRepo) -> None:
    """The race of the issue, made deterministic: a worker's batch has written its objects
    but not yet moved its refs (a window of microseconds now: objects are written inside
    the batch, after its refs are locked and checked) when `git gc --prune=now` walks the
    refs and prunes them; the ref then moves onto the commit and a commit is built on it.
    git gc fails from then on, `show` says where the history breaks, and after `cleanup
    --repair` fsck is clean and gc works again."""
    store = Store.discover(chains_repo.path, clock=SystemClock())
    try:
        subj, tip = store.read_subject("build", "fresh")
        now = store.clock.now()
        claim = transitions.claimed(
            subj, step="one", attempt=1, worker="w:1:1", at=now, ttl=timedelta(hours=1)
        )
        prepared = store.prepare(claim.subject, claim.event, parent=tip)
        # its objects on disk, no ref reaching them: written through a ref deleted again
        store.update([RefUpdate("refs/frequency/race", prepared, None)])
        assert store.delete("refs/frequency/race", expected=prepared)
        chains_repo.git("gc", "--prune=now", "-q")
        gone = subprocess.run(
            ["git", "cat-file", "-e", prepared], cwd=chains_repo.path, check=False
        )
        assert gone.returncode != 0, "gc --prune=now kept the unreferenced commit"
        store.swap(ref("fresh"), prepared, expected=tip)
        renew = transitions.renewed(claim.subject, at=now, ttl=timedelta(hours=1), worker="w:1:1")
        built = store.advance(
            ref("fresh"), renew.subject, renew.event, expected=prepared, output=b"half\n"
        )
    finally:
        store.close()
    gc = subprocess.run(
        ["git", "gc", "-q"], cwd=chains_repo.path, capture_output=True, text=True, check=False
    )
    assert gc.returncode != 0 and prepared in gc.stderr
    shown = chains_repo.run("show", "build", "fresh").assert_success()
    assert shown.err == (
        f"warning: {ref('fresh')}: history broken at {prepared[:12]} (a commit {GC} removed?); "
        "older history not shown; run `git freq cleanup --repair`\n"
    )
    done = chains_repo.run("cleanup", "--repair").assert_success()
    new = rev(chains_repo, ref("fresh"))
    assert (
        f"repaired        {ref('fresh')}: back to selected as of {built[:12]} as a new root, "
        "dropping 2 commits (and those below the missing one) from its history; the claim of "
        f"w:1:1 on one attempt 1 ended (commit {new[:12]})"
    ) in done.out.splitlines()
    assert chains_repo.git("show", f"{new}:output.log") == "half\n"
    _healthy(chains_repo)


DOCS = {
    ".frequency/a.yaml": """
        factory_id: a
        state: {initial: s, terminal: [d]}
        steps:
          - {id: go, from_states: [s], to_state: d, run: "false", failure: terminal}
        """,
    ".frequency/b.yaml": """
        factory_id: b
        state: {initial: s, terminal: [d]}
        steps:
          - {id: go, from_states: [s], to_state: d, run: "true", locks: [deploy]}
        """,
}


def test_dead_letter_lock_and_control_refs_are_mended_too(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A queue broken below its tip gets a repair record numbered above every entry it
    held, and the subjects still waiting on a lost entry are named; a lock keeps its newest
    readable lock.json; a control ref with nothing readable comes back paused. Afterwards
    new failures are numbered after the record and the repository is healthy."""
    r: FreqRepo = freq_repo(DOCS)
    for name in ("x1", "x2", "x3"):
        r.run("add", "a", name).assert_success()
        r.run("run", "--until-idle").assert_success()
    r.run("add", "b", "y1", "y2").assert_success()
    r.run("run", "--until-idle").assert_success()
    r.run("pause", "b", "--reason", "one").assert_success()
    queue, lock, control = (
        "refs/frequency/dlq/a",
        "refs/frequency/locks/deploy",
        "refs/frequency/control/b",
    )
    kept_lock = rev(r, lock)
    drop(r, rev(r, f"{queue}~1"))
    drop(r, rev(r, f"{lock}~2"))
    drop(r, rev(r, control))
    data = json.loads(r.run("cleanup", "--repair", "--json").assert_success().out)
    rows = {row["ref"]: row for row in data["tasks"][0]["chains"]}
    assert {k: v["action"] for k, v in rows.items()} == dict.fromkeys(
        (control, queue, lock), "repaired"
    )
    assert rows[control]["notes"] == ["b is paused until you run `git freq resume b`"]
    assert json.loads(r.git("show", f"{control}:control.json"))["paused"] is True
    assert r.git("show", f"{lock}:lock.json") == r.git("show", f"{kept_lock}:lock.json")
    assert rows[lock]["detail"].startswith(f"its lock.json as of {kept_lock[:12]} as a new root")
    entry = json.loads(r.git("show", f"{queue}:entry.json"))
    assert (entry["id"], entry["kind"]) == ("a#4", "repair")
    assert rows[queue]["notes"] == [
        f"a/{s} waits as {e}, which left the queue with the broken history; move it on with "
        f"`git freq transition a {s} STATE --reason ...`"
        for e, s in (("a#1", "x1"), ("a#2", "x2"), ("a#3", "x3"))
    ]
    assert r.run("dlq", "list").assert_success().out == "the dead-letter queue is empty\n"
    assert r.run("dlq", "requeue", "a#4").assert_failure().err == (
        "git freq: a#4 records a repair of the queue, not a failure; nothing to requeue\n"
    )
    _healthy(r)
    r.run("resume", "b").assert_success()
    r.run("add", "a", "x4").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert [ln.split()[0] for ln in r.run("dlq", "list").out.splitlines()] == ["id", "a#5"]


def test_a_ref_that_moves_during_the_repair_is_left_alone(chains_repo: FreqRepo) -> None:
    """The repair is a compare-and-swap from the broken tip: a ref moved meanwhile is not
    overwritten (RefConflict; cleanup reports it `skipped` and asks to run again)."""
    drop(chains_repo, rev(chains_repo, f"{ref('app-1')}~2"))
    store = Store.discover(chains_repo.path, clock=SystemClock())
    try:
        breaks, _junk, _n = chains.find(store, {})
        (brk,) = [b for b in breaks if b.ref == ref("app-1")]
        chains_repo.git("update-ref", ref("app-1"), rev(chains_repo, ref("app-2")))
        mender = chains.Mender(store, at=store.clock.now(), by="me", dry_run=False)
        with pytest.raises(RefConflict):
            mender.mend(brk, store.snapshot())
    finally:
        store.close()
    assert rev(chains_repo, ref("app-1")) == rev(chains_repo, ref("app-2"))


def test_loose_refs_that_piled_up_are_packed_and_keep_their_values(freq_repo) -> None:  # type: ignore[no-untyped-def]
    from freq.ops.cleanup import LOOSE_PILE

    factory = (
        "factory_id: f\nstate: {initial: new, terminal: [done]}\n"
        "steps: [{id: w, from_states: [new], to_state: done, run: 'true'}]\n"
    )
    r = freq_repo({".frequency/f.yaml": factory})
    names = [f"s{i}" for i in range(LOOSE_PILE + 4)]
    r.run("add", "f", *names).assert_success()  # one packed-refs write
    store = Store.discover(r.path, clock=SystemClock())
    try:
        for n in names:  # one transition each: every subject ref is loose now
            subj, tip = store.read_subject("f", n)
            moved = transitions.moved(subj, state="done", at=store.clock.now(), by="t", reason="x")
            store.advance(refs.subject_ref("f", n), moved.subject, moved.event, expected=tip)
        assert store.loose_refs() == len(names)
    finally:
        store.close()
    before = _refs(r)
    dry = r.run("cleanup", "--dry-run").assert_success()
    assert f"would pack      {len(names)} loose refs under refs/frequency/" in dry.out
    out = r.run("cleanup", "--json").assert_success()
    task = next(t for t in json.loads(out.out)["tasks"] if t["task"] == "refs")
    assert task["lines"] == [
        f"packed          {len(names)} loose refs under refs/frequency/ into packed-refs"
    ]
    assert _refs(r) == before  # the same refs at the same commits, now read from one file
    assert not (r.path / ".git" / "refs" / "frequency" / "subjects" / "f" / "s0").exists()
    assert r.run("cleanup").assert_success().out.count("pack") == 0  # nothing piled up now


FACTORY = (
    "factory_id: f\nstate: {initial: new, terminal: [done]}\n"
    "steps:\n"
    "  - {id: w, from_states: [new], to_state: mid, run: 'echo w'}\n"
    "  - {id: x, from_states: [mid], to_state: done, run: 'echo x'}\n"
)


def _cache_oids(r: FreqRepo) -> set[str]:
    path = r.path / ".git" / "frequency" / "cache" / "subjects.v1"
    return {line[:40] for line in path.read_text().splitlines()}


def test_cache_entries_of_commits_no_ref_names_are_dropped(freq_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib

    from freq import ops
    from freq.ops.app import App

    housekeeping = importlib.import_module("freq.ops.cleanup")

    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "a", "b").assert_success()
    r.run("run", "--until-idle").assert_success()
    tips = {rev(r, refs.subject_ref("f", n)) for n in ("a", "b")}
    dead = len(_cache_oids(r) - tips)
    assert dead >= 2  # the earlier tips are cached too
    assert _task(r.run("cleanup", "--json"), "caches") == []  # fewer than CACHE_PILE

    def caches(dry_run: bool) -> list[str]:
        app = App(r.path)
        try:
            result = ops.cleanup(app, dry_run=dry_run)
        finally:
            app.store.close()
        return list(next(t.lines for t in result.tasks if t.task == "caches"))

    monkeypatch.setattr(housekeeping, "CACHE_PILE", dead)
    line = f"{dead} cached documents of commits no ref names any more"
    assert caches(dry_run=True) == [f"would drop      {line}"] and _cache_oids(r) > tips
    assert caches(dry_run=False) == [f"dropped         {line}"]
    assert _cache_oids(r) == tips
    assert caches(dry_run=False) == []
    shown = json.loads(r.run("show", "f", "a", "--json").assert_success().out)
    assert shown["subject"]["state"] == "done"  # read the same from the smaller cache


def _task(outcome, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    data = json.loads(outcome.assert_success().out)
    return next(t["lines"] for t in data["tasks"] if t["task"] == name)


def test_log_folders_of_subjects_gone_for_a_day_are_removed_and_no_others(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "gone", "fresh", "arch").assert_success()
    r.run("run", "--until-idle").assert_success()
    for name in ("gone", "fresh"):  # removed by hand: neither live nor archived
        r.git("update-ref", "-d", refs.subject_ref("f", name))
    (r.path / ".frequency" / "frequency.yaml").write_text("archive_after: 0\n")
    r.run("archive").assert_success()  # arch: archived
    r.run("add", "f", "live").assert_success()
    logs = r.path / ".git" / "frequency" / "logs" / "f"
    (logs / "live").mkdir()
    (logs / "live" / "w-1-1.log").write_text("an old attempt's\n")
    old = time.time() - 2 * 86400
    for name in ("gone", "arch", "live"):  # fresh was written just now
        for p in [*(logs / name).iterdir(), logs / name]:
            os.utime(p, (old, old))
    dry = r.run("cleanup", "--dry-run", "--json").assert_success()
    task = next(t for t in json.loads(dry.out)["tasks"] if t["task"] == "logs")
    assert task["lines"] == ["would remove    logs/f/gone: no such subject, live or archived"]
    assert (logs / "gone").exists()
    out = r.run("cleanup", "--json").assert_success()
    task = next(t for t in json.loads(out.out)["tasks"] if t["task"] == "logs")
    assert task["lines"] == ["removed         logs/f/gone: no such subject, live or archived"]
    assert sorted(p.name for p in logs.iterdir()) == ["arch", "fresh", "live"]


def _packs(r: FreqRepo) -> list[str]:
    return sorted(p.name for p in (r.path / ".git" / "objects" / "pack").glob("*.pack"))


def test_packs_that_piled_up_become_one_and_an_unreferenced_new_object_survives(
    freq_repo,
) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": FACTORY})
    for name in ("a", "b", "c"):  # a pack of each subject's objects, as a batch writes one
        r.run("add", "f", name).assert_success()
        r.git("repack", "-q", "-d")
    # an object a worker wrote a moment ago and no ref names yet, in a pack of its own
    blob = r.git("hash-object", "-w", "--stdin", input_text="in flight\n").strip()
    r.git("pack-objects", "-q", ".git/objects/pack/pack", input_text=blob + "\n")
    r.git("prune-packed")
    packs = len(_packs(r))
    assert packs >= 4
    assert _task(r.run("cleanup", "--json"), "objects") == []  # not past git's 50
    before = _refs(r)

    r.git("config", "gc.autoPackLimit", "0")  # off, as for git gc --auto
    assert _task(r.run("cleanup", "--json"), "objects") == []
    r.git("config", "gc.autoPackLimit", str(packs - 1))  # the repository's own limit
    dry = r.run("cleanup", "--dry-run").assert_success()
    assert f"would repack    {packs} packs into one" in dry.out
    assert len(_packs(r)) == packs
    done = _task(r.run("cleanup", "--json"), "objects")
    assert done == [f"repacked        {packs} packs into one"]
    assert len(_packs(r)) == 1
    assert _refs(r) == before
    r.git("cat-file", "-e", blob)  # loosened, not dropped: its writer may still name it
    _healthy(r)
    assert _task(r.run("cleanup", "--json"), "objects") == []  # nothing piled up now


def test_loose_objects_that_piled_up_are_packed_by_git_s_estimate(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "a").assert_success()
    r.git("repack", "-q", "-d")  # objects/17 empty, whatever the commits' ids
    # git estimates loose objects from objects/17 alone: two reachable blobs that land there
    found: list[str] = []
    i = 0
    while len(found) < 2:
        data = f"payload {i}\n".encode()
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            found.append(data.decode())
        i += 1
    entries = ""
    for k, text in enumerate(found):
        oid = r.git("hash-object", "-w", "--stdin", input_text=text).strip()
        entries += f"100644 blob {oid}\tf{k}\n"
    tree = r.git("mktree", input_text=entries).strip()
    commit = r.git("commit-tree", "-m", "x", tree).strip()
    r.git("update-ref", "refs/heads/side", commit)
    loose17 = r.path / ".git" / "objects" / "17"
    assert len(os.listdir(loose17)) == 2

    # git repacks once objects/17 holds more than gc.auto / 256 (rounded up) objects
    r.git("config", "gc.auto", "512")
    assert _task(r.run("cleanup", "--json"), "objects") == []  # 2 is not more than 2
    r.git("config", "gc.auto", "0")  # off, as for git gc --auto
    assert _task(r.run("cleanup", "--json"), "objects") == []
    r.git("config", "gc.auto", "256")
    line = "about 512 loose objects into a pack"
    assert f"would repack    {line}" in r.run("cleanup", "--dry-run").assert_success().out
    assert _task(r.run("cleanup", "--json"), "objects") == [f"repacked        {line}"]
    assert not loose17.exists() or not os.listdir(loose17)
    r.git("cat-file", "-e", f"{commit}:f0")
    _healthy(r)
