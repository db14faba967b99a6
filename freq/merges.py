"""Combining a branch onto a target as commits and trees: rebase, merge or squash, no worktree.

Must not import dulwich, click or subprocess; git runs through freq.proc. Nothing here
touches a worktree, an index or HEAD: trees come from `git merge-tree --write-tree`,
commits from `git commit-tree`, and a branch moves only by compare-and-swap
(`move_branch`). The one exception is `update_checkout`, which brings the user's checkout
along the way git's receive.denyCurrentBranch=updateInstead does (`read-tree -u -m`).

git 2.39 has no `merge-tree --merge-base` (2.40), so a rebase replays commit C (parent P)
by merging C with a throwaway commit X = (tree so far, parent P): their merge base is P,
which makes it a true three-way cherry-pick rather than a cumulative merge. The first
commit of a linear branch needs no X, as its parent is already the merge base with the
target. One `git log` call reads the whole entry (is it landed, fast-forward, linear,
authors and messages), so a fast-forward costs one git process and a one-commit branch
three (log, merge-tree, commit-tree).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from freq import proc
from freq.clock import Clock, SystemClock
from freq.errors import GitLockHeld, MergeError
from freq.model import MergeStrategy

LOCK_WAIT = 2.0  # seconds move_branch waits for another git's lock on the branch
DETAIL_LINES = 40  # the most lines of merge-tree messages a Conflict keeps

# throwaway commits (X above) get a fixed identity and date: they need no configured
# identity, and the same X is the same object each time
_SCRATCH_ENV = {
    "GIT_AUTHOR_NAME": "Frequency",
    "GIT_AUTHOR_EMAIL": "freq@localhost",
    "GIT_AUTHOR_DATE": "@0 +0000",
    "GIT_COMMITTER_NAME": "Frequency",
    "GIT_COMMITTER_EMAIL": "freq@localhost",
    "GIT_COMMITTER_DATE": "@0 +0000",
}
# one record per commit: sha, parents, tree, the command-line name it was reached by,
# author name, email and raw date, then the raw message (which holds no NUL)
_LOG_FORMAT = "%H%x00%P%x00%T%x00%S%x00%an%x00%ae%x00%ad%x00%B"
_LOG_FIELDS = 8
_LOST_RACE = ("but expected", "reference already exists", "unable to resolve reference")
_LOCK_FILE = re.compile(r"Unable to create '([^']*\.lock)': File exists")


@dataclass(frozen=True, slots=True, kw_only=True)
class Combined:
    """A branch combined onto a target: the tip the target would move to."""

    commit: str  # the new tip the target would move to
    commits: tuple[str, ...]  # commits this entry adds on top of `onto`, oldest first
    strategy: MergeStrategy  # what was actually used (a rebase of merges is a merge)


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A branch that does not combine cleanly onto its target."""

    paths: tuple[str, ...]  # conflicting paths, sorted, unique
    detail: str  # merge-tree's messages (CONFLICT (content): ...), at most DETAIL_LINES
    commit: str | None = None  # rebase: the branch commit whose replay conflicted


@dataclass(frozen=True, slots=True, kw_only=True)
class _Commit:
    """One commit as the entry's `git log` read it."""

    sha: str
    parents: tuple[str, ...]
    tree: str
    source: str
    author: dict[str, str]  # GIT_AUTHOR_* for its replay
    message: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Walk:
    """The target and the branch commits not in it (reverse topological order, tip last)."""

    onto: str
    onto_tree: str
    branch: tuple[_Commit, ...]


