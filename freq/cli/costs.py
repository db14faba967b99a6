"""The `costs` command: what attempts spent, read from git (ops.costs_report).

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import click

from freq import ops
from freq.cli.base import _emit_json, cli, json_option, pass_app, warn

# freq.costs.By's values, written out: `--help` and usage errors import nothing but click
GROUPS = ("step", "factory", "subject", "agent", "model", "day")


@cli.command()
@click.option(
    "--by",
    type=click.Choice(GROUPS),
    default="step",
    show_default=True,
    help="Group attempts by this.",
)
@click.option(
    "--since",
    metavar="DATE",
    default=None,
    help="Only attempts from DATE on: a day (UTC), a time, or a duration back (7d).",
)
@json_option
@pass_app
def costs(app: ops.App, by: str, since: str | None, as_json: bool) -> int:
    """What every attempt recorded in git spent: tokens, USD (reported by the agent CLI,
    or estimated from the price table: marked ~), time, and the share of steps and of
    wall time that agent steps took. Failed attempts count. Each budget's window is shown
    with what it spent.

    \b
    Examples:
      git freq costs                        per step, all history
      git freq costs --by day --since 7d    per day, the last week
      git freq costs --by agent --since 2026-12-01 --json
      git log --glob=refs/frequency --format=%(trailers:key=Freq-Cost-Usd)
    """
    from freq import render

    res = ops.costs_report(app, by=by, since=since)
    warn(res.problems)
    if as_json:
        _emit_json(res)
        return 0
    click.echo(render.costs_text(res))
    return 0
