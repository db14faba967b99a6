"""Git hook commands: `hook pre-push` and `hook update` (what the shipped shims exec), and
`hooks install` (which copies the shims).

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import os
import sys

import click

from freq import ops
from freq.cli.base import _emit_json, cli, json_option, pass_app


def _refused(res: ops.HookResult, as_json: bool) -> int:
    """Each refusal as one line on stderr (a server's reaches the pusher as `remote: freq:
    REF: WHY`); exit 1 when there is one, 0 and silence otherwise."""
    if as_json:
        _emit_json(res)
    for r in res.refused:
        click.echo(f"freq: {r.ref}: {r.why}", err=True)
    return 1 if res.refused else 0


@cli.group()
def hook() -> None:
    """What the shipped git hooks run (hooks/pre-push, hooks/update); see docs/hooks.md.

    \b
    Each refusal is one line, `freq: REF: WHY`, and exit 1; what they accept is silent.
    Examples:
      git freq hooks install                  # puts hooks/pre-push in place
      git-freq hook update refs/frequency/dlq/build OLD_SHA NEW_SHA   # in a bare repo
    """


@hook.command("pre-push")
@click.argument("remote")
@click.argument("url")
@json_option
@pass_app
def hook_pre_push(app: ops.App, remote: str, url: str, as_json: bool) -> int:
    """Check what git is about to push (stdin: `LOCAL_REF LOCAL_SHA REMOTE_REF REMOTE_SHA`
    lines): a branch whose .frequency/ at the pushed commit is invalid (the lines `validate`
    prints), a non-fast-forward update of refs/frequency/*, the deletion of a subject's or a
    dead-letter queue's ref. Cap slots and salvage refs may move and go freely.

    \b
    Example (what hooks/pre-push runs):
      git-freq hook pre-push origin git@example.com:team/repo.git < refs-being-pushed
    """
    stdin = sys.stdin.read()
    return _refused(ops.hook_pre_push(app, remote=remote, url=url, stdin=stdin), as_json)


@hook.command("update")
@click.argument("ref")
@click.argument("old")
@click.argument("new")
@json_option
def hook_update(ref: str, old: str, new: str, as_json: bool) -> int:
    """Check one ref a push moves in this (bare) repository, from OLD to NEW: refuse a
    rewrite or deletion of a subject's history or a dead-letter queue, a rewrite of any
    other ref under refs/frequency/ but cap slots and salvage refs, and each new commit of a
    subject that is not a legal successor of its parent (by the configuration of HEAD's
    .frequency/, when it has a valid one), or of a queue that is not a well-formed entry.

    \b
    Runs where git runs it (GIT_DIR, else the current folder). Example (what hooks/update runs):
      git-freq hook update refs/frequency/subjects/build/app-1 OLD_SHA NEW_SHA
    """
    # no App: most refs of a push (cap slots) are answered from their name alone, before
    # the repository or its configuration are opened
    root = click.get_current_context().find_root()
    git_dir = os.environ.get("GIT_DIR") or root.params.get("directory") or "."
    return _refused(ops.hook_update(git_dir, ref, old, new), as_json)


@cli.group("hooks")
def hooks_group() -> None:
    """Install Frequency's git hooks (see docs/hooks.md).

    \b
    Examples:
      git freq hooks install                    # pre-push, in this clone (core.hooksPath too)
      git -C /srv/git/repo.git freq hooks install --server   # update, in the shared bare repo
    """


@hooks_group.command("install")
@click.option("--server", is_flag=True, help="Install the update hook into this bare repository.")
@click.option("--force", is_flag=True, help="Replace a hook that is not ours (kept as NAME.old).")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@json_option
@pass_app
def hooks_install(app: ops.App, server: bool, force: bool, dry_run: bool, as_json: bool) -> int:
    """Copy hooks/pre-push into this repository's hooks folder, or with --server hooks/update
    into this bare repository's. A hook that is already Frequency's is left as it is; one
    that is not is refused, naming it, unless --force.

    \b
    Examples:
      git freq hooks install
      git freq hooks install --dry-run
      cd /srv/git/team.git && git freq hooks install --server
    """
    res = ops.install_hooks(app.cwd, server=server, force=force, dry_run=dry_run)
    if as_json:
        _emit_json(res)
        return 0
    for h in res.hooks:
        kept = f" (the previous one kept as {h.kept})" if h.kept else ""
        click.echo(f"{h.action}: {h.path}{kept}")
    return 0