class _Git:
    """One combine's git calls: the caller's environment, and a fallback identity once
    git has said it has none."""

    def __init__(self, repo: Path, env: Mapping[str, str] | None) -> None:
        self.repo = repo
        self._caller = dict(env or {})
        self._fallback: dict[str, str] = {}
        self._identity_checked = False

    def run(
        self, args: Sequence[str], *, extra: Mapping[str, str] | None = None, stdin: bytes = b""
    ) -> proc.GitResult:
        env = {**self._fallback, **self._caller, **(extra or {})}
        return proc.git(args, cwd=self.repo, env=env, stdin=stdin)

    def commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: bytes,
        *,
        author: Mapping[str, str] | None = None,
    ) -> str:
        """Write a commit (`author` None: the configured author) and return its id."""
        args = ["commit-tree", tree, *(a for p in parents for a in ("-p", p))]
        res = self.run(args, extra=author, stdin=message)
        if not res.ok and self._fill_identity(author=author is None):
            res = self.run(args, extra=author, stdin=message)
        if not res.ok:
            raise MergeError(f"cannot write a commit of tree {tree[:12]}: {res.why()}")
        return res.text()

    def scratch(self, tree: str, parent: str) -> str:
        """A throwaway commit of `tree` on `parent`, so a merge with it has base `parent`."""
        res = self.run(["commit-tree", tree, "-p", parent], extra=_SCRATCH_ENV, stdin=b"tmp\n")
        if not res.ok:
            raise MergeError(f"cannot write a scratch commit on {parent[:12]}: {res.why()}")
        return res.text()

    def _fill_identity(self, *, author: bool) -> bool:
        """After a failed commit: when git has no committer (or author) identity, use
        Frequency's from now on. True when that changed anything (retry the commit)."""
        if self._identity_checked:
            return False
        self._identity_checked = True
        ident = {"name": "Frequency", "email": f"freq@{proc.this_host()}"}
        roles = ("COMMITTER", "AUTHOR") if author else ("COMMITTER",)
        for role in roles:
            if not self.run(["var", f"GIT_{role}_IDENT"]).ok:
                self._fallback[f"GIT_{role}_NAME"] = ident["name"]
                self._fallback[f"GIT_{role}_EMAIL"] = ident["email"]
        return bool(self._fallback)


def combine(
    repo: Path,
    *,
    onto: str,
    branch_tip: str,
    strategy: MergeStrategy,
    message: str,
    base: str | None = None,
    env: Mapping[str, str] | None = None,
    grown: bool = False,
) -> Combined | Conflict:
    """Combine `branch_tip` onto `onto` by `strategy` as new objects; no ref moves.

    `grown`: the caller knows `onto` descends from `base` (a target that moved on only by
    landings since the branch was made from it), so `base` is already the merge base and
    needs no throwaway commit to make it one (one git process less per entry).

    A branch already in `onto` gives `Combined(commit=onto, commits=())`. REBASE replays
    each commit of base..branch_tip (base: the merge base, unless given) keeping its author
    and message, skips one whose change is already there, fast-forwards when the branch
    is directly ahead, and merges instead when the branch holds merge commits. MERGE makes
    a merge commit (parents onto, branch_tip), SQUASH one commit on onto, both with
    `message`. `commits` lists what the target gains: the replays, the branch's commits
    and the merge commit, or the squash. Raises MergeError when git fails otherwise."""
    g = _Git(repo, env)
    walk = _walk(g, onto, branch_tip, base)
    if not walk.branch:
        return Combined(commit=walk.onto, commits=(), strategy=strategy)
    if grown:
        if strategy is MergeStrategy.REBASE:
            return _rebase(g, walk, base, message, grown=True)
        return _merge_or_squash(g, walk, None, strategy, message)
    if strategy is MergeStrategy.REBASE:
        return _rebase(g, walk, base, message)
    return _merge_or_squash(g, walk, base, strategy, message)


def _rebase(
    g: _Git, walk: _Walk, base: str | None, message: str, *, grown: bool = False
) -> Combined | Conflict:
    chain = walk.branch
    shas = tuple(c.sha for c in chain)
    if base is None:
        ahead = any(walk.onto in c.parents for c in chain)  # onto is an ancestor of the tip
    else:
        ahead = all(len(c.parents) == 1 for c in chain) and chain[0].parents == (walk.onto,)
    if ahead:
        return Combined(commit=chain[-1].sha, commits=shas, strategy=MergeStrategy.REBASE)
    if any(len(c.parents) != 1 for c in chain):
        return _merge_or_squash(g, walk, base, MergeStrategy.MERGE, message)
    tip, tree = walk.onto, walk.onto_tree
    made: list[str] = []
    for i, c in enumerate(chain):
        # the first commit's parent is the merge base of onto and it (a linear branch
        # from the default base); every later one needs X to make its parent the base
        first = i == 0 and (base is None or (grown and c.parents[0] == base))
        ours = walk.onto if first else g.scratch(tree, c.parents[0])
        merged = _merge_trees(g, ours, c.sha)
        if isinstance(merged, Conflict):
            return replace(merged, commit=c.sha)
        if merged == tree:
            continue  # already applied
        tip = g.commit(merged, (tip,), c.message, author=c.author)
        tree = merged
        made.append(tip)
    return Combined(commit=tip, commits=tuple(made), strategy=MergeStrategy.REBASE)


