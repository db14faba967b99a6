"""Subject commands: `add`, `status`, `show`, `log`, `transition` and `why`.

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import click

from freq import ops
from freq.cli.base import _emit_json, cli, json_option, pass_app, warn


def _text_of(file: BinaryIO) -> str:
    """The listing given to `--from` as text; one line (exit 1) if it is binary or not UTF-8."""
    raw, name = file.read(), getattr(file, "name", "-")
    where = "stdin" if name in ("-", "<stdin>") else click.format_filename(name)
    if b"\0" in raw:
        pos = raw.index(b"\0")
        problem = f"looks binary (a NUL byte at offset {pos})"
    else:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
    raise click.ClickException(
        f"--from {where} {problem}; nothing was added; "
        "it takes UTF-8 text, one NAME [KEY=VALUE ...] per line"
    )


@cli.command()
@click.argument("factory")
@click.argument("subjects", nargs=-1)
@click.option(
    "--from",
    "from_file",
    type=click.File("rb"),
    metavar="FILE",
    help="Read subjects from FILE (- for stdin): NAME [KEY=VALUE ...] per line.",
)
@click.option("--state", default=None, help="Start in this state instead of the initial one.")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="KEY=VALUE",
    help="Data for every subject added (repeatable).",
)
@click.option("--skip-existing", is_flag=True, help="Leave existing subjects alone.")
@click.option(
    "--reopen",
    is_flag=True,
    help="Start archived subjects again, their history going on from the archive.",
)
@json_option
@pass_app
def add(
    app: ops.App,
    factory: str,
    subjects: tuple[str, ...],
    from_file: Any,
    state: str | None,
    data: tuple[str, ...],
    skip_existing: bool,
    reopen: bool,
    as_json: bool,
) -> int:
    """Create subjects in FACTORY, all in one write (all of them or none).

    \b
    Examples:
      git freq add build app-1 app-2 --data owner=ana
      git freq add build --from apps.txt
      ls apps | git freq add build --from - --skip-existing
    """
    common = ops.parse_data(data, where="--data")
    items: list[tuple[str, dict[str, str]]] = [(s, dict(common)) for s in subjects]
    if from_file is not None:
        items += [(n, {**common, **d}) for n, d in ops.parse_subjects(_text_of(from_file))]
    res = ops.add_subjects(
        app, factory, items, state=state, skip_existing=skip_existing, reopen=reopen
    )
    if as_json:
        _emit_json(res)
    else:
        click.echo(
            f"added {len(res.added)} subject(s) to {res.factory} in {res.state}"
            + (f"; {len(res.skipped)} existed already" if res.skipped else "")
        )
    return 0


@cli.command()
@click.argument("factory", required=False)
@json_option
@pass_app
def status(app: ops.App, factory: str | None, as_json: bool) -> int:
    """Counts per state for every factory (or one), and running steps.

    \b
    Examples:
      git freq status
      git freq status build --json
    """
    from freq import render

    res = ops.status(app, factory)
    if as_json:
        _emit_json(res)
        return 0
    click.echo(render.status_text(res))
    warn(res.problems)
    return 0


@cli.command()
@click.argument("factory")
@click.argument("subject")
@json_option
@pass_app
def show(app: ops.App, factory: str, subject: str, as_json: bool) -> int:
    """One subject: state, attempts, data, last error, output tail, history.

    \b
    Example:
      git freq show build app-1
    """
    from freq import render

    res = ops.show(app, factory, subject)
    if as_json:
        _emit_json(res)
        return 0
    click.echo(render.show_text(res))
    warn(res.problems)
    return 0


@cli.command()
@click.argument("factory", required=False)
@click.argument("subject", required=False)
@click.option(
    "-n",
    "--max-count",
    "limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many commits (0: all).",
)
@json_option
@pass_app
def log(app: ops.App, factory: str | None, subject: str | None, limit: int, as_json: bool) -> int:
    """History from git: one subject, one factory, or the whole journal.

    \b
    Examples:
      git freq log build app-1
      git freq log -n 0 --json
    The same with plain git:
      git log refs/frequency/subjects/build/app-1
      git log --glob=refs/frequency
    """
    from freq import render

    res = ops.log(app, factory, subject, limit=limit or None)
    entries = res.entries
    warn(res.problems)
    if as_json:
        _emit_json(
            [
                {
                    "commit": e.oid,
                    "ref": e.ref,
                    "at": e.at,
                    "message": e.message,
                    "trailers": e.trailers,
                    "renewal": e.renewal,
                }
                for e in entries
            ]
        )
        return 0
    for line in render.history_lines(entries):
        click.echo(line)
    return 0


@cli.command()
@click.argument("factory")
@click.argument("subject")
@click.argument("state")
@click.option("--reason", required=True, help="Why (recorded in the commit).")
@json_option
@pass_app
def transition(
    app: ops.App, factory: str, subject: str, state: str, reason: str, as_json: bool
) -> int:
    """Move SUBJECT to STATE by hand, recorded with who and why.

    \b
    Example:
      git freq transition build app-7 selected --reason "retry after fixing the spec"
    """
    res = ops.transition(app, factory, subject, state, reason=reason)
    if as_json:
        _emit_json(res)
    else:
        click.echo(f"{factory}/{subject}: {res.from_state} -> {res.to_state} ({res.commit[:12]})")
        if res.interrupted_claim:
            click.echo(
                f"note: the running attempt on {res.interrupted_claim} will be refused", err=True
            )
    return 0


@cli.command()
@click.argument("factory")
@click.argument("subject")
@json_option
@pass_app
def why(app: ops.App, factory: str, subject: str, as_json: bool) -> int:
    """Every reason SUBJECT is not moving, with the values seen.

    \b
    Example:
      git freq why build app-7
    """
    res = ops.why(app, factory, subject)
    if as_json:
        _emit_json(res)
        return 0
    from freq import render

    click.echo(render.why_text(res))
    return 0
