"""Hook actions: run the pre-push and update checks, and install the shims that call them.

Must not import click or dulwich, and never prints: each function takes plain values and
returns a result dataclass (or raises a FreqError). The checks are freq/hooks.py; this
module finds the repository and its hooks folder (one `git rev-parse`, which knows
core.hooksPath, linked worktrees and bare repositories). git runs the update hook once per
ref a push moves: a ref the hook does not judge (a cap slot, a branch) is answered from
its name, before the checks, git or the configuration are imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from freq import refs
from freq.errors import FreqError, Hint, NotARepository, UsageError

if TYPE_CHECKING:
    from freq.hooks import Refusal
    from freq.ops.app import App


@dataclass(frozen=True, slots=True, kw_only=True)
class HookResult:
    """What a hook refused (nothing: the push goes on)."""

    refused: tuple[Refusal, ...] = ()


def hook_pre_push(app: App, *, remote: str, url: str, stdin: str) -> HookResult:
    """The pre-push checks of the refs git is about to push to `remote` (`url`), as its
    stdin lists them (freq/hooks.py)."""
    del remote, url  # the rules are the same whatever the remote
    from freq import hooks

    pushes = hooks.parse_pre_push(stdin)
    if not pushes:
        return HookResult()
    return HookResult(refused=tuple(hooks.check_pushes(app.store, pushes)))


def hook_update(git_dir: str | os.PathLike[str], ref: str, old: str, new: str) -> HookResult:
    """The update checks of moving `ref` from `old` to `new` in the repository whose git
    folder is `git_dir` (a bare repository receiving a push)."""
    try:
        was, now = refs.parse_oid(old), refs.parse_oid(new)
    except ValueError as exc:
        raise UsageError(f"update: {exc}") from None
    if not ref.startswith(refs.ROOT) or refs.is_ephemeral(ref):
        return HookResult()  # not ours to judge: answered without opening the repository
    from freq import hooks
    from freq.clock import SystemClock
    from freq.store import Store

    store = Store.at_git_dir(git_dir, clock=SystemClock())
    try:
        return HookResult(refused=tuple(hooks.check_update(store, ref, was, now)))
    finally:
        store.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """One hook `hooks install` wrote (or would write)."""

    name: str
    path: str
    action: str  # installed | updated | replaced | unchanged (each `would …` in a dry run)
    kept: str | None = None  # where a replaced foreign hook was moved


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallResult:
    """What `hooks install` did."""

    hooks_dir: str
    hooks: tuple[Installed, ...]
    dry_run: bool = False


_WOULD = {
    "installed": "would install",
    "updated": "would update",
    "replaced": "would replace",
    "unchanged": "unchanged",
}


def _marker(name: str) -> str:
    return f"exec git-freq hook {name} "


def _hooks_dir(cwd: Path) -> tuple[bool, Path]:
    """(bare?, the hooks folder git runs) of the repository at `cwd`."""
    from freq import proc

    res = proc.git(["rev-parse", "--is-bare-repository", "--git-path", "hooks"], cwd=cwd)
    lines = res.text().splitlines()
    if not res.ok or len(lines) != 2:
        raise NotARepository(
            f"not a git repository: {cwd}", hint=Hint(text="cd into one, or pass -C PATH")
        )
    return lines[0] == "true", (cwd / lines[1]).resolve()


def install_hooks(
    cwd: str | os.PathLike[str], *, server: bool = False, force: bool = False, dry_run: bool = False
) -> InstallResult:
    """Copy the pre-push shim into the hooks folder of the repository at `cwd` (core.hooksPath
    respected), or with `server` the update shim into the bare repository at `cwd`. A hook
    that is not Frequency's is refused unless `force` (then it is kept beside, `NAME.old`);
    one that is already ours is left as it is."""
    where = Path(cwd).resolve()
    bare, folder = _hooks_dir(where)
    if server and not bare:
        raise FreqError(
            f"{where} is not a bare repository: the update hook belongs in the repository "
            "everyone pushes to; nothing was written",
            hint=Hint(text="run this there, or install the pre-push hook here without --server"),
        )
    if bare and not server:
        raise FreqError(
            f"{where} is a bare repository: nobody pushes from it; nothing was written",
            hint=Hint(text="for the server-side update hook, pass", option="server"),
        )
    from freq.hooks import shim_text

    name = "update" if server else "pre-push"
    text = shim_text(name)
    path = folder / name
    action, kept = "installed", None
    if path.exists() or path.is_symlink():
        try:
            current = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            current = ""
        if current == text:
            action = "unchanged"
        elif _marker(name) in current:
            action = "updated"
        elif not force:
            raise FreqError(
                f"{path} exists and is not Frequency's hook; nothing was written",
                hint=Hint(
                    text=f'call `git-freq hook {name} "$@"` from it, or replace it (it is '
                    f"kept as {name}.old): pass",
                    option="force",
                ),
            )
        else:
            action, kept = "replaced", str(path.with_name(f"{name}.old"))
    if not dry_run and action != "unchanged":
        folder.mkdir(parents=True, exist_ok=True)
        if kept is not None:
            os.replace(path, kept)
        tmp = path.with_name(f".{name}.freq-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
        os.replace(tmp, path)
    shown = _WOULD[action] if dry_run else action
    return InstallResult(
        hooks_dir=str(folder),
        hooks=(Installed(name=name, path=str(path), action=shown, kept=kept),),
        dry_run=dry_run,
    )