def _merge_or_squash(
    g: _Git, walk: _Walk, base: str | None, strategy: MergeStrategy, message: str
) -> Combined | Conflict:
    tip = walk.branch[-1].sha
    # a given base is made the merge base the same way a rebase replays a commit
    ours = walk.onto if base is None else g.scratch(walk.onto_tree, base)
    tree = _merge_trees(g, ours, tip)
    if isinstance(tree, Conflict):
        return tree
    text = message if message.endswith("\n") else message + "\n"
    if strategy is MergeStrategy.MERGE:
        commit = g.commit(tree, (walk.onto, tip), text.encode())
        shas = (*(c.sha for c in walk.branch), commit)
        return Combined(commit=commit, commits=shas, strategy=strategy)
    if tree == walk.onto_tree:  # the branch changes nothing the target lacks
        return Combined(commit=walk.onto, commits=(), strategy=strategy)
    commit = g.commit(tree, (walk.onto,), text.encode())
    return Combined(commit=commit, commits=(commit,), strategy=strategy)


def _walk(g: _Git, onto: str, tip: str, base: str | None) -> _Walk:
    """Read `onto` and the commits of `tip` not in it (nor in `base`) in one `git log`.

    `tip onto --not onto^@` lists onto itself (its tree) and onto..tip; `--source` tells
    them apart, since onto is the only listed commit reachable from onto."""
    args = [
        "log",
        "-z",
        "--no-color",
        "--no-use-mailmap",
        "--no-show-signature",
        "--no-notes",
        "--date=raw",
        "--encoding=UTF-8",
        "--topo-order",
        "--reverse",
        "--source",
        f"--format={_LOG_FORMAT}",
        tip,
        onto,
        "--not",
        f"{onto}^@",
        *([base] if base else []),
        "--",
    ]
    res = g.run(args)
    if not res.ok:
        raise MergeError(f"cannot read {tip} and {onto}: {res.why()}")
    records = _parse_log(res.out)
    mine = [c for c in records if c.source == onto]
    if len(mine) == 1:
        found = mine[0]
        branch = tuple(c for c in records if c is not found)
        return _Walk(onto=found.sha, onto_tree=found.tree, branch=branch)
    # onto is the tip's commit under another name, or reachable from `base`: ask for it
    named = g.run(["rev-parse", f"{onto}^{{commit}}", f"{onto}^{{tree}}"])
    ids = named.text().split()
    if not named.ok or len(ids) != 2:
        raise MergeError(f"{onto} is not a commit: {named.why()}")
    sha, tree = ids
    branch = tuple(c for c in records if c.sha != sha)
    return _Walk(onto=sha, onto_tree=tree, branch=branch)


def _parse_log(out: bytes) -> list[_Commit]:
    fields = out.split(b"\0")
    found = []
    for at in range(0, len(fields) - _LOG_FIELDS + 1, _LOG_FIELDS):
        sha, parents, tree, source, name, email, date = (
            f.decode("utf-8", "surrogateescape") for f in fields[at : at + _LOG_FIELDS - 1]
        )
        author = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": f"@{date}",
        }
        found.append(
            _Commit(
                sha=sha,
                parents=tuple(parents.split()),
                tree=tree,
                source=source,
                author=author,
                message=fields[at + _LOG_FIELDS - 1],
            )
        )
    return found


