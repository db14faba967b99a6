"""A history that names a missing object (what `git gc --prune=now` during a run leaves):
every reader says so in one line, a worker skips only that subject, nothing crashes.

Objects are deleted by hand from .git/objects (Frequency writes them loose), as gc would.
"""

from __future__ import annotations

import json

import pytest

from freq.clock import SystemClock
from freq.errors import BrokenHistory
from freq.store import Store

from .conftest import FreqRepo

HINT = "; run `git freq cleanup --repair`"
GC = "git gc --prune=now"


def drop(r: FreqRepo, oid: str) -> None:
    """Delete a loose object, as `git gc --prune=now` would have."""
    path = r.path / ".git" / "objects" / oid[:2] / oid[2:]
    assert path.is_file(), f"{oid} is not a loose object"
    path.unlink()


def rev(r: FreqRepo, spec: str) -> str:
    return r.git("rev-parse", spec).strip()


def ref(name: str) -> str:
    return f"refs/frequency/subjects/build/{name}"


def test_a_missing_commit_inside_a_chain_is_skipped_with_one_warning(chains_repo: FreqRepo) -> None:
    """show and log give the history down to the break and one warning line naming it;
    status, plan, why and run go on (run finishes the subjects that are whole)."""
    missing = rev(chains_repo, f"{ref('app-1')}~2")
    newer = [rev(chains_repo, ref("app-1")), rev(chains_repo, f"{ref('app-1')}~1")]
    drop(chains_repo, missing)
    warning = (
        f"warning: {ref('app-1')}: history broken at {missing[:12]} (a commit {GC} removed?); "
        f"older history not shown{HINT}\n"
    )
    shown = chains_repo.run("show", "build", "app-1").assert_success()
    assert shown.err == warning
    assert [ln.split()[0] for ln in shown.out.split("  history:\n")[1].splitlines()] == [
        o[:12] for o in newer
    ]
    data = json.loads(chains_repo.run("show", "build", "app-1", "--json").assert_success().out)
    assert data["problems"] == [warning[len("warning: ") : -1]]
    assert [e["oid"] for e in data["history"]] == newer
    for args in (("log", "build", "app-1"), ("log", "build"), ("log",)):
        out = chains_repo.run(*args).assert_success()
        assert out.err == warning, args
    journal = chains_repo.run("log", "build", "-n", "0").assert_success().out
    assert len([ln for ln in journal.splitlines() if "build/app-2:" in ln]) == 5
    for args in (("status",), ("plan",), ("why", "build", "app-1")):
        chains_repo.run(*args).assert_success()
    ran = chains_repo.run("run", "--until-idle").assert_success()
    assert ran.out.splitlines()[-1] == "done: 6 succeeded, 0 failed, 0 recovered, 0 lost races"


@pytest.mark.parametrize("part", ["commit", "tree", "subject.json"])
def test_a_tip_that_is_not_whole_is_one_line_and_the_worker_skips_it(
    chains_repo: FreqRepo, part: str
) -> None:
    """The tip commit, its tree or its subject.json gone (the snapshot cache still knows the
    state): show, why, log and transition of it refuse in one line; run warns once, runs
    every other subject and exits 0; from then on status and plan list it as a warning."""
    tip = rev(chains_repo, ref("fresh"))
    if part == "commit":
        gone, why = tip, f"a commit {GC} removed?"
    elif part == "tree":
        gone = rev(chains_repo, f"{ref('fresh')}^{{tree}}")
        why = f"its tree {gone[:12]} is missing: {GC} removed it?"
    else:
        gone = rev(chains_repo, f"{ref('fresh')}:subject.json")
        why = f"its subject.json {gone[:12]} is missing: {GC} removed it?"
    drop(chains_repo, gone)
    line = f"{ref('fresh')}: history broken at {tip[:12]} ({why}){HINT}"
    ran = chains_repo.run("run", "--until-idle").assert_success()
    assert ran.err == f"warning: {line}\n"
    assert ran.out.splitlines()[-1] == "done: 3 succeeded, 0 failed, 0 recovered, 0 lost races"
    for args in (
        ("show", "build", "fresh"),
        ("why", "build", "fresh"),
        ("log", "build", "fresh"),
        ("transition", "build", "fresh", "done", "--reason", "by hand"),
    ):
        assert chains_repo.run(*args).assert_failure().err == f"git freq: {line}\n", args
    assert rev(chains_repo, ref("fresh")) == tip  # nothing was built on it
    assert chains_repo.run("status").assert_success().err == f"warning: {line}\n"
    assert chains_repo.run("plan").assert_success().out.endswith(f"warning: {line}\n")
    status = json.loads(chains_repo.run("status", "--json").assert_success().out)
    assert status["problems"] == [line]
    error = json.loads(chains_repo.run("show", "build", "fresh", "--json").assert_failure().out)
    assert error["error"]["code"] == "broken-history"
    assert error["error"]["next"] == {
        "text": "run",
        "command": ["cleanup", "--repair"],
        "option": None,
    }


