"""Broken state on disk and in refs: one-line errors or warnings, never an internal error."""

from __future__ import annotations

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
        problem = f"{ref}: points at 0123456789ab, which is not in this repository"
    else:
        oid = build.git("hash-object", "-w", "README").strip()
        build.git("update-ref", ref, oid)
        problem = f"{ref}: points at a blob, not a commit"
    for args in (("show", "build", "bad"), ("log", "build", "bad"), ("why", "build", "bad")):
        assert build.run(*args).assert_failure().err == f"git freq: {problem}\n", args
    warning = f"warning: {problem}\n"
    assert build.run("status").assert_success().err == warning
    assert build.run("plan").assert_success().out.endswith(warning)
    assert build.run("log", "build").assert_success().err == f"warning: {problem}; ignored\n"
    assert build.run("log").assert_success().err == f"warning: {problem}; ignored\n"
    run = build.run("run", "--until-idle").assert_success()
    assert run.out.splitlines()[-1] == "done: 1 succeeded, 0 failed, 0 recovered, 0 lost races"
