"""Where a project's configuration lives (`.frequency/` and the files in it), and where
its worktree pool does.

Imports only the standard library and freq.errors, so that finding the files costs nothing
(freq.config reads them; freq.configfiles parses them), and a run loop learns whether a
pool exists without importing freq.worktrees.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from freq.errors import Hint, NoConfig

FOLDER = ".frequency"
SETTINGS_NAMES = ("frequency.yaml", "frequency.yml")
FACTORY_SCHEMA = "factory.schema.json"
SETTINGS_SCHEMA = "frequency.schema.json"


PACKAGED_SCHEMAS = Path(__file__).resolve().parent / "schemas"  # in a wheel: package data
CHECKOUT_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"  # in a checkout


def schema_text(name: str) -> str:
    """A schema's text: `freq/schemas/NAME` in a wheel, else `<repo>/schemas/NAME` (a checkout)."""
    packaged = PACKAGED_SCHEMAS / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (CHECKOUT_SCHEMAS / name).read_text(encoding="utf-8")


def find_config_files(root: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Every `.frequency/*.yaml` / `*.yml` file under `root` (not hidden ones), sorted by name.

    Raises NoConfig when `root` has no `.frequency/` folder.
    """
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        check_not_a_file(folder)
        raise NoConfig(f"no {FOLDER}/ folder in {root}", hint=Hint(text="run", command=("init",)))
    return tuple(
        sorted(
            (p for p in folder.iterdir() if is_config_name(p.name) and p.is_file()),
            key=lambda p: p.name,
        )
    )


def is_config_name(name: str) -> bool:
    """Whether a file of `.frequency/` named `name` is configuration (`*.yaml`, `*.yml`,
    not hidden)."""
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")


def check_not_a_file(folder: Path) -> None:
    """Raise NoConfig when `folder` (`.frequency`) exists but is a file (or a broken link)."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise NoConfig(f"{FOLDER} is a file, not a folder", hint="move it away")


def pool_dir(repo_root: Path, common_dir: Path, configured: str | None) -> Path:
    """The folder of a repository's worktree pool: `worktrees.dir` (`configured`, relative
    to the working tree), else default_pool_dir."""
    root = Path(os.path.abspath(repo_root))
    if configured:
        return Path(os.path.abspath(root / os.path.expanduser(configured)))
    return default_pool_dir(common_dir)


def default_pool_dir(common_dir: Path) -> Path:
    """Where a repository's pool lives unless `worktrees.dir` says: outside its working
    tree and outside `.git` (Claude Code 2.1 refuses every write under a `.git` folder, as
    "a sensitive file", whatever its permission rules), under the user's state folder:
    `$XDG_STATE_HOME/git-freq/worktrees/<repository>-<hash of its git folder>`.

    It comes from `common_dir` alone, not from the working tree: run from any linked
    worktree of the repository, it is the same pool (one lock, one `max`). The name is the
    folder holding `.git`, or a bare repository's own folder."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    real = Path(os.path.realpath(common_dir))
    tag = hashlib.sha256(os.fspath(real).encode()).hexdigest()[:10]
    owner = real.parent if real.name == ".git" else real
    name = re.sub(r"[^\w.-]", "_", owner.name) or "repo"
    return Path(state) / "git-freq" / "worktrees" / f"{name}-{tag}"