def test_the_first_reader_moves_the_cached_copy_aside_so_every_snapshot_skips_it(
    chains_repo: FreqRepo,
) -> None:
    """`show` finds the tip gone: the subject leaves the snapshot cache (into its quarantine,
    for a repair), so the next `plan` in another process skips the subject instead of
    planning a start it cannot claim."""
    drop(chains_repo, rev(chains_repo, ref("fresh")))
    assert "start  fresh" in chains_repo.run("plan").assert_success().out  # the cache masks it
    chains_repo.run("show", "build", "fresh").assert_failure()
    planned = chains_repo.run("plan").assert_success()
    assert "start  fresh" not in planned.out
    assert "start  other" in planned.out
    quarantine = (chains_repo.path / ".git/frequency/cache/subjects.broken.v1").read_text()
    assert rev(chains_repo, ref("fresh")) in quarantine


def test_a_broken_dead_letter_queue_lists_what_is_left_and_says_where_it_breaks(
    freq_repo,  # type: ignore[no-untyped-def]
) -> None:
    """dlq list shows the entries above the break and warns once; status warns the same."""
    r: FreqRepo = freq_repo(
        {
            ".frequency/a.yaml": """
            factory_id: a
            state: {initial: s, terminal: [d]}
            steps:
              - {id: go, from_states: [s], to_state: d, run: "false", failure: terminal}
            """
        }
    )
    r.run("add", "a", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    r.run("add", "a", "y").assert_success()
    r.run("run", "--until-idle").assert_success()
    queue = "refs/frequency/dlq/a"
    missing = rev(r, f"{queue}~1")
    drop(r, missing)
    warning = (
        f"warning: {queue}: history broken at {missing[:12]} (a commit {GC} removed?); "
        f"older entries not shown{HINT}\n"
    )
    listed = r.run("dlq", "list").assert_success()
    assert listed.err == warning
    assert [ln.split()[0] for ln in listed.out.splitlines()] == ["id", "a#2"]
    assert r.run("status").assert_success().err == warning


def test_store_reads_name_the_hole(repo: FreqRepo) -> None:
    """history without a list raises BrokenHistory after what it could give; a `changed`
    mark whose commit is gone compares with nothing (every path changed)."""
    (repo.path / "a.txt").write_text("a\n")
    repo.git("add", "a.txt")
    repo.git("commit", "-q", "-m", "second")
    head, first = rev(repo, "HEAD"), rev(repo, "HEAD~1")
    drop(repo, first)
    store = Store.discover(repo.path, clock=SystemClock())
    try:
        walked: list[str] = []
        with pytest.raises(BrokenHistory) as caught:
            for entry in store.history({"refs/heads/main": head}):
                walked.append(entry.oid)
        assert walked == [head]
        assert caught.value.message == (
            f"refs/heads/main: history broken at {first[:12]} (a commit {GC} removed?)"
        )
        assert store.changed_paths(first, head) == ["README", "a.txt"]
    finally:
        store.close()
