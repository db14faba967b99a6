"""Dead-letter queue commands: the `dlq` group with `list`, `show`, `requeue`, `diagnose`
and `fix`.

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import click

from freq import ops
from freq.cli.base import _emit_json, cli, json_option, pass_app, warn


@cli.group()
def dlq() -> None:
    """The dead-letter queue: failures that stopped retrying, and their root cause.

    \b
    Examples:
      git freq dlq list
      git freq dlq show build#3
      git freq dlq requeue build#3 --reason "fixed the API key"
      git freq dlq diagnose build#3             # the diagnose agent finds the root cause
      git freq dlq fix build#3                  # requeue, handing that diagnosis over
      git log refs/frequency/dlq/build          # the same queue with plain git
    """


@dlq.command("list")
@click.argument("factory", required=False)
@click.option("--all", "include_requeued", is_flag=True, help="Include requeued entries.")
@json_option
@pass_app
def dlq_list(app: ops.App, factory: str | None, include_requeued: bool, as_json: bool) -> int:
    """Entries waiting for a person (newest first).

    \b
    Examples:
      git freq dlq list build
      git freq dlq list --all --json
    """
    from freq import render

    res = ops.dlq_list(app, factory, include_requeued=include_requeued)
    rows = res.rows
    warn(res.problems)
    if as_json:
        _emit_json(rows)
        return 0
    if not rows:
        click.echo("the dead-letter queue is empty")
        return 0
    click.echo(render.dlq_list_text(rows))
    return 0


@dlq.command("show")
@click.argument("entry_id", metavar="ID")
@json_option
@pass_app
def dlq_show(app: ops.App, entry_id: str, as_json: bool) -> int:
    """One entry: failure, class and reason, output tail. ID is factory#N or a commit id.

    \b
    Example:
      git freq dlq show build#3
    """
    res = ops.dlq_show(app, entry_id)
    if as_json:
        _emit_json(res)
        return 0
    from freq import render

    click.echo(render.dlq_show_text(res))
    return 0


@dlq.command("requeue")
@click.argument("entry_id", metavar="ID")
@click.option("--reason", default="", help="Why (recorded in the requeue entry).")
@json_option
@pass_app
def dlq_requeue(app: ops.App, entry_id: str, reason: str, as_json: bool) -> int:
    """Put the subject back in the state it failed in, with a fresh attempt budget.

    \b
    Example:
      git freq dlq requeue build#3 --reason "rate limit raised"
    """
    res = ops.dlq_requeue(app, entry_id, reason=reason)
    if as_json:
        _emit_json(res)
    else:
        click.echo(
            f"requeued {res.entry} as {res.requeue_entry}: {res.factory}/{res.subject} "
            f"-> {res.state}"
        )
    return 0


@dlq.command("diagnose")
@click.argument("entry_id", metavar="ID")
@json_option
@pass_app
def dlq_diagnose(app: ops.App, entry_id: str, as_json: bool) -> int:
    """Run the `diagnose` agent of frequency.yaml on a failure and append its root cause.

    \b
    It sees the step's configuration and prompt, the failed attempt's output tail and the
    subject's recent history, and changes nothing but the queue: the diagnosis is a new
    entry linked to ID (`git freq dlq show ID` shows it, `git freq dlq fix ID` uses it).

    \b
    Example:
      git freq dlq diagnose build#3 && git freq dlq show build#3
    """
    if not as_json:
        click.echo(f"diagnosing {entry_id} with the diagnose agent ...", err=True)
    res = ops.dlq_diagnose(app, entry_id)
    if as_json:
        _emit_json(res)
        return 0
    cost = f", ${res.cost_usd:.4f}" if res.cost_usd is not None else ""
    click.echo(f"{res.diagnosis_entry}: diagnosis of {res.entry} by {res.agent}{cost}")
    click.echo(f"  root cause: {res.root_cause}")
    click.echo(f"  requeue with it: git freq dlq fix {res.entry}")
    return 0


@dlq.command("fix")
@click.argument("entry_id", metavar="ID")
@click.option("--reason", default="", help="Why (recorded in the requeue entry).")
@json_option
@pass_app
def dlq_fix(app: ops.App, entry_id: str, reason: str, as_json: bool) -> int:
    """Requeue a failure with its diagnosis, which the next attempt gets as {diagnosis}.

    \b
    Example:
      git freq dlq fix build#3 --reason "diagnosis looks right"
    """
    res = ops.dlq_fix(app, entry_id, reason=reason)
    if as_json:
        _emit_json(res)
    else:
        click.echo(
            f"requeued {res.entry} as {res.requeue_entry} with its diagnosis: "
            f"{res.factory}/{res.subject} -> {res.state}"
        )
    return 0
