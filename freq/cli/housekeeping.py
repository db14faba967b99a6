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
    loose refs pile up under refs/frequency/, pack them (`git pack-refs --all`); once more
    than 50 packs or about 6,700 loose objects pile up (the limits `git gc --auto` reads:
    gc.autoPackLimit and gc.auto, which the repository may set; 0 turns them off), repack
    them as `git gc` does, keeping unreachable objects younger than two weeks; once 1,000
    cached documents of commits no ref names pile up, drop them; remove the log folders of
    subjects neither live nor archived, a day after their last write. Exit 1 while
    anything broken is left.

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


@cli.command()
@click.option("--dry-run", is_flag=True, help="List the subjects due; archive nothing.")
@json_option
@pass_app
def archive(app: ops.App, dry_run: bool, as_json: bool) -> int:
    """Fold subjects that sat in a terminal state for `archive_after` (frequency.yaml,
    default 1d; 0 = at once) into refs/frequency/archive/FACTORY, then delete their refs.
    `run` does this by itself once per cycle. Archived subjects keep their history (`git
    log refs/frequency/archive/FACTORY` reaches all of it) and stay visible to `show`,
    `log`, `status`, predicates and costs; `add` of an archived name is refused. A pass
    that folded any ends with `git gc --auto`, as git's own commands do after they write.

    \b
    Examples:
      git freq archive --dry-run     which subjects are due, per factory
      git freq archive               fold them: one commit per 500 subjects
      git log --oneline refs/frequency/archive/build
    """
    res = ops.archive(app, dry_run=dry_run)
    if as_json:
        _emit_json(res)
        return 0
    verb = "would archive" if dry_run else "archived"
    for row in res.factories:
        shown = ", ".join(row.subjects[:5]) + (" ..." if len(row.subjects) > 5 else "")
        click.echo(f"{row.factory}: {verb} {len(row.subjects)} ({shown})")
        if row.moved:
            click.echo(f"{row.factory}: {len(row.moved)} moved meanwhile, left live")
    if not res.factories:
        click.echo(f"nothing to archive (subjects terminal for {res.after} or more)")
    if res.upkeep is not None:
        click.echo(f"warning: {res.upkeep}", err=True)
    return 0
