"""Find the repository a path is in, as git does, without opening it.

Imports only the standard library and freq.errors: opening the object store (dulwich) is
left to the first command that needs objects, so a command that reads only refs and caches
(`plan`, `status` with a warm cache) never pays for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from freq.errors import Hint, NotARepository


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a working tree's repository lives."""

    root: Path  # the working tree
    git_dir: Path  # its .git folder (a linked worktree's own folder under .git/worktrees/)
    common_dir: Path  # refs, objects and .git/frequency: shared by every worktree


def _git_dir_of(dotgit: Path) -> Path | None:
    """The git folder a `.git` entry names: itself, or the `gitdir:` of a `.git` file."""
    if dotgit.is_dir():
        return dotgit
    try:
        text = dotgit.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    return (dotgit.parent / target).resolve() if not target.is_absolute() else target


def _common_dir(git_dir: Path) -> Path:
    """Where `git_dir`'s refs and objects live: the folder its `commondir` file names (a
    linked worktree's), else itself."""
    with_common = git_dir / "commondir"
    if not with_common.is_file():
        return git_dir
    named = Path(with_common.read_text().strip())
    return named if named.is_absolute() else (git_dir / named).resolve()


def _looks_bare(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def find(start: str | os.PathLike[str]) -> Location:
    """The repository containing `start`; NotARepository when there is none (or it is bare)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        dotgit = folder / ".git"
        if os.path.lexists(dotgit):
            git_dir = _git_dir_of(dotgit)
            if git_dir is None or not (git_dir / "HEAD").exists():
                break
            return Location(root=folder, git_dir=git_dir, common_dir=_common_dir(git_dir))
        if _looks_bare(folder):
            raise NotARepository(f"{os.fspath(start)} is a bare repository; run in a clone")
    raise NotARepository(
        f"not a git repository: {os.fspath(start)}",
        hint=Hint(text="run `git init` first, or cd into a repository"),
    )


def at_git_dir(git_dir: str | os.PathLike[str]) -> Location:
    """The repository whose git folder is `git_dir`: a bare repository, as git runs a
    server-side hook in it (its GIT_DIR), or the .git folder of a clone. NotARepository
    when it is neither."""
    path = Path(git_dir).resolve()
    if not ((path / "HEAD").is_file() and (path / "objects").is_dir()):
        raise NotARepository(f"not a git repository: {os.fspath(git_dir)}")
    return Location(root=path, git_dir=path, common_dir=_common_dir(path))
