"""Combining branches onto a target with no worktree, on real git repositories: rebase
(compared with a real `git rebase`), merge, squash, conflicts, the CAS branch move, and
the checkout helpers (dirty, update_checkout, worktrees, default branch)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from freq import merges
from freq.clock import FakeClock
from freq.errors import GitLockHeld, MergeError
from freq.merges import Combined, Conflict
from freq.model import MergeStrategy

from .conftest import FreqRepo, git, new_repo

REBASE, MERGE, SQUASH = MergeStrategy.REBASE, MergeStrategy.MERGE, MergeStrategy.SQUASH
LINES = "".join(f"line {i}\n" for i in range(1, 11))


def _commit(
    repo: Path,
    files: dict[str, str | None],
    message: str,
    *,
    author: str | None = None,
    date: str | None = None,
) -> str:
    """Write (None: delete) `files` in the checkout, commit them on HEAD, return the id."""
    for rel, text in files.items():
        p = repo / rel
        if text is None:
            git(repo, "rm", "-q", rel)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        git(repo, "add", rel)
    extra = [f"--author={author}"] if author else []
    extra += [f"--date={date}"] if date else []
    git(repo, "commit", "-q", "--cleanup=verbatim", "-m", message, *extra)
    return _rev(repo, "HEAD")


def _rev(repo: Path, name: str) -> str:
    return git(repo, "rev-parse", name).strip()


def _edit(text: str, line: int, new: str) -> str:
    rows = text.splitlines(keepends=True)
    rows[line - 1] = new + "\n"
    return "".join(rows)


def _objects(repo: Path) -> set[str]:
    out = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(out.split())


def _landed(result: Combined | Conflict) -> Combined:
    assert isinstance(result, Combined), result
    return result


@pytest.fixture
def base_repo(repo: FreqRepo) -> Path:
    """main with a ten-line file `a` and a file `b`; the checkout is back on main."""
    _commit(repo.path, {"a": LINES, "b": "bee\n"}, "base files")
    return repo.path


def _branch(repo: Path, name: str, start: str = "main") -> None:
    git(repo, "checkout", "-q", "-b", name, start)


def _three_commit_branch(repo: Path) -> list[str]:
    """Branch `topic` from main with three commits by two authors, then main moves."""
    _branch(repo, "topic")
    shas = [
        _commit(
            repo,
            {"a": _edit(LINES, 2, "two by alice")},
            "Alice edits line 2\n\nWith a body\nof two lines.\n",
            author="Alice <alice@example.com>",
            date="2025-03-04T05:06:07+0200",
        ),
        _commit(
            repo,
            {"c": "new file\n"},
            "Bob adds c",
            author="Bob <bob@example.com>",
            date="2025-03-05T01:02:03-0700",
        ),
        _commit(
            repo,
            {"a": _edit(_edit(LINES, 2, "two by alice"), 9, "nine by alice")},
            "Alice edits line 9\n\nSigned-off-by: Alice <alice@example.com>\n",
            author="Alice <alice@example.com>",
            date="2025-03-06T00:00:00+0000",
        ),
    ]
    git(repo, "checkout", "-q", "main")
    _commit(repo, {"a": _edit(LINES, 5, "five on main"), "b": "bee two\n"}, "main moves")
    return shas


def _real_rebase(repo: Path, tmp: Path, branch: str, onto: str = "main") -> list[str]:
    """What `git rebase` makes of `branch` onto `onto` in a scratch clone: its commits."""
    clone = tmp / "scratch"
    git(tmp, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", "-b", branch, f"origin/{branch}")
    git(clone, "rebase", "-q", f"origin/{onto}")
    return git(clone, "rev-list", "--reverse", f"origin/{onto}..HEAD").split()


def test_rebase_replays_each_commit_as_git_rebase_does(base_repo: Path, tmp_path: Path) -> None:
    """A three-commit branch replayed onto a moved main gives the same commits a real
    `git rebase` gives (same trees, authors, dates and messages: the same ids)."""
    originals = _three_commit_branch(base_repo)
    onto = _rev(base_repo, "main")
    got = _landed(
        merges.combine(base_repo, onto=onto, branch_tip="topic", strategy=REBASE, message="x")
    )
    assert got.strategy is REBASE
    assert len(got.commits) == 3 and got.commit == got.commits[-1]
    expected = _real_rebase(base_repo, tmp_path, "topic")
    assert list(got.commits) == expected
    fmt = "--format=%an|%ae|%ad|%cn|%B"
    for new, old in zip(got.commits, originals, strict=True):
        mine = git(base_repo, "log", "-1", "--date=raw", fmt, new)
        theirs = git(base_repo, "log", "-1", "--date=raw", fmt, old)
        assert mine.split("|", 3)[:3] == theirs.split("|", 3)[:3]
        assert mine.split("|", 4)[4] == theirs.split("|", 4)[4]
        assert mine.split("|")[3] == "Test Committer"
    assert git(base_repo, "rev-list", "--parents", "-n1", got.commits[0]).split()[1:] == [onto]
    git(base_repo, "fsck", "--no-progress", "--no-dangling")


def test_rebase_replays_a_later_partial_revert_against_its_own_parent(
    base_repo: Path, tmp_path: Path
) -> None:
    """A commit that reverts part of an earlier one is merged with that earlier commit as
    its base: the reverted line is gone (a merge from the branch's base would keep it)."""
    _branch(base_repo, "topic")
    both = _edit(_edit(LINES, 2, "two changed"), 8, "eight changed")
    _commit(base_repo, {"a": both}, "change lines 2 and 8")
    _commit(base_repo, {"a": _edit(both, 8, "line 8")}, "put line 8 back")
    git(base_repo, "checkout", "-q", "main")
    _commit(base_repo, {"a": _edit(LINES, 5, "five on main")}, "main moves")
    got = _landed(
        merges.combine(base_repo, onto="main", branch_tip="topic", strategy=REBASE, message="x")
    )
    text = git(base_repo, "show", f"{got.commit}:a")
    assert text == _edit(_edit(LINES, 2, "two changed"), 5, "five on main")
    assert list(got.commits) == _real_rebase(base_repo, tmp_path, "topic")


def test_fast_forward_writes_no_object(base_repo: Path) -> None:
    """A branch directly ahead of its target lands as the branch tip itself."""
    _branch(base_repo, "topic")
    shas = [_commit(base_repo, {"c": f"c{i}\n"}, f"c {i}") for i in range(2)]
    git(base_repo, "checkout", "-q", "main")
    before = _objects(base_repo)
    got = merges.combine(base_repo, onto="main", branch_tip="topic", strategy=REBASE, message="x")
    assert got == Combined(commit=shas[-1], commits=tuple(shas), strategy=REBASE)
    assert _objects(base_repo) == before


@pytest.mark.parametrize("strategy", [REBASE, MERGE, SQUASH])
def test_branch_already_in_target_lands_nothing(base_repo: Path, strategy: MergeStrategy) -> None:
    """A branch whose tip the target already contains adds no commit, by any strategy."""
    _branch(base_repo, "topic")
    _commit(base_repo, {"c": "c\n"}, "c")
    git(base_repo, "checkout", "-q", "main")
    git(base_repo, "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
    onto = _rev(base_repo, "main")
    before = _objects(base_repo)
    got = merges.combine(base_repo, onto=onto, branch_tip="topic", strategy=strategy, message="x")
    assert got == Combined(commit=onto, commits=(), strategy=strategy)
    same = merges.combine(base_repo, onto="main", branch_tip=onto, strategy=strategy, message="")
    assert same == Combined(commit=onto, commits=(), strategy=strategy)
    assert _objects(base_repo) == before


def test_merge_commit_has_both_parents_and_the_merged_tree(base_repo: Path, tmp_path: Path) -> None:
    """MERGE writes one merge commit (parents onto, tip) whose tree is `git merge`'s."""
    shas = _three_commit_branch(base_repo)
    onto = _rev(base_repo, "main")
    got = _landed(
        merges.combine(base_repo, onto=onto, branch_tip="topic", strategy=MERGE, message="land it")
    )
    assert got.strategy is MERGE
    assert got.commits == (*shas, got.commit)
    parents = git(base_repo, "rev-list", "--parents", "-n1", got.commit).split()[1:]
    assert parents == [onto, shas[-1]]
    assert git(base_repo, "log", "-1", "--format=%B", got.commit) == "land it\n\n"
    clone = tmp_path / "scratch"
    git(tmp_path, "clone", "-q", str(base_repo), str(clone))
    git(clone, "merge", "-q", "--no-ff", "-m", "m", "origin/topic")
    assert _rev(base_repo, f"{got.commit}^{{tree}}") == _rev(clone, "HEAD^{tree}")


def test_squash_is_one_commit_on_the_target(base_repo: Path) -> None:
    """SQUASH writes one commit on onto with the merged tree and the configured author."""
    _three_commit_branch(base_repo)
    onto = _rev(base_repo, "main")
    got = _landed(
        merges.combine(base_repo, onto=onto, branch_tip="topic", strategy=SQUASH, message="sq")
    )
    assert got.commits == (got.commit,)
    assert git(base_repo, "rev-list", "--parents", "-n1", got.commit).split()[1:] == [onto]
    merged = git(base_repo, "merge-tree", "--write-tree", onto, "topic").split()[0]
    assert _rev(base_repo, f"{got.commit}^{{tree}}") == merged
    assert git(base_repo, "log", "-1", "--format=%an|%s", got.commit) == "Test Author|sq\n"


def test_squash_of_changes_already_there_lands_nothing(base_repo: Path) -> None:
    """A squash whose tree is the target's adds no empty commit."""
    _branch(base_repo, "topic")
    _commit(base_repo, {"c": "same\n"}, "c on topic")
    git(base_repo, "checkout", "-q", "main")
    onto = _commit(base_repo, {"c": "same\n"}, "c on main")
    got = merges.combine(base_repo, onto=onto, branch_tip="topic", strategy=SQUASH, message="s")
    assert got == Combined(commit=onto, commits=(), strategy=SQUASH)


def test_rebase_skips_a_commit_the_target_already_has(base_repo: Path) -> None:
    """A replay that changes nothing (the target has that change) is left out."""
    _branch(base_repo, "topic")
    _commit(base_repo, {"c": "same\n"}, "c on topic")
    _commit(base_repo, {"d": "d\n"}, "d on topic")
    git(base_repo, "checkout", "-q", "main")
    onto = _commit(base_repo, {"c": "same\n", "b": "main's b\n"}, "c on main")
    got = _landed(
        merges.combine(base_repo, onto="main", branch_tip="topic", strategy=REBASE, message="x")
    )
    assert len(got.commits) == 1
    assert git(base_repo, "log", "-1", "--format=%s|%P", got.commit) == f"d on topic|{onto}\n"
    assert git(base_repo, "show", f"{got.commit}:d") == "d\n"
    assert git(base_repo, "show", f"{got.commit}:b") == "main's b\n"


def _two_editors(repo: Path) -> tuple[str, str]:
    """Branches one and two from main both rewrite line 3 of `a`; one has landed on main.
    Returns (main before, main after)."""
    for name, text in (("one", "three by one"), ("two", "three by two")):
        _branch(repo, name, "main")
        _commit(repo, {"a": _edit(LINES, 3, text)}, f"{name} edits line 3")
    git(repo, "checkout", "-q", "main")
    before = _rev(repo, "main")
    got = _landed(merges.combine(repo, onto=before, branch_tip="one", strategy=REBASE, message=""))
    assert merges.move_branch(repo, "main", got.commit, before, message="land one")
    git(repo, "reset", "-q", "--hard")  # the test's own checkout follows main
    return before, got.commit


@pytest.mark.parametrize("strategy", [REBASE, MERGE, SQUASH])
def test_two_branches_editing_one_line_conflict(base_repo: Path, strategy: MergeStrategy) -> None:
    """The second branch to rewrite a line the first rewrote conflicts on that file, and
    mergeable() says the same without writing a commit."""
    before, after = _two_editors(base_repo)
    got = merges.combine(base_repo, onto=after, branch_tip="two", strategy=strategy, message="m")
    assert isinstance(got, Conflict)
    assert got.paths == ("a",)
    assert "CONFLICT (content): Merge conflict in a" in got.detail
    assert "Auto-merging" not in got.detail
    assert got.commit == (_rev(base_repo, "two") if strategy is REBASE else None)
    assert merges.mergeable(base_repo, after, "two") == Conflict(paths=("a",), detail=got.detail)
    assert merges.mergeable(base_repo, before, "two") is None


def test_conflict_detail_is_capped(base_repo: Path) -> None:
    """Many conflicting files give every path but at most DETAIL_LINES lines of detail."""
    names = [f"f{i:02}" for i in range(50)]
    _commit(base_repo, dict.fromkeys(names, "base\n"), "fifty files")
    _branch(base_repo, "topic")
    _commit(base_repo, dict.fromkeys(names, "topic\n"), "topic edits")
    git(base_repo, "checkout", "-q", "main")
    _commit(base_repo, dict.fromkeys(names, "main\n"), "main edits")
    got = merges.combine(base_repo, onto="main", branch_tip="topic", strategy=MERGE, message="m")
    assert isinstance(got, Conflict)
    assert got.paths == tuple(names)
    lines = got.detail.splitlines()
    assert len(lines) == merges.DETAIL_LINES
    assert lines[-1] == "... and 11 more lines"


def test_rebase_of_a_branch_with_a_merge_commit_merges(base_repo: Path) -> None:
    """A branch holding a merge commit is landed as a merge, and says so."""
    _branch(base_repo, "topic")
    _commit(base_repo, {"c": "c\n"}, "c")
    _branch(base_repo, "side", "main")
    _commit(base_repo, {"d": "d\n"}, "d")
    git(base_repo, "checkout", "-q", "topic")
    git(base_repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    tip = _rev(base_repo, "topic")
    git(base_repo, "checkout", "-q", "main")
    onto = _commit(base_repo, {"b": "moved\n"}, "main moves")
    got = _landed(
        merges.combine(base_repo, onto=onto, branch_tip=tip, strategy=REBASE, message="merge it")
    )
    assert got.strategy is MERGE
    assert git(base_repo, "rev-list", "--parents", "-n1", got.commit).split()[1:] == [onto, tip]
    assert len(got.commits) == 4 and got.commits[-1] == got.commit
    assert git(base_repo, "ls-tree", "--name-only", got.commit).split() == ["README", *"abcd"]


def test_a_given_base_replays_only_what_follows_it(base_repo: Path) -> None:
    """A branch stacked on a branch that was squash-landed (and then edited on main)
    combines cleanly when given the lower branch's tip as base; from the merge base it
    would replay the lower branch again and conflict."""
    _branch(base_repo, "lower")
    lower = _commit(base_repo, {"a": _edit(LINES, 2, "two by lower")}, "lower")
    _branch(base_repo, "upper", "lower")
    _commit(base_repo, {"a": _edit(_edit(LINES, 2, "two by lower"), 7, "seven")}, "upper")
    git(base_repo, "checkout", "-q", "main")
    squashed = _landed(
        merges.combine(base_repo, onto="main", branch_tip="lower", strategy=SQUASH, message="sq")
    )
    git(base_repo, "reset", "-q", "--hard", squashed.commit)
    onto = _commit(base_repo, {"a": _edit(LINES, 2, "two final")}, "main edits line 2")
    for strategy in (REBASE, SQUASH, MERGE):
        plain = merges.combine(
            base_repo, onto=onto, branch_tip="upper", strategy=strategy, message="s"
        )
        assert isinstance(plain, Conflict) and plain.paths == ("a",)
        got = _landed(
            merges.combine(
                base_repo, onto=onto, branch_tip="upper", strategy=strategy, message="s", base=lower
            )
        )
        assert got.strategy is strategy
        expected = _edit(_edit(LINES, 2, "two final"), 7, "seven")
        assert git(base_repo, "show", f"{got.commit}:a") == expected
        assert git(base_repo, "rev-parse", f"{got.commit}^1").strip() == onto


def _checkout_state(repo: Path) -> tuple[str, str, str, str]:
    index = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    return (
        git(repo, "symbolic-ref", "HEAD"),
        _rev(repo, "HEAD"),
        index,
        git(repo, "status", "--porcelain", "--untracked-files=all"),
    )


def test_nothing_touches_head_index_or_worktree(base_repo: Path) -> None:
    """Every strategy, a conflict and mergeable() leave HEAD, the index and the status of
    the main worktree exactly as they were (a local edit and an untracked file too)."""
    _three_commit_branch(base_repo)
    _branch(base_repo, "clash", "main~1")
    _commit(base_repo, {"a": _edit(LINES, 5, "five on clash")}, "clash")
    git(base_repo, "checkout", "-q", "main")
    git(base_repo, "update-index", "-q", "--refresh")
    (base_repo / "b").write_text("local edit\n")
    (base_repo / "untracked").write_text("u\n")
    before = _checkout_state(base_repo)
    for strategy in (REBASE, MERGE, SQUASH):
        landed = merges.combine(
            base_repo, onto="main", branch_tip="topic", strategy=strategy, message=""
        )
        assert isinstance(landed, Combined)
        clash = merges.combine(
            base_repo, onto="main", branch_tip="clash", strategy=strategy, message=""
        )
        assert isinstance(clash, Conflict)
    assert merges.mergeable(base_repo, "main", "clash") is not None
    assert _checkout_state(base_repo) == before
    assert (base_repo / "b").read_text() == "local edit\n"


def test_combine_without_an_identity_commits_as_frequency(
    base_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no identity git can use, merge and rebase commits are by Frequency
    (the replayed author is kept); a caller's env goes on top."""
    _three_commit_branch(base_repo)
    for var in ("NAME", "EMAIL"):
        monkeypatch.delenv(f"GIT_AUTHOR_{var}")
        monkeypatch.delenv(f"GIT_COMMITTER_{var}")
    git(base_repo, "config", "user.useConfigOnly", "true")
    assert not git(base_repo, "var", "GIT_COMMITTER_IDENT", check=False)
    host = os.uname().nodename
    got = _landed(
        merges.combine(base_repo, onto="main", branch_tip="topic", strategy=SQUASH, message="s")
    )
    who = git(base_repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", got.commit)
    assert who == f"Frequency <freq@{host}>|Frequency <freq@{host}>\n"
    got = _landed(
        merges.combine(base_repo, onto="main", branch_tip="topic", strategy=REBASE, message="")
    )
    who = git(base_repo, "log", "-1", "--format=%an|%cn <%ce>", got.commit)
    assert who == f"Alice|Frequency <freq@{host}>\n"
    got = _landed(
        merges.combine(
            base_repo,
            onto="main",
            branch_tip="topic",
            strategy=MERGE,
            message="m",
            env={"GIT_AUTHOR_NAME": "Caller", "GIT_AUTHOR_EMAIL": "caller@example.com"},
        )
    )
    who = git(base_repo, "log", "-1", "--format=%an|%cn", got.commit)
    assert who == "Caller|Frequency\n"


def test_unrelated_histories_are_a_merge_error(base_repo: Path) -> None:
    """A branch with no history in common with the target is an error, not a conflict."""
    git(base_repo, "checkout", "-q", "--orphan", "alone")
    _commit(base_repo, {"z": "z\n"}, "alone")
    with pytest.raises(MergeError, match="unrelated histories"):
        merges.combine(base_repo, onto="main", branch_tip="alone", strategy=MERGE, message="m")
    with pytest.raises(MergeError, match="cannot read nope"):
        merges.combine(base_repo, onto="main", branch_tip="nope", strategy=MERGE, message="m")


def test_rev_and_is_ancestor(base_repo: Path) -> None:
    """rev() names a commit or None; is_ancestor() follows history and refuses nonsense."""
    first = _rev(base_repo, "main~1")
    assert merges.rev(base_repo, "main~1") == first
    assert merges.rev(base_repo, "main^{tree}") is None
    assert merges.rev(base_repo, "nope") is None
    assert merges.is_ancestor(base_repo, first, "main")
    assert not merges.is_ancestor(base_repo, "main", first)
    with pytest.raises(MergeError):
        merges.is_ancestor(base_repo, "nope", "main")


def test_move_branch_is_a_compare_and_swap(base_repo: Path) -> None:
    """The branch moves only from the value read; a lost race returns False and changes
    nothing; creating needs the branch absent; the reflog says why."""
    old, new = _rev(base_repo, "main~1"), _rev(base_repo, "main")
    assert merges.move_branch(base_repo, "b", old, None, message="create b")
    assert not merges.move_branch(base_repo, "b", new, None, message="again")
    assert merges.move_branch(base_repo, "b", new, old, message="freq: land topic")
    assert not merges.move_branch(base_repo, "b", old, old, message="stale")
    assert _rev(base_repo, "b") == new
    assert git(base_repo, "reflog", "-1", "--format=%gs", "refs/heads/b") == "freq: land topic\n"
    assert not merges.move_branch(base_repo, "gone", new, old, message="x")
    with pytest.raises(MergeError, match="cannot move branch b"):
        merges.move_branch(base_repo, "b", "not-a-commit", new, message="x")


def test_move_branch_waits_for_a_held_lock_then_raises(base_repo: Path) -> None:
    """A branch lock another git holds is retried for the wait, then GitLockHeld."""
    old = _rev(base_repo, "main")
    lock = base_repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    clock = FakeClock()
    with pytest.raises(GitLockHeld, match=r"branch main is locked by another git process"):
        merges.move_branch(base_repo, "main", old, old, message="x", clock=clock, wait=0.5)
    assert clock.monotonic() >= 0.5
    lock.unlink()
    assert merges.move_branch(base_repo, "main", old, old, message="x", clock=clock)


def test_dirty_reports_staged_and_unstaged_changes_only(repo: FreqRepo, tmp_path: Path) -> None:
    """Staged changes and edits to tracked files make a checkout dirty; untracked files,
    a touched file and an unborn HEAD do not."""
    path = repo.path
    _commit(path, {"a": "a\n", "b": "b\n", "c": "c\n"}, "three")
    assert merges.dirty(path) is None
    (path / "new").write_text("untracked\n")
    os.utime(path / "a", (0, 0))  # stat changed, content not
    assert merges.dirty(path) is None
    for name in ("a", "b", "c"):
        (path / name).write_text("edited\n")
    assert merges.dirty(path) == "the working tree has uncommitted changes in a, b (and 1 more)"
    git(path, "add", "a")
    assert merges.dirty(path) == "the index has staged changes"
    unborn = tmp_path / "unborn"
    git(tmp_path, "init", "-q", "-b", "main", str(unborn))
    (unborn / "x").write_text("x\n")
    git(unborn, "add", "x")
    assert merges.dirty(unborn) is None


def test_dirty_never_writes_the_users_index(repo: FreqRepo) -> None:
    """Looking at the user's checkout leaves .git/index byte for byte as it was, even when
    a touched tracked file would make a refreshing git rewrite its stat cache."""
    path = repo.path
    _commit(path, {"a": "a\n"}, "one")
    os.utime(path / "a", (0, 0))  # stat changed, content not: a refresh would rewrite it
    index = (path / ".git" / "index").read_bytes()

    assert merges.dirty(path) is None

    assert (path / ".git" / "index").read_bytes() == index
    (path / "a").write_text("edited\n")
    assert merges.dirty(path) == "the working tree has uncommitted changes in a"
    assert (path / ".git" / "index").read_bytes() == index


def test_update_checkout_follows_the_branch_or_refuses(base_repo: Path) -> None:
    """The checked-out branch's files and index follow a landing; an untracked file the
    new commit would overwrite stops it with one line and changes nothing."""
    _branch(base_repo, "topic")
    _commit(base_repo, {"a": _edit(LINES, 1, "one"), "c": "c\n"}, "topic")
    git(base_repo, "checkout", "-q", "main")
    old = _rev(base_repo, "main")
    new = _landed(
        merges.combine(base_repo, onto=old, branch_tip="topic", strategy=SQUASH, message="s")
    ).commit
    (base_repo / "c").write_text("mine\n")
    index = (base_repo / ".git" / "index").read_bytes()
    why = merges.update_checkout(base_repo, old, new)
    assert why == "Untracked working tree file 'c' would be overwritten by merge."
    assert (base_repo / "c").read_text() == "mine\n"
    assert (base_repo / ".git" / "index").read_bytes() == index
    assert (base_repo / "a").read_text() == LINES
    (base_repo / "c").unlink()
    assert merges.update_checkout(base_repo, old, new) is None
    assert merges.move_branch(base_repo, "main", new, old, message="land")
    assert git(base_repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (base_repo / "a").read_text() == _edit(LINES, 1, "one")
    assert (base_repo / "c").read_text() == "c\n"


def test_worktrees_on_and_main_worktree(base_repo: Path, tmp_path: Path) -> None:
    """A linked worktree on a branch is found by the branch; the main worktree is found
    from inside the linked one; a bare repository has none."""
    linked = tmp_path / "linked"
    git(base_repo, "worktree", "add", "-q", "-b", "topic", str(linked))
    assert merges.worktrees_on(base_repo, "topic") == [linked]
    assert merges.worktrees_on(linked, "main") == [base_repo]
    assert merges.worktrees_on(base_repo, "other") == []
    assert merges.main_worktree(linked) == base_repo
    gone = tmp_path / "gone"
    git(base_repo, "worktree", "add", "-q", "-b", "left", str(gone))
    shutil.rmtree(gone)  # git lists it as prunable: no checkout to follow
    assert merges.worktrees_on(base_repo, "left") == []
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(base_repo), str(bare))
    assert merges.main_worktree(bare) is None
    assert merges.worktrees_on(bare, "main") == []


def test_default_branch_in_each_case(tmp_path: Path) -> None:
    """The remote's HEAD wins, then init.defaultBranch if it exists, then main, then
    master, then the main worktree's branch, then main."""
    upstream = new_repo(tmp_path / "upstream").path
    git(upstream, "branch", "-m", "main", "trunk")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    git(clone, "branch", "-q", "main")
    assert merges.default_branch(clone) == "trunk"
    git(upstream, "remote", "add", "up", str(clone))
    assert merges.default_branch(upstream, "up") == "trunk"  # up/HEAD is not known yet
    git(upstream, "fetch", "-q", "up")
    git(upstream, "remote", "set-head", "up", "main")
    assert merges.default_branch(upstream, "up") == "main"

    local = new_repo(tmp_path / "local").path  # on main
    git(local, "branch", "-q", "master")
    git(local, "branch", "-q", "dev")
    assert merges.default_branch(local) == "main"
    git(local, "config", "init.defaultBranch", "dev")
    assert merges.default_branch(local) == "dev"
    git(local, "config", "init.defaultBranch", "absent")
    assert merges.default_branch(local) == "main"
    git(local, "checkout", "-q", "dev")
    git(local, "branch", "-q", "-D", "main")
    assert merges.default_branch(local) == "master"
    git(local, "branch", "-q", "-D", "master")
    assert merges.default_branch(local) == "dev"
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", "-b", "work", str(empty))
    assert merges.default_branch(empty) == "work"
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "work", str(bare))
    assert merges.default_branch(bare) == "main"


def test_grown_skips_the_throwaway_commit_and_gives_the_same_result(base_repo: Path) -> None:
    """A caller that knows the target grew from the branch's base (`grown`) gets the same
    commits as without: the base is the merge base already (and the same conflict)."""
    git(base_repo, "checkout", "-q", "-b", "topic")
    base = _rev(base_repo, "main")
    _commit(base_repo, {"a": _edit(LINES, 7, "seven")}, "topic edits seven")
    _commit(base_repo, {"a": _edit(LINES, 8, "eight")}, "topic edits eight")
    git(base_repo, "checkout", "-q", "main")
    onto = _commit(base_repo, {"a": _edit(LINES, 2, "two")}, "main edits two")
    plain = _landed(
        merges.combine(
            base_repo, onto=onto, branch_tip="topic", strategy=REBASE, message="m", base=base
        )
    )
    grown = _landed(
        merges.combine(
            base_repo,
            onto=onto,
            branch_tip="topic",
            strategy=REBASE,
            message="m",
            base=base,
            grown=True,
        )
    )
    assert grown.commit == plain.commit  # same trees, authors, dates, messages: same ids
    clash = _commit(base_repo, {"a": _edit(_edit(LINES, 2, "two"), 7, "SEVEN")}, "main edits seven")
    got = merges.combine(
        base_repo,
        onto=clash,
        branch_tip="topic",
        strategy=REBASE,
        message="m",
        base=base,
        grown=True,
    )
    assert isinstance(got, Conflict) and got.paths == ("a",)