def _merge_trees(g: _Git, ours: str, theirs: str) -> str | Conflict:
    """The merged tree of two commits, or what conflicts (merge-tree picks the base)."""
    res = g.run(["merge-tree", "--write-tree", "-z", "--name-only", ours, theirs])
    if res.code not in (0, 1):
        raise MergeError(f"cannot merge {theirs[:12]} onto {ours[:12]}: {res.why()}")
    fields = res.out.split(b"\0")
    tree = fields[0].decode()
    if res.code == 0:
        return tree
    return _conflict(fields)


def _conflict(fields: list[bytes]) -> Conflict:
    """Parse merge-tree's -z output after the tree: names, an empty field, then messages
    as <count> <paths...> <type> <text>."""
    text = [f.decode("utf-8", "replace") for f in fields]
    at = 1
    paths: set[str] = set()
    while at < len(text) and text[at]:
        paths.add(text[at])
        at += 1
    at += 1
    messages: list[tuple[str, str]] = []
    while at < len(text) and text[at].isdigit():
        n = int(text[at])
        kind, said = ([*text[at + n + 1 : at + n + 3], "", ""])[:2]
        messages.append((kind, said.rstrip("\n")))
        at += n + 3
    # "Auto-merging x" says nothing about a conflict; keep it only if nothing else is said
    kept = [said for kind, said in messages if kind != "Auto-merging"] or [s for _, s in messages]
    lines = [ln for said in kept for ln in said.splitlines()]
    if len(lines) > DETAIL_LINES:
        lines = [*lines[: DETAIL_LINES - 1], f"... and {len(lines) - DETAIL_LINES + 1} more lines"]
    return Conflict(paths=tuple(sorted(paths)), detail="\n".join(lines))


def mergeable(repo: Path, onto: str, branch_tip: str) -> Conflict | None:
    """What a merge of `branch_tip` into `onto` would conflict on, or None: writes only
    the merged tree's objects, moves nothing."""
    merged = _merge_trees(_Git(repo, None), onto, branch_tip)
    return merged if isinstance(merged, Conflict) else None


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    """Whether commit `a` is `b` or one of its ancestors."""
    res = proc.git(["merge-base", "--is-ancestor", a, b], cwd=repo)
    if res.code in (0, 1):
        return res.ok
    raise MergeError(f"cannot compare {a} with {b}: {res.why()}")


