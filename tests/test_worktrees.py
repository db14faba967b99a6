"""The worktree pool on real repositories: fresh and reused slots, setup skipping,
.worktreeinclude, the max limit, commits of leftovers and salvage, removal, and two
processes racing for slots, all without touching the user's checkout."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from freq.clock import FakeClock
from freq.errors import WorktreeError
from freq.layout import default_pool_dir
from freq.model import Setup, Worktrees
from freq.worktrees import Checkout, Holder, Pool, PoolBusy, SetupFailed

from .conftest import FreqRepo, git

pytestmark = pytest.mark.git


def _holder(subject: str = "app", step: str = "build", attempt: int = 1) -> Holder:
    return Holder(
        factory="f", subject=subject, step=step, attempt=attempt, epoch=1, worker="host:1:1"
    )


def _branch(subject: str = "app", step: str = "build") -> str:
    return f"freq/f/{subject}/{step}"


def _pool(repo: FreqRepo, **settings: object) -> Pool:
    return Pool(repo.path, repo.path / ".git", Worktrees(**settings), clock=FakeClock())  # type: ignore[arg-type]


def _head(repo: FreqRepo) -> str:
    return repo.git("rev-parse", "HEAD").strip()


def _commit(repo: FreqRepo, rel: str, text: str, message: str = "change") -> str:
    repo.write(rel, text)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)
    return _head(repo)


def _user_view(repo: FreqRepo) -> tuple[str, str, str, str]:
    """The main worktree as the user sees it: HEAD, its branch, status, index bytes."""
    index = hashlib.sha256((repo.path / ".git" / "index").read_bytes()).hexdigest()
    return (
        _head(repo),
        repo.git("symbolic-ref", "HEAD").strip(),
        repo.git("status", "--porcelain", "--ignored"),
        index,
    )


def _status(path: Path) -> str:
    return git(path, "status", "--porcelain", "--ignored")


def test_fresh_acquire_makes_the_branch_at_base_and_leaves_the_main_worktree_alone(
    repo: FreqRepo,
) -> None:
    """A first acquire adds a worktree outside the repository (under XDG_STATE_HOME, not
    under .git: Claude Code writes nothing there) on freq/<f>/<s>/<step> at the base
    commit; the user's HEAD, branch, status and index stay exactly as they were, even
    with uncommitted work in the main checkout."""
    base = _head(repo)
    repo.write("README", "user's edit, not committed\n")
    repo.write("scratch.txt", "untracked\n")
    before = _user_view(repo)
    pool = _pool(repo)

    co = pool.acquire(_holder(), base=base, branch=_branch())

    assert co.slot == "w1"
    assert co.fresh and co.setup == "none"
    state = Path(os.environ["HOME"]) / ".local" / "state" / "git-freq" / "worktrees"
    assert co.path.parent.parent == state and co.path.parent.name.startswith("repo-")
    assert co.path.name == "w1" and ".git" not in co.path.parts
    assert pool.dir == co.path.parent
    assert git(co.path, "symbolic-ref", "HEAD").strip() == "refs/heads/freq/f/app/build"
    assert git(co.path, "rev-parse", "HEAD").strip() == base
    assert (co.path / "README").read_text() == "hello\n"
    assert _status(co.path) == ""
    assert _user_view(repo) == before
    record = json.loads((pool.dir / "w1.json").read_text())
    assert record["holder"]["subject"] == "app" and record["branch"] == _branch()
    assert record["created_at"] == record["acquired_at"] == "2026-01-01T00:00:00.000Z"


def test_reuse_resets_tracked_files_keeps_ignored_and_removes_untracked(repo: FreqRepo) -> None:
    """After release, the next acquire gets the same slot (not fresh), its tracked files at
    the new base and on the new branch; ignored files (node_modules) stay, untracked ones
    that are not ignored are gone; the main worktree is untouched throughout."""
    repo.write(".gitignore", "node_modules/\n")
    first = _commit(repo, "src.txt", "one\n")
    pool = _pool(repo)
    co = pool.acquire(_holder("a"), base=first, branch=_branch("a"))
    (co.path / "node_modules").mkdir()
    (co.path / "node_modules" / "x").write_text("dep\n")
    (co.path / "stray.txt").write_text("left behind\n")
    (co.path / "src.txt").write_text("edited\n")
    pool.release(co)
    assert git(co.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"  # detached
    second = _commit(repo, "src.txt", "two\n")
    before = _user_view(repo)

    again = pool.acquire(_holder("b"), base=second, branch=_branch("b"))

    assert again.slot == co.slot and not again.fresh
    assert git(again.path, "symbolic-ref", "HEAD").strip() == "refs/heads/freq/f/b/build"
    assert git(again.path, "rev-parse", "HEAD").strip() == second
    assert (again.path / "src.txt").read_text() == "two\n"
    assert (again.path / "node_modules" / "x").read_text() == "dep\n"
    assert not (again.path / "stray.txt").exists()
    assert _user_view(repo) == before


def test_clean_setup_removes_ignored_files_on_reuse(repo: FreqRepo) -> None:
    """With setup.clean, a reused slot loses its ignored files too."""
    base = _commit(repo, ".gitignore", "node_modules/\n")
    pool = _pool(repo)
    co = pool.acquire(_holder(), base=base, branch=_branch())
    (co.path / "node_modules").mkdir()
    (co.path / "node_modules" / "x").write_text("dep\n")
    pool.release(co)

    again = pool.acquire(_holder(), base=base, branch=_branch(), setup=Setup(clean=True))

    assert again.slot == co.slot and not again.fresh
    assert not (again.path / "node_modules").exists()


def test_setup_runs_once_is_skipped_on_reuse_and_runs_again_after_the_lock_file_changes(
    repo: FreqRepo, tmp_path: Path
) -> None:
    """Setup with when_changed runs in a fresh slot, is skipped on reuse while the matching
    files' blobs are the same (even at another base), and runs again once they change."""
    repo.write(".gitignore", "node_modules/\n")
    base = _commit(repo, "package-lock.json", '{"v": 1}\n')
    count = tmp_path / "count"
    setup = Setup(
        run='echo ran >> "$COUNT" && mkdir -p node_modules && cp package-lock.json node_modules/',
        when_changed=("package-lock.json",),
    )
    env = {"COUNT": str(count)}
    pool = _pool(repo)

    co = pool.acquire(_holder(), base=base, branch=_branch(), setup=setup, env=env)
    assert co.setup == "ran" and count.read_text() == "ran\n"
    pool.release(co)

    other = _commit(repo, "src.txt", "unrelated\n")
    co = pool.acquire(_holder(), base=other, branch=_branch(), setup=setup, env=env)
    assert co.setup == "skipped" and not co.fresh
    assert count.read_text() == "ran\n"
    pool.release(co)

    changed = _commit(repo, "package-lock.json", '{"v": 2}\n')
    co = pool.acquire(_holder(), base=changed, branch=_branch(), setup=setup, env=env)
    assert co.setup == "ran" and not co.fresh
    assert count.read_text() == "ran\nran\n"
    assert (co.path / "node_modules" / "package-lock.json").read_text() == '{"v": 2}\n'


