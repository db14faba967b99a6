"""Running commands: `plan` shows what would run, `run` runs it (progress: freq/cli/progress.py).

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import click

from freq import ops
from freq.cli.base import PROG, _emit_json, app_of, cli, json_option, pass_app


@cli.command("plan")
@click.option("--factory", "factories", multiple=True, help="Only this factory (repeatable).")
@json_option
@pass_app
def plan_cmd(app: ops.App, factories: tuple[str, ...], as_json: bool) -> int:
    """What would run now, and what waits and why. Changes nothing.

    \b
    Examples:
      git freq plan
      git freq plan --factory build --json
    """
    from freq import render

    p = ops.plan_now(app, factories)
    if as_json:
        _emit_json(p)
    else:
        click.echo(render.plan_text(p))
    return 0


@cli.command()
@click.option("--once", is_flag=True, help="Run one planning cycle and wait for its steps.")
@click.option("--until-idle", is_flag=True, help="Stop when nothing is runnable or running.")
@click.option("--factory", "factories", multiple=True, help="Only this factory (repeatable).")
@click.option("--max-parallel", type=int, default=None, help="Override the global cap.")
@click.option(
    "--remote",
    metavar="NAME",
    default=None,
    help="Coordinate through this git remote (default: `remote:` of frequency.yaml).",
)
@json_option
@click.pass_context
def run(
    ctx: click.Context,
    once: bool,
    until_idle: bool,
    factories: tuple[str, ...],
    max_parallel: int | None,
    remote: str | None,
    as_json: bool,
) -> int:
    """Run steps: plan, claim, run, record; greedily, under every cap.

    Ctrl-C (or SIGTERM) stops claiming and lets running steps finish; a second Ctrl-C
    kills them and gives their claims back, the attempt unspent. Exit 130 after Ctrl-C,
    143 after SIGTERM. If the git process of `git freq run` is killed (kill -9), the
    run kills its steps as a second Ctrl-C does and exits 129; `git-freq run` (started
    by a shell, nohup or a service) outlives whoever started it.

    With --remote NAME, workers on several machines share that remote: refs/frequency/*
    is fetched before planning and every claim and transition is pushed with the
    expected old value of each ref it moves (a rejected push is a lost race).

    \b
    Examples:
      git freq run --until-idle
      git freq run --once --factory build
      git freq run --max-parallel 8
      git freq run --remote origin --until-idle
    """
    if once and until_idle:
        raise click.UsageError("--once and --until-idle exclude each other")
    from freq.cli.progress import TextReporter

    summary = ops.run(
        app_of(ctx),  # after the usage checks: a usage error imports nothing but click
        once=once,
        until_idle=until_idle,
        factories=factories,
        max_parallel=max_parallel,
        reporter=TextReporter(as_json),
        handle_signals=True,
        watch_parent=True,
        remote=remote,
    )
    if summary.stopped_by == "parent":
        n = summary.released
        what = {
            0: "no step was running",
            1: "stopped 1 running step and released its claim",
        }.get(n, f"stopped {n} running steps and released their claims")
        click.echo(f"parent process (git) exited; {what}", err=True)
    if as_json:
        _emit_json(summary)
    else:
        click.echo(
            f"done: {summary.succeeded} succeeded, {summary.failed} failed, "
            f"{summary.recovered} recovered, {summary.lost_races} lost races"
            + (f", {summary.refused} refused (claim lost)" if summary.refused else "")
            + (f", {summary.landed} landed" if summary.landed else "")
            + (f", {summary.rejected} turned away by the merge queue" if summary.rejected else "")
            + (", interrupted" if summary.interrupted else "")
        )
    if summary.unreachable is not None:
        click.echo(f"{PROG}: {summary.unreachable}", err=True)
    if summary.stopped_by == "parent":
        return 129  # 128 + SIGHUP: the process it was started by hung up
    if summary.stopped_by == "SIGTERM":
        return 143  # 128 + SIGTERM, as a shell reports a process ended by it
    if summary.interrupted:
        return 130
    return 1 if summary.unreachable is not None else 0


@cli.command()
@click.option(
    "--remote",
    metavar="NAME",
    default=None,
    help="The remote to exchange with (default: `remote:` of frequency.yaml).",
)
@json_option
@pass_app
def sync(app: ops.App, remote: str | None, as_json: bool) -> int:
    """Exchange refs/frequency/* with a git remote, both ways.

    Fetches the remote's refs/frequency/*; each local ref follows the remote where it is
    behind; what this repository recorded that the remote lacks (work done offline, or
    results kept while the remote was unreachable) is pushed with the remote's value as
    the expected one. A ref both sides changed is kept here and reported, never forced.
    Exit 1 when something could not be exchanged.

    \b
    Examples:
      git freq sync
      git freq sync --remote origin --json
    """
    from freq.ops.remote import exchange

    done = exchange(app, remote)
    if as_json:
        _emit_json(done)
    else:
        click.echo(
            f"{done.remote}: {done.followed} ref(s) fetched, {len(done.pushed)} pushed"
            + (f", {len(done.replayed)} replayed onto the remote" if done.replayed else "")
            + (f", {len(done.lost)} moved meanwhile (run sync again)" if done.lost else "")
        )
        for line in done.refused:
            click.echo(f"refused: {line}", err=True)
        for line in done.diverged:
            click.echo(f"diverged: {line}", err=True)
    return 1 if done.refused or done.diverged else 0