def rev(repo: Path, name: str) -> str | None:
    """The commit `name` names, or None when it names none."""
    res = proc.git(["rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], cwd=repo)
    return res.text() if res.ok else None


def move_branch(
    repo: Path,
    branch: str,
    new: str,
    old: str | None,
    *,
    message: str,
    clock: Clock | None = None,
    wait: float = LOCK_WAIT,
) -> bool:
    """Move refs/heads/<branch> to `new` only if it is at `old` (None: only if it does
    not exist yet), with `message` in its reflog. False when it was elsewhere (a lost
    race). Waits up to `wait` seconds for another git's lock on it, then raises
    GitLockHeld; any other failure is a MergeError."""
    clock = clock or SystemClock()
    ref = f"refs/heads/{branch}"
    deadline = clock.monotonic() + wait
    delay = 0.005
    while True:
        res = proc.git(["update-ref", "-m", message, ref, new, old or ""], cwd=repo)
        if res.ok:
            return True
        err = res.err.decode("utf-8", "replace")
        if any(s in err for s in _LOST_RACE):
            return False
        held = _LOCK_FILE.search(err)
        if held is None:
            raise MergeError(f"cannot move branch {branch}: {res.why()}")
        if clock.monotonic() >= deadline:
            raise GitLockHeld(
                f"branch {branch} is locked by another git process ({held.group(1)})",
                hint="retry; if no git is running, remove that lock file",
            )
        clock.sleep(delay)
        delay = min(delay * 2, 0.1)


def _worktrees(repo: Path) -> list[dict[str, str]]:
    """`git worktree list --porcelain -z` as one dict per worktree (main first)."""
    res = proc.git(["worktree", "list", "--porcelain", "-z"], cwd=repo)
    if not res.ok:
        raise MergeError(f"cannot list worktrees: {res.why()}")
    found: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for field in res.out.decode("utf-8", "surrogateescape").split("\0"):
        if not field:
            if current:
                found.append(current)
            current = {}
            continue
        key, _, value = field.partition(" ")
        current[key] = value
    if current:
        found.append(current)
    return found


def worktrees_on(repo: Path, branch: str) -> list[Path]:
    """The worktrees (main or linked) that have `branch` checked out; not those git lists
    as prunable: their folder is gone, there is no checkout to follow or to refuse for."""
    ref = f"refs/heads/{branch}"
    return [
        Path(w["worktree"])
        for w in _worktrees(repo)
        if w.get("branch") == ref and "prunable" not in w
    ]


def main_worktree(repo: Path) -> Path | None:
    """The main worktree's path, or None for a bare repository."""
    first = _worktrees(repo)[0]
    return None if "bare" in first else Path(first["worktree"])


def dirty(worktree: Path) -> str | None:
    """One line saying why the checkout at `worktree` is not clean, or None when it is.

    Staged changes and changes to tracked files count; untracked files, a file whose
    stat changed but not its content, and an unborn HEAD do not. One `git status` that
    never writes the user's index (--no-optional-locks: their own git may be running)."""
    res = proc.git(
        ["--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no"],
        cwd=worktree,
    )
    if not res.ok:
        raise MergeError(f"cannot read the checkout at {worktree}: {res.why()}")
    staged = False
    names: set[str] = set()
    entries = iter(res.out.split(b"\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        x, y = entry[0:1], entry[1:2]
        if x in (b"R", b"C"):
            next(entries, None)  # the path it was renamed or copied from
        staged = staged or x not in (b" ", b"?")
        if y != b" ":
            names.add(entry[3:].decode("utf-8", "replace"))
    if not staged and not names:
        return None
    if proc.git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=worktree).code == 1:
        return None  # unborn: nothing to compare
    if staged:
        return "the index has staged changes"
    ordered = sorted(names)
    more = f" (and {len(ordered) - 2} more)" if len(ordered) > 2 else ""
    return f"the working tree has uncommitted changes in {', '.join(ordered[:2])}{more}"


def update_checkout(worktree: Path, old: str, new: str) -> str | None:
    """Bring the checkout at `worktree` (index and files) from commit `old` to `new` as
    git's updateInstead does; None, or git's one-line reason, having changed nothing.
    HEAD is untouched: move the branch it names after this."""
    res = proc.git(["read-tree", "-u", "-m", old, new], cwd=worktree)
    return None if res.ok else _first_error(res)


def _first_error(res: proc.GitResult) -> str:
    """git's first `error:`/`fatal:` line, which names the cause (the last one is often
    `Aborting`)."""
    for line in res.err.decode("utf-8", "replace").splitlines():
        head, sep, rest = line.partition(": ")
        if sep and head in ("error", "fatal") and rest.strip():
            return rest.strip()[:300]
    return res.why()


def default_branch(repo: Path, remote: str | None = None) -> str:
    """The branch work lands on: the remote's HEAD branch, else init.defaultBranch,
    `main` or `master` if it exists, else the main worktree's branch, else `main`."""
    name = remote or "origin"
    head = proc.git(["symbolic-ref", "--quiet", f"refs/remotes/{name}/HEAD"], cwd=repo)
    prefix = f"refs/remotes/{name}/"
    if head.ok and head.text().startswith(prefix):
        return head.text()[len(prefix) :]
    configured = proc.git(["config", "--get", "init.defaultBranch"], cwd=repo)
    candidates = [configured.text()] if configured.ok and configured.text() else []
    candidates += ["main", "master"]
    listed = proc.git(
        ["for-each-ref", "--format=%(refname)", *(f"refs/heads/{c}" for c in candidates)],
        cwd=repo,
    )
    present = set(listed.text().splitlines()) if listed.ok else set()
    for c in candidates:
        if f"refs/heads/{c}" in present:
            return c
    first = _worktrees(repo)[0]
    checked_out = first.get("branch", "")
    if checked_out.startswith("refs/heads/"):
        return checked_out[len("refs/heads/") :]
    return "main"