def test_setup_without_when_changed_runs_every_time(repo: FreqRepo, tmp_path: Path) -> None:
    """An empty when_changed means setup runs on every acquire, reuse included."""
    count = tmp_path / "count"
    setup = Setup(run='echo ran >> "$COUNT"')
    pool = _pool(repo)
    base = _head(repo)
    for _ in range(2):
        co = pool.acquire(
            _holder(), base=base, branch=_branch(), setup=setup, env={"COUNT": str(count)}
        )
        assert co.setup == "ran"
        pool.release(co)
    assert count.read_text() == "ran\nran\n"


def test_a_failed_setup_raises_with_its_output_and_gives_the_slot_back(
    repo: FreqRepo, tmp_path: Path
) -> None:
    """A failing setup raises SetupFailed carrying the process result (its output tail);
    the slot is free again and the next acquire runs setup again instead of skipping it."""
    base = _commit(repo, "package-lock.json", "{}\n")
    pool = _pool(repo)
    bad = Setup(run="echo npm ERR! no network; exit 3", when_changed=("package-lock.json",))
    log = tmp_path / "setup.log"

    with pytest.raises(SetupFailed) as caught:
        pool.acquire(_holder(), base=base, branch=_branch(), setup=bad, log_path=log)

    assert caught.value.result.exit_code == 3
    assert b"npm ERR! no network" in caught.value.result.tail
    assert caught.value.one_line() == "worktree w1: setup failed (exit 3): npm ERR! no network"
    assert log.read_bytes() == b"npm ERR! no network\n"
    (info,) = pool.slots()
    assert info.holder is None
    good = Setup(run="true", when_changed=("package-lock.json",))
    co = pool.acquire(_holder(), base=base, branch=_branch(), setup=good)
    assert co.slot == "w1" and co.setup == "ran"


