"""Housekeeping commands: `cleanup` (freq/ops/cleanup.py has its tasks).

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import click

from freq import ops
from freq.cli.base import _emit_json, cli, json_option, pass_app


@cli.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Return each ref whose history broke to its last intact state, as a new commit.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@json_option
@pass_app
def cleanup(app: ops.App, repair: bool, dry_run: bool, as_json: bool) -> int:
    """Housekeeping of refs/frequency: remove git lock files that killed processes left
    (nobody holds them); remove pool worktrees of attempts that are gone and older than
    their step's timeout plus a lease (their uncommitted work saved first on
    refs/frequency/salvage/FACTORY/SUBJECT/ATTEMPT) and freq/* branches no attempt needs,
    then `git worktree prune`; and find chains whose history broke (a commit that `git gc
    --prune=now` removed while a worker wrote); --repair mends them. Once 256 or more
    loose refs pile up under refs/frequency/, pack them (`git pack-refs --all`). Exit 1
    while anything broken is left.

    \b
    Examples:
      git freq cleanup                      stale locks and worktrees removed, broken chains listed
      git freq cleanup --dry-run            what it would remove
      git freq cleanup --repair --dry-run   what a repair would write
      git freq cleanup --repair             write it: one commit per broken ref
    """
    res = ops.cleanup(app, repair=repair, dry_run=dry_run)
    if as_json:
        _emit_json(res)
    else:
        for task in res.tasks:
            for line in task.lines:
                click.echo(line)
    return 1 if res.left else 0
