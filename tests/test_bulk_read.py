"""A cold snapshot reads subject.json files by one `git cat-file --batch` (freq.proc.cat_files
through the Store's `bulk`): the same state as object by object, problems still said."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from freq import proc
from freq.clock import SystemClock
from freq.ops.app import App
from freq.store import Store
from freq.store.snapshot import BULK_MIN

from .conftest import FreqRepo, one_step

pytestmark = [pytest.mark.git]


def _cold(r: FreqRepo) -> None:
    shutil.rmtree(r.path / ".git" / "frequency" / "cache", ignore_errors=True)


def test_cat_files_reads_blobs_and_leaves_out_what_is_not_one(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": one_step('"true"')})
    r.run("add", "f", "a").assert_success()
    tip = r.git("rev-parse", "refs/frequency/subjects/f/a").strip()
    got = proc.cat_files(r.path, [f"{tip}:subject.json", f"{tip}:nothing", tip, "f" * 40])
    assert list(got) == [f"{tip}:subject.json"]  # a commit, a missing path, a missing id: out
    assert got[f"{tip}:subject.json"] == r.git("show", f"{tip}:subject.json").encode()
    assert proc.cat_files(r.path, []) == {}


def test_a_cold_read_in_bulk_is_the_state_read_object_by_object(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": one_step('"true"')})
    names = [f"s{i:03d}" for i in range(BULK_MIN + 10)]
    r.run("add", "f", *names, "--data", "k=v").assert_success()
    r.run("run", "--until-idle").assert_success()
    _cold(r)
    plain = Store.discover(r.path, clock=SystemClock())
    try:
        expected = plain.snapshot()
    finally:
        plain.close()
    _cold(r)
    app = App(r.path)
    asked: list[int] = []
    bulk = app.store.bulk
    assert bulk is not None
    app.store.bulk = lambda specs: (asked.append(len(specs)), bulk(specs))[1]
    try:
        snap = app.store.snapshot()
        again = app.store.snapshot()  # warm: nothing asked in bulk
    finally:
        app.store.close()
    assert asked == [len(names)]
    assert snap.subjects == expected.subjects and snap.tips == expected.tips
    assert again.subjects == snap.subjects


def test_a_subject_git_cannot_read_is_still_a_problem_of_a_bulk_read(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": one_step('"true"')})
    names = [f"s{i:03d}" for i in range(BULK_MIN + 1)]
    r.run("add", "f", *names).assert_success()
    tree = r.git("mktree", input_text="").strip()
    empty = r.git("commit-tree", tree, "-m", "not a subject").strip()
    r.git("update-ref", "refs/frequency/subjects/f/s000", empty)  # no subject.json in it
    subprocess.run(["git", "gc", "-q"], cwd=r.path, check=True)
    _cold(r)
    app = App(r.path)
    try:
        snap = app.store.snapshot()
    finally:
        app.store.close()
    assert ("f", "s000") not in snap.subjects and len(snap.subjects) == len(names) - 1
    assert any("refs/frequency/subjects/f/s000" in p for p in snap.problems)