def test_worktreeinclude_copies_untracked_files_into_fresh_slots_only(repo: FreqRepo) -> None:
    """Files of the main checkout matching .worktreeinclude (.env, local config) are copied
    into a fresh slot with their mode; a symlink out of the repository is not followed; a
    reused slot keeps them through `clean` but is not copied into again."""
    repo.write(".gitignore", ".env\nconfig/local.json\nlink.env\n")
    base = _commit(repo, ".worktreeinclude", ".env\nconfig/local.json\nlink.env\n")
    repo.write(".env", "TOKEN=abc\n").chmod(0o600)
    repo.write("config/local.json", "{}\n")
    outside = repo.path.parent / "outside.env"
    outside.write_text("SECRET\n")
    (repo.path / "link.env").symlink_to(outside)
    pool = _pool(repo)

    co = pool.acquire(_holder(), base=base, branch=_branch())

    assert (co.path / ".env").read_text() == "TOKEN=abc\n"
    assert (co.path / ".env").stat().st_mode & 0o777 == 0o600
    assert (co.path / "config" / "local.json").read_text() == "{}\n"
    assert not os.path.lexists(co.path / "link.env")
    pool.release(co)
    cleaned = pool.acquire(_holder(), base=base, branch=_branch(), setup=Setup(clean=True))
    assert cleaned.slot == co.slot and not cleaned.fresh
    assert (cleaned.path / ".env").read_text() == "TOKEN=abc\n"  # kept by git clean -x
    (cleaned.path / ".env").unlink()
    pool.release(cleaned)
    again = pool.acquire(_holder(), base=base, branch=_branch())
    assert again.slot == co.slot and not again.fresh
    assert not (again.path / ".env").exists()


def test_worktreeinclude_copies_only_files_git_ignores(repo: FreqRepo) -> None:
    """A file matching .worktreeinclude that git does not ignore (an untracked
    local.json) is not copied: commit_leftovers' `git add -A` would commit it onto the
    step's branch. The ignored match (.env) is copied as before."""
    repo.write(".gitignore", ".env\n")
    base = _commit(repo, ".worktreeinclude", ".env\nlocal.json\n")
    repo.write(".env", "TOKEN=abc\n")
    repo.write("local.json", "{}\n")
    pool = _pool(repo)

    co = pool.acquire(_holder(), base=base, branch=_branch())

    assert (co.path / ".env").read_text() == "TOKEN=abc\n"
    assert not (co.path / "local.json").exists()
    head = pool.commit_leftovers(co, "leftovers")
    assert head == base
    assert "local.json" not in git(co.path, "ls-tree", "-r", "--name-only", "HEAD")


def test_reuse_removes_untracked_leftovers_matching_worktreeinclude(repo: FreqRepo) -> None:
    """A previous holder's untracked, not-ignored file that happens to match
    .worktreeinclude (notes.txt) is removed on reuse, so it cannot reach the next
    subject's commit; the include patterns only protect ignored files, under clean."""
    base = _commit(repo, ".worktreeinclude", "notes.txt\n")
    pool = _pool(repo)
    co = pool.acquire(_holder("a"), base=base, branch=_branch("a"))
    (co.path / "notes.txt").write_text("subject a's notes\n")
    pool.release(co)

    again = pool.acquire(_holder("b"), base=base, branch=_branch("b"))

    assert again.slot == co.slot and not again.fresh
    assert not (again.path / "notes.txt").exists()
    assert pool.commit_leftovers(again, "leftovers") == base


