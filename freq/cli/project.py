"""Project commands: `init` writes a starter .frequency/, `validate` checks it, `graph` draws it.

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import click

from freq import ops
from freq.cli.base import _emit_json, cli, json_option, pass_app


@cli.command()
@click.option(
    "--analyse",
    "--analyze",
    "analyse",
    is_flag=True,
    help="Write a build factory from the repository's own build files and CI.",
)
@click.option(
    "--agent",
    metavar="NAME",
    type=click.Choice(["claude", "codex", "gemini"]),
    help="With --analyse: let this agent CLI refine the files (kept only if they validate).",
)
@click.option("--force", is_flag=True, help="Overwrite existing configuration files.")
@json_option
@pass_app
def init(app: ops.App, analyse: bool, agent: str | None, force: bool, as_json: bool) -> int:
    """Write .frequency/: a commented starter, or (--analyse) one made from this repository.

    With --analyse it reads package.json (and the lock file's package manager),
    pyproject.toml, tox.ini, noxfile.py, Makefile, Cargo.toml, go.mod, Gemfile, pom.xml,
    build.gradle, a Dockerfile and the CI workflows, and writes a `build` factory: an agent
    implements, a different agent reviews, the project's install is the worktree setup, its
    lint, test and build commands are the merge check, and work lands on the default branch
    through the merge queue. It prints what it found and why it chose each step. An existing
    .frequency/ is never overwritten without --force. --agent NAME then has that agent CLI
    read the repository and refine the two files; its edit is kept only if it validates.

    \b
    Examples:
      git freq init && git freq add build my-app && git freq run --until-idle
      git freq init --analyse
      git freq init --analyse --agent claude --force
      git freq add build fix-login --data task="make the login form accept emails"
    """
    if agent is not None and not analyse:
        raise click.UsageError("--agent refines what --analyse writes: pass both")
    if analyse:
        res = ops.init_analysed(app, force=force, agent=agent)
        if as_json:
            _emit_json(res)
            return 0
        for line in res.found:
            click.echo(f"found {line}")
        if not res.found:
            click.echo("found no build files (commented examples were written instead)")
        if res.ci_commands:
            click.echo(f"CI runs {len(res.ci_commands)} commands (evidence, in build.yaml)")
        for choice in res.choices:
            click.echo(f"{choice.what}: {choice.value}")
            click.echo(f"  why: {choice.why}")
        for note in res.notes:
            click.echo(f"note: {note}", err=True)
        for path in res.written:
            click.echo(
                f"wrote {path}" + (f" (refined by {res.refined_by})" if res.refined_by else "")
            )
        click.echo(
            "next: git freq add build my-change --data task='...' && git freq run --until-idle"
        )
        return 0
    res0 = ops.init_project(app, force=force)
    if as_json:
        _emit_json(res0)
    else:
        for path in res0.written:
            click.echo(f"wrote {path}")
        click.echo("next: git freq add build my-app && git freq run --until-idle")
    return 0


@cli.command()
@click.option("--expand", is_flag=True, help="Print every factory in its expanded list form.")
@json_option
@pass_app
def validate(app: ops.App, expand: bool, as_json: bool) -> int:
    """Check every configuration file; report all problems with file and line.

    \b
    Examples:
      git freq validate
      git freq validate --expand     show `flow:` shorthand expanded
    """
    res = ops.validate(app, expand=expand)
    if as_json:
        _emit_json(res)
        return 0
    if expand and res.expanded is not None:
        from freq.config import dump_yaml

        for path, doc in res.expanded.items():
            click.echo(f"# {path}")
            click.echo(dump_yaml(doc).rstrip())
        return 0
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    n = len(res.factories)
    names = f" ({', '.join(res.factories)})" if n else ""
    click.echo(f"ok: {n} {'factory' if n == 1 else 'factories'}{names}")
    return 0


@cli.command()
@click.argument("factory", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Diagram language.",
)
@pass_app
def graph(app: ops.App, factory: str | None, fmt: str) -> int:
    """Draw factories (all, with the edges between them, when none is named).

    The output is a diagram, already machine-readable; there is no --json.

    \b
    Example:
      git freq graph --format dot | dot -Tsvg > factories.svg
    """
    from freq import render

    drawn = ops.graph_input(app, factory)
    click.echo(render.graph(drawn.factories, fmt, focus=drawn.focus))
    return 0


@cli.command()
@click.argument("factory", required=False)
@json_option
@pass_app
def discover(app: ops.App, factory: str | None, as_json: bool) -> int:
    """Create subjects from `subjects.discover` (every factory that has it, or FACTORY).

    \b
    Subjects that exist are left alone; `run` also discovers, once per poll_interval.
    Example:
      git freq discover apps
    """
    found = ops.discover(app, factory)
    if as_json:
        _emit_json(found)
        return 0
    for f in found:
        click.echo(f"{f.factory}: {len(f.added)} added, {f.existing} existed")
        for line in (*f.refused, *f.errors):
            click.echo(f"  warning: {line}", err=True)
    if not found:
        click.echo("no factory has subjects.discover")
    return 0
