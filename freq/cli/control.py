"""Control commands: `pause`, `resume`, `autonomy`, `approve`, and the `locks` group.

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import click

from freq import ops
from freq.cli.base import _emit_json, app_of, cli, json_option, pass_app, reason_option


def _echo_control(res: ops.ControlResult, as_json: bool) -> int:
    if as_json:
        _emit_json(res)
    else:
        state = "paused" if res.paused else "running"
        click.echo(f"{res.factory}: {state}, autonomy {res.autonomy}")
    return 0


@cli.command()
@click.argument("factory")
@reason_option
@json_option
@pass_app
def pause(app: ops.App, factory: str, reason: str, as_json: bool) -> int:
    """Stop new claims in FACTORY on every worker; running steps finish.

    \b
    Example:
      git freq pause build --reason "CI is down"
    """
    return _echo_control(ops.pause(app, factory, reason=reason), as_json)


@cli.command()
@click.argument("factory")
@reason_option
@json_option
@pass_app
def resume(app: ops.App, factory: str, reason: str, as_json: bool) -> int:
    """Let a paused FACTORY claim again.

    \b
    Example:
      git freq resume build --reason "CI is back"
    """
    return _echo_control(ops.resume(app, factory, reason=reason), as_json)


@cli.command()
@click.argument("factory")
@click.argument("level", type=click.Choice(["auto", "supervised", "manual"]))
@reason_option
@json_option
@pass_app
def autonomy(app: ops.App, factory: str, level: str, reason: str, as_json: bool) -> int:
    """Set how much FACTORY does by itself.

    \b
    auto        steps start by themselves
    supervised  steps with `approval: true` (and agent steps) wait for `approve`
    manual      nothing starts without `approve`

    \b
    Example:
      git freq autonomy build supervised --reason "new prompt, watch it"
    """
    return _echo_control(ops.set_autonomy(app, factory, level, reason=reason), as_json)


@cli.command()
@click.argument("factory")
@click.argument("subject")
@click.argument("step")
@reason_option
@json_option
@pass_app
def approve(app: ops.App, factory: str, subject: str, step: str, reason: str, as_json: bool) -> int:
    """Approve STEP for SUBJECT; a gate step (no run) moves the subject at once.

    \b
    Example:
      git freq approve build app-7 promote --reason "checked the preview"
    """
    res = ops.approve(app, factory, subject, step, reason=reason)
    if as_json:
        _emit_json(res)
    elif res.moved_to:
        click.echo(f"{factory}/{subject}: {step} approved -> {res.moved_to}")
    else:
        click.echo(f"{factory}/{subject}: {step} approved; it starts at the next planning cycle")
    return 0


@cli.group(invoke_without_command=True)
@click.option("--all", "include_free", is_flag=True, help="Include released locks too.")
@json_option
@click.pass_context
def locks(ctx: click.Context, include_free: bool, as_json: bool) -> int:
    """List named locks not released: holder, age, expiry, held or stale (and why).

    \b
    Examples:
      git freq locks --all
      git freq locks break deploy --reason "holder host is gone"
    """
    if ctx.invoked_subcommand is not None:
        return 0
    from freq import render

    rows = ops.list_locks(app_of(ctx), include_free=include_free)
    if as_json:
        _emit_json(rows)
        return 0
    if not rows:
        click.echo("no locks held" if not include_free else "no locks")
        return 0
    click.echo(render.locks_text(rows))
    return 0


@locks.command("break")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded in the commit).")
@json_option
@pass_app
def locks_break(app: ops.App, name: str, reason: str, as_json: bool) -> int:
    """Release lock NAME by hand, whoever holds it.

    \b
    Example:
      git freq locks break deploy --reason "host-3 is gone"
    """
    row = ops.break_lock(app, name, reason=reason)
    if as_json:
        _emit_json(row)
    else:
        click.echo(
            f"broke lock {name} (it was unreadable: {row.problem})"
            if row.problem
            else f"broke lock {name} (was held by {row.holder} for {row.subject})"
        )
    return 0