def test_with_max_one_a_second_acquire_waits_then_raises_pool_busy(repo: FreqRepo) -> None:
    """When every slot is held and the pool is at max, acquire polls every 0.2 s on the
    clock while go_on() is true, and raises PoolBusy once it is false; a released slot is
    then taken at once."""
    clock = FakeClock()
    pool = Pool(repo.path, repo.path / ".git", Worktrees(max=1), clock=clock)
    base = _head(repo)
    held = pool.acquire(_holder("a"), base=base, branch=_branch("a"))
    answers = iter([True, True, True, False])

    with pytest.raises(PoolBusy) as caught:
        pool.acquire(_holder("b"), base=base, branch=_branch("b"), go_on=lambda: next(answers))

    assert caught.value.retryable
    assert clock.monotonic() == pytest.approx(0.6)
    assert [s.slot for s in pool.slots()] == ["w1"]
    pool.release(held)
    co = pool.acquire(_holder("b"), base=base, branch=_branch("b"), go_on=lambda: False)
    assert co.slot == "w1"


def test_keep_branch_continues_an_existing_branch_with_its_commits(repo: FreqRepo) -> None:
    """keep_branch checks out the step's existing branch as it is (its commits kept, not
    reset to base), preferring the slot that last had it over one released later."""
    base = _head(repo)
    pool = _pool(repo)
    co = pool.acquire(_holder(attempt=1), base=base, branch=_branch())
    other = pool.acquire(_holder("other"), base=base, branch=_branch("other"))
    (co.path / "work.txt").write_text("attempt 1\n")
    first = pool.commit_leftovers(co, "attempt 1")
    pool.release(co)
    pool.release(other)
    newer = _commit(repo, "README", "moved on\n")

    again = pool.acquire(_holder(attempt=2), base=newer, branch=_branch(), keep_branch=True)

    assert again.slot == co.slot != other.slot
    assert git(again.path, "rev-parse", "HEAD").strip() == first
    assert (again.path / "work.txt").read_text() == "attempt 1\n"
    pool.release(again)
    pool.remove("w1")
    pool.remove("w2")
    fresh = pool.acquire(_holder(attempt=3), base=newer, branch=_branch(), keep_branch=True)
    assert fresh.fresh and git(fresh.path, "rev-parse", "HEAD").strip() == first


def test_keep_branch_without_the_branch_makes_it_at_base(repo: FreqRepo) -> None:
    """keep_branch for a branch that does not exist yet starts it at base."""
    base = _head(repo)
    co = _pool(repo).acquire(_holder(), base=base, branch=_branch(), keep_branch=True)
    assert git(co.path, "rev-parse", _branch()).strip() == base


def test_commit_leftovers_commits_untracked_and_modified_files(repo: FreqRepo) -> None:
    """Untracked and modified files are committed on the slot's branch without hooks (a
    failing pre-commit hook does not stop it); with nothing left, HEAD is returned as is."""
    base = _head(repo)
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    pool = _pool(repo)
    co = pool.acquire(_holder(), base=base, branch=_branch())
    (co.path / "README").write_text("changed\n")
    (co.path / "new.txt").write_text("new\n")

    oid = pool.commit_leftovers(co, "leftovers of build")

    assert git(co.path, "rev-parse", _branch()).strip() == oid
    assert git(co.path, "rev-parse", f"{oid}^").strip() == base
    assert git(co.path, "log", "-1", "--format=%s", oid).strip() == "leftovers of build"
    assert git(co.path, "show", f"{oid}:new.txt") == "new\n"
    assert git(co.path, "show", f"{oid}:README") == "changed\n"
    assert _status(co.path) == ""
    assert pool.commit_leftovers(co, "nothing") == oid


