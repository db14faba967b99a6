"""Broken state on disk and in refs: one-line errors or warnings, never an internal error."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from .conftest import FreqRepo

BUILD = """
factory_id: build
state:
  initial: selected
  terminal: [done]
steps:
  - id: implement
    from_states: [selected]
    to_state: done
    run: "true"
"""

NOT_A_FOLDER = (
    "git freq: .git/frequency is not a folder (Frequency keeps its logs and locks there); "
    "nothing was written; move it aside (`mv .git/frequency .git/frequency.old`) and retry\n"
)


@pytest.fixture
def build(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    return freq_repo({".frequency/build.yaml": BUILD})  # type: ignore[no-any-return]


def _frequency_refs(r: FreqRepo) -> str:
    return r.git("for-each-ref", "--format=%(refname)", "refs/frequency")


def test_state_folder_that_is_a_file_refuses_writes_before_any_ref(build: FreqRepo) -> None:
    """A file at .git/frequency: writes say so in one line and write nothing; reads work."""
    build.run("add", "build", "a").assert_success()
    before = _frequency_refs(build)
    shutil.rmtree(build.path / ".git/frequency")
    (build.path / ".git/frequency").write_text("not a folder\n")
    for args in (("add", "build", "b"), ("run", "--once"), ("pause", "build")):
        out = build.run(*args).assert_failure()
        assert out.err == NOT_A_FOLDER, args
    assert _frequency_refs(build) == before
    for args in (("status",), ("show", "build", "a"), ("log", "build", "a"), ("plan",)):
        build.run(*args).assert_success()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes folders whatever their mode")
def test_unreadable_state_folder_refuses_writes(build: FreqRepo) -> None:
    """chmod 000 .git/frequency: `add` says so in one line and writes no ref."""
    state = build.path / ".git/frequency"
    state.mkdir(exist_ok=True)
    state.chmod(0)
    try:
        out = build.run("add", "build", "a").assert_failure()
        build.run("status").assert_success()
    finally:
        state.chmod(0o755)
    assert out.err == (
        "git freq: .git/frequency is not readable and writable by this user; nothing was "
        "written; fix its permissions (`chmod u+rwx .git/frequency`) and retry\n"
    )
    assert _frequency_refs(build) == ""


def test_broken_beacon_or_cache_never_fails_a_write_that_happened(build: FreqRepo) -> None:
    """The beacon and the subject cache are optimisations: a folder in their place does not
    turn a successful `add` into a failure, and later reads still work."""
    (build.path / ".git/frequency/beacon").mkdir(parents=True)
    (build.path / ".git/frequency/cache/subjects.v1").mkdir(parents=True)
    build.run("add", "build", "a").assert_success()
    assert _frequency_refs(build) == "refs/frequency/subjects/build/a\n"
    build.run("status").assert_success()
    build.run("run", "--once").assert_success()
    assert "build/a: implement selected -> done" in build.run("log", "build", "a").out


@pytest.mark.parametrize("kind", ["missing", "blob"])
def test_subject_ref_naming_a_missing_object_or_a_blob(build: FreqRepo, kind: str) -> None:
    """A subject ref that names no commit: show/log/why of it say so in one line; status,
    plan, log and run warn about it once and go on with the other subjects."""
    build.run("add", "build", "good").assert_success()
    ref = "refs/frequency/subjects/build/bad"
    if kind == "missing":
        oid = "0123456789abcdef0123456789abcdef01234567"
        # git update-ref refuses a missing object: write the loose ref by hand
        (build.path / ".git" / ref).parent.mkdir(parents=True, exist_ok=True)
        (build.path / ".git" / ref).write_text(oid + "\n")
        problem = f"{ref}: history broken at 0123456789ab (a commit git gc --prune=now removed?)"
        hint = "; run `git freq cleanup --repair`"
    else:
        oid = build.git("hash-object", "-w", "README").strip()
        build.git("update-ref", ref, oid)
        problem = f"{ref}: points at a blob, not a commit"
        hint = ""
    for args in (("show", "build", "bad"), ("log", "build", "bad"), ("why", "build", "bad")):
        assert build.run(*args).assert_failure().err == f"git freq: {problem}{hint}\n", args
    warning = f"warning: {problem}{hint}\n"
    assert build.run("status").assert_success().err == warning
    assert build.run("plan").assert_success().out.endswith(warning)
    ignored = f"warning: {problem}; ignored{hint}\n"
    assert build.run("log", "build").assert_success().err == ignored
    assert build.run("log").assert_success().err == ignored
    run = build.run("run", "--until-idle").assert_success()
    assert run.out.splitlines()[-1] == "done: 1 succeeded, 0 failed, 0 recovered, 0 lost races"


TWO = {
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
    ".frequency/c.yaml": """
        factory_id: c
        state: {initial: s, terminal: [d]}
        steps:
          - {id: go, from_states: [s], to_state: d, run: "true"}
        """,
}


def _junk_commit(r: FreqRepo, file: str | None) -> str:
    """A commit whose tree holds `file` with malformed JSON (None: an empty tree)."""
    entries = ""
    if file is not None:
        blob = r.git("hash-object", "-w", "--stdin", input_text='{"bad":').strip()
        entries = f"100644 blob {blob}\t{file}\n"
    tree = r.git("mktree", input_text=entries).strip()
    return r.git("commit-tree", tree, "-m", "hand-made").strip()


MALFORMED = "is malformed (Expecting value: line 1 column 8 (char 7))"


def test_corrupt_dlq_lock_and_control_refs_are_skipped_and_reported(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """One broken DLQ, lock and control ref each: `dlq list` lists the others and warns;
    `run` warns once per ref and runs every other factory and subject; the step needing
    the broken lock, and the factory whose control ref is broken, wait saying how to fix
    it; `locks` lists the lock as unreadable and `locks break` replaces it."""
    r = freq_repo(TWO)
    r.run("add", "a", "x1").assert_success()
    r.run("run", "--until-idle").assert_success()
    r.git("update-ref", "refs/frequency/dlq/zz", _junk_commit(r, "entry.json"))
    r.git("update-ref", "refs/frequency/locks/deploy", _junk_commit(r, "lock.json"))
    r.git("update-ref", "refs/frequency/control/c", _junk_commit(r, None))
    dlq_warning = f"warning: refs/frequency/dlq/zz: entry.json {MALFORMED}\n"
    listed = r.run("dlq", "list").assert_success()
    assert listed.err == dlq_warning
    assert [ln.split()[0] for ln in listed.out.splitlines()] == ["id", "a#1"]

    r.run("add", "a", "x2").assert_success()
    r.run("add", "b", "y").assert_success()
    r.run("add", "c", "z").assert_success()
    lock_problem = f"refs/frequency/locks/deploy: lock.json {MALFORMED}"
    control_problem = "refs/frequency/control/c: commit {} has no control.json"
    ran = r.run("run", "--until-idle").assert_success()
    control_tip = r.git("rev-parse", "refs/frequency/control/c").strip()[:12]
    assert ran.err == (f"warning: {lock_problem}\nwarning: {control_problem.format(control_tip)}\n")
    assert "parked    a/x2: dead-letter entry a#2" in ran.out
    assert r.run("why", "b", "y").assert_success().out == (
        "b/y [s]:\n"
        f"  - lock deploy is unreadable ({lock_problem}); break it with "
        "`git freq locks break deploy --reason ...`\n"
    )
    assert r.run("why", "c", "z").assert_success().out == (
        "c/z [s]:\n"
        f"  - control state of c is unreadable ({control_problem.format(control_tip)}); "
        "nothing starts until `git freq resume c` writes a fresh one\n"
    )

    locks = json.loads(r.run("locks", "--json").assert_success().out)
    assert [(x["name"], x["held"], x["problem"]) for x in locks] == [("deploy", True, lock_problem)]
    assert r.run("locks").out.splitlines()[1].split()[-1] == "unreadable"
    broke = r.run("locks", "break", "deploy", "--reason", "hand-made junk").assert_success()
    assert broke.out == f"broke lock deploy (it was unreadable: {lock_problem})\n"
    locks = json.loads(r.run("locks", "--all", "--json").assert_success().out)
    assert [(x["name"], x["held"], x["problem"]) for x in locks] == [("deploy", False, None)]
    r.run("resume", "c").assert_success()
    again = r.run("run", "--until-idle").assert_success()
    assert again.err == ""
    assert "finished  b/y go #1: s -> d" in again.out
    assert "finished  c/z go #1: s -> d" in again.out
    assert r.git("fsck", "--no-progress", "--no-dangling").strip() == ""