def test_commits_without_a_git_identity_are_made_by_frequency(
    repo: FreqRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no identity configured, leftovers and salvage commits are by Frequency."""
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var)
    repo.git("config", "user.useConfigOnly", "true")
    pool = _pool(repo)
    co = pool.acquire(_holder(), base=_head(repo), branch=_branch())
    (co.path / "new.txt").write_text("new\n")
    salvaged = pool.salvage_commit(co.slot, "salvage")

    oid = pool.commit_leftovers(co, "leftovers")

    for commit in (oid, salvaged):
        assert git(co.path, "log", "-1", "--format=%an|%cn|%ae", commit or "").strip() == (
            f"Frequency|Frequency|freq@{os.uname().nodename}"
        )


def test_salvage_commit_captures_uncommitted_work_and_leaves_the_slot_as_it_was(
    repo: FreqRepo,
) -> None:
    """salvage_commit returns a commit (child of HEAD) holding the slot's modified, staged,
    deleted and untracked files, while the slot's status, index, HEAD and branch stay the
    same; ignored files are left out; with nothing uncommitted it returns None."""
    repo.write(".gitignore", "*.log\n")
    base = _commit(repo, "gone.txt", "to be deleted\n")
    pool = _pool(repo)
    co = pool.acquire(_holder(), base=base, branch=_branch())
    assert pool.salvage_commit(co.slot, "nothing yet") is None
    (co.path / "README").write_text("modified\n")
    (co.path / "staged.txt").write_text("staged\n")
    git(co.path, "add", "staged.txt")
    (co.path / "untracked.txt").write_text("untracked\n")
    (co.path / "debug.log").write_text("ignored\n")
    (co.path / "gone.txt").unlink()
    index = git(co.path, "rev-parse", "--git-path", "index").strip()
    index_bytes = (co.path / index).read_bytes()
    status = _status(co.path)

    oid = pool.salvage_commit(co.slot, "salvaged: build attempt 1")

    assert oid is not None
    assert git(co.path, "rev-parse", f"{oid}^").strip() == base
    assert git(co.path, "log", "-1", "--format=%s", oid).strip() == "salvaged: build attempt 1"
    files = git(co.path, "ls-tree", "-r", "--name-only", oid).split()
    assert sorted(files) == [".gitignore", "README", "staged.txt", "untracked.txt"]
    assert git(co.path, "show", f"{oid}:README") == "modified\n"
    assert _status(co.path) == status
    assert (co.path / index).read_bytes() == index_bytes
    assert git(co.path, "rev-parse", "HEAD").strip() == base
    assert git(co.path, "rev-parse", _branch()).strip() == base


def test_remove_deletes_the_worktree_and_its_record_and_prune_forgets_vanished_slots(
    repo: FreqRepo,
) -> None:
    """remove() deletes a slot's worktree (git no longer lists it) and record, even with
    changes in it; prune() lets git forget a worktree folder deleted by hand and drops its
    free slot."""
    base = _head(repo)
    pool = _pool(repo)
    a = pool.acquire(_holder("a"), base=base, branch=_branch("a"))
    b = pool.acquire(_holder("b"), base=base, branch=_branch("b"))
    (a.path / "dirty.txt").write_text("x\n")

    pool.remove(a.slot)

    assert not a.path.exists() and not (pool.dir / "w1.json").exists()
    assert str(a.path) not in repo.git("worktree", "list", "--porcelain")
    assert [s.slot for s in pool.slots()] == ["w2"]
    pool.release(b)
    subprocess.run(["rm", "-rf", str(b.path)], check=True)
    assert str(b.path) in repo.git("worktree", "list", "--porcelain")

    pool.prune()

    assert str(b.path) not in repo.git("worktree", "list", "--porcelain")
    assert pool.slots() == []
    pool.remove("w7")  # nothing there: nothing to do
    with pytest.raises(WorktreeError, match="not a worktree slot"):
        pool.remove("../..")


def test_a_slot_whose_folder_vanished_is_made_again(repo: FreqRepo) -> None:
    """A free slot deleted from disk is recreated on reuse (fresh), not a stuck error."""
    base = _head(repo)
    pool = _pool(repo)
    co = pool.acquire(_holder(), base=base, branch=_branch())
    pool.release(co)
    subprocess.run(["rm", "-rf", str(co.path)], check=True)

    again = pool.acquire(_holder(), base=base, branch=_branch())

    assert again.slot == co.slot and again.fresh
    assert git(again.path, "rev-parse", "HEAD").strip() == base


def test_a_git_failure_is_one_line_and_leaves_the_pool_usable(repo: FreqRepo) -> None:
    """A base git cannot find is a WorktreeError naming what failed with git's last line;
    the admin lock is free and no slot is left held, so the next acquire works."""
    pool = _pool(repo)

    with pytest.raises(WorktreeError) as caught:
        pool.acquire(_holder(), base="0" * 40, branch=_branch())

    assert caught.value.code == "worktree"
    assert caught.value.message.startswith("worktree w1: git worktree add failed: fatal: ")
    assert "\n" not in caught.value.message
    assert pool.slots() == []
    co = pool.acquire(_holder(), base=_head(repo), branch=_branch())
    pool.release(co)
    with pytest.raises(WorktreeError, match=r"^worktree w1: git worktree add failed: fatal"):
        pool.acquire(_holder(), base="0" * 40, branch=_branch())  # reset fails, re-add fails
    assert [s.holder for s in pool.slots()] == [None]
    co = pool.acquire(_holder(), base=_head(repo), branch=_branch())
    assert co.slot == "w1" and co.fresh


def test_the_users_checked_out_branch_is_refused(repo: FreqRepo) -> None:
    """A step may not take the branch the main worktree has checked out: resetting it
    would move the user's HEAD."""
    before = _user_view(repo)
    with pytest.raises(WorktreeError, match="branch main is checked out in"):
        _pool(repo).acquire(_holder(), base=_head(repo), branch="main")
    assert _user_view(repo) == before


def test_default_pool_dir_is_the_same_from_a_linked_worktree_of_the_repository(
    repo: FreqRepo,
) -> None:
    """Run from a linked worktree of the user's, the pool is the repository's own (named
    after the folder holding .git), not a second one with its own lock and max."""
    linked = repo.path.parent / "linked"
    repo.git("worktree", "add", "-q", "--detach", os.fspath(linked))
    common = Path(git(linked, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())

    here = default_pool_dir(repo.path / ".git")

    assert default_pool_dir(common) == here
    assert here.name.startswith(f"{repo.path.name}-")
    bare = repo.path.parent / "served.git"
    git(repo.path.parent, "init", "-q", "--bare", os.fspath(bare))
    assert default_pool_dir(bare).name.startswith("served.git-")


def test_a_branch_checked_out_in_a_linked_worktree_of_the_user_is_refused(
    repo: FreqRepo,
) -> None:
    """A freq/* branch the user has checked out in a linked worktree of their own is not
    reset under them (git's --force -B would move it): acquire names that worktree. A
    branch left checked out in a pool slot is no obstacle, and once the user's worktree
    folder is gone (git lists it as prunable), the branch is usable."""
    base = _head(repo)
    mine = repo.path.parent / "mine"
    repo.git("worktree", "add", "-q", "-b", _branch(), os.fspath(mine))
    (mine / "work.txt").write_text("mine\n")
    git(mine, "add", "work.txt")
    git(mine, "commit", "-q", "-m", "user's work")
    tip = git(mine, "rev-parse", "HEAD").strip()
    pool = _pool(repo)
    stale = pool.acquire(_holder("b"), base=base, branch=_branch("b"))  # left held, on b
    pool.release(pool.acquire(_holder("c"), base=base, branch=_branch("c")))  # w2, free

    with pytest.raises(WorktreeError, match=r"^branch freq/f/app/build is checked out in .*mine;"):
        pool.acquire(_holder(), base=base, branch=_branch())  # would reuse w2

    assert repo.git("rev-parse", f"refs/heads/{_branch()}").strip() == tip
    assert git(mine, "status", "--porcelain") == ""
    assert [s.holder for s in pool.slots()] == [_holder("b"), None]
    again = pool.acquire(_holder("b", attempt=2), base=base, branch=_branch("b"))
    assert (stale.slot, again.slot) == ("w1", "w2")  # a slot's branch is not the user's
    pool.release(again)
    shutil.rmtree(mine)
    moved = pool.acquire(_holder(), base=base, branch=_branch())
    assert git(moved.path, "rev-parse", "HEAD").strip() == base


def test_a_merge_check_gets_a_detached_checkout(repo: FreqRepo) -> None:
    """branch=None gives a detached HEAD at base, fresh or reused."""
    base = _head(repo)
    pool = _pool(repo)
    merge = Holder(factory="f", subject="app", step="merge:main", attempt=0, epoch=0, worker="w")
    co = pool.acquire(merge, base=base, branch=None)
    assert co.branch is None
    assert git(co.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"
    pool.release(co)
    newer = _commit(repo, "README", "newer\n")
    again = pool.acquire(merge, base=newer, branch=None)
    assert again.slot == co.slot and git(again.path, "rev-parse", "HEAD").strip() == newer


def test_releasing_a_stale_checkout_changes_nothing(repo: FreqRepo) -> None:
    """Releasing twice, or a Checkout whose slot someone else holds now, leaves the
    current holder in place."""
    base = _head(repo)
    pool = _pool(repo)
    old = pool.acquire(_holder("a"), base=base, branch=_branch("a"))
    pool.release(old)
    pool.release(old)
    new = pool.acquire(_holder("b"), base=base, branch=_branch("b"))
    assert new.slot == old.slot

    pool.release(old)

    (info,) = pool.slots()
    assert info.holder == _holder("b")
    assert git(new.path, "symbolic-ref", "HEAD").strip() == f"refs/heads/{_branch('b')}"


def test_slots_report_holders_times_branches_and_disk_use(repo: FreqRepo) -> None:
    """slots() lists each slot with its holder (None once released, the last branch kept);
    slots(sizes=True) adds a positive disk use, plain slots() leaves it 0 (no walk of
    every file on the run loop's path); disk_usage() covers them all."""
    base = _head(repo)
    clock = FakeClock()
    pool = Pool(repo.path, repo.path / ".git", Worktrees(), clock=clock)
    a = pool.acquire(_holder("a"), base=base, branch=_branch("a"))
    pool.acquire(_holder("b"), base=base, branch=_branch("b"))
    clock.advance(60)
    pool.release(a)

    assert [s.bytes for s in pool.slots()] == [0, 0]
    w1, w2 = pool.slots(sizes=True)

    assert (w1.slot, w1.holder, w1.branch) == ("w1", None, _branch("a"))
    assert w1.released_at is not None and (w1.released_at - clock.now()).total_seconds() == 0
    assert (w2.slot, w2.holder, w2.released_at) == ("w2", _holder("b"), None)
    assert w2.acquired_at is not None and w1.bytes > 0 and w2.bytes > 0
    assert pool.disk_usage() >= w1.bytes + w2.bytes


def test_a_pool_inside_the_checkout_stays_out_of_the_users_status(repo: FreqRepo) -> None:
    """worktrees.dir relative to the repository puts the pool there, hidden from the main
    worktree's `git status`."""
    before = _user_view(repo)
    pool = _pool(repo, dir=".worktrees")
    co = pool.acquire(_holder(), base=_head(repo), branch=_branch())
    assert co.path == repo.path / ".worktrees" / "w1"
    assert repo.git("status", "--porcelain") == ""
    assert _user_view(repo)[:2] == before[:2]


_ACQUIRE = """
import sys
from pathlib import Path
from freq.clock import SystemClock
from freq.model import Worktrees
from freq.worktrees import Holder, Pool
root = Path(sys.argv[1])
pool = Pool(root, root / ".git", Worktrees(max=16), clock=SystemClock())
name = sys.argv[2]
holder = Holder(factory="f", subject=name, step="s", attempt=1, epoch=1, worker=name)
print(pool.acquire(holder, base=sys.argv[3], branch=f"freq/f/{name}/s").slot)
"""


def test_processes_acquiring_at_once_never_get_the_same_slot(repo: FreqRepo) -> None:
    """Eight processes acquiring together (three free slots to reuse, the rest made new)
    each get a slot of their own, and every record names its own holder."""
    base = _head(repo)
    pool = _pool(repo)
    warm: list[Checkout] = [
        pool.acquire(_holder(f"warm{i}"), base=base, branch=_branch(f"warm{i}")) for i in range(3)
    ]
    for co in warm:
        pool.release(co)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ACQUIRE, str(repo.path), f"p{i}", base],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = [p.communicate(timeout=120) for p in procs]

    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    slots = [out.strip() for out, _ in results]
    assert len(set(slots)) == 8
    assert {"w1", "w2", "w3"} <= set(slots)
    holders = {s.slot: s.holder.subject for s in pool.slots() if s.holder}
    assert sorted(holders.values()) == [f"p{i}" for i in range(8)]
    for out, _ in results:
        slot = out.strip()
        assert git(pool.dir / slot, "symbolic-ref", "HEAD").strip() == (
            f"refs/heads/freq/f/{holders[slot]}/s"
        )
