"""The command line: the only module importing click; parses, calls ops, renders, exits.

Must not touch git or processes directly: every action is a function in ops. The error
boundary (`FreqGroup.main`) is the one place that turns exceptions into one-line messages
and exit codes (0 ok, 1 failure, 2 usage, 130 interrupted; SPEC §6, STYLE habit 6).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from freq import __version__, ops, render
from freq.config import dump_yaml
from freq.errors import EXIT_INTERRUPTED, EXIT_USAGE, ConfigError, FreqError
from freq.report import Progress, Reporter

PROG = "git freq"


def _fail(
    message: str, code: int, *, as_json: bool, data: dict[str, Any] | None = None
) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": data or {"message": message}}, indent=2))
    click.echo(f"{PROG}: {message}", err=True)
    sys.exit(code)


def _crash_report(exc: BaseException) -> str:
    fd, path = tempfile.mkstemp(prefix="freq-crash-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"git-freq {__version__}\npython {sys.version}\nplatform {platform.platform()}\n")
        now = datetime.now(UTC).isoformat()  # noqa: TID251 - a crash report, outside any plan
        f.write(f"argv {sys.argv}\ntime {now}\n\n")
        f.write("".join(traceback.format_exception(exc)))
    return path


class FreqGroup(click.Group):
    """A click group whose `main` is Frequency's single error boundary."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv
        try:
            rv = super().main(argv, PROG, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            _fail("interrupted", EXIT_INTERRUPTED, as_json=as_json)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx else PROG
            _fail(f"{exc.format_message()} (see `{cmd} --help`)", EXIT_USAGE, as_json=as_json)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code, as_json=as_json)
        except ConfigError as exc:
            if as_json:
                click.echo(json.dumps({"error": exc.as_json()}, indent=2))
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            if len(exc.problems) > 1:
                click.echo(f"{PROG}: {len(exc.problems)} problems; nothing was run", err=True)
            sys.exit(exc.exit_code)
        except FreqError as exc:
            _fail(exc.one_line(), exc.exit_code, as_json=as_json, data=exc.as_json())
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED, as_json=as_json)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:  # the boundary: anything unexpected becomes one line
            path = _crash_report(exc)
            _fail(
                f"internal error: {type(exc).__name__}: {exc} (details in {path})",
                1,
                as_json=as_json,
            )
        sys.exit(rv if isinstance(rv, int) else 0)


pass_app = click.make_pass_decorator(ops.App)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(render.jsonable(value), indent=2, ensure_ascii=False))


@click.group(cls=FreqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C", "directory", default=".", metavar="PATH", help="Run as if started in PATH (like git -C)."
)
@click.version_option(__version__, prog_name="git-freq")
@click.pass_context
def cli(ctx: click.Context, directory: str) -> None:
    """Run factories of AI-agent and shell steps; all state lives in git.

    \b
    Quick tour:
      git freq init                     write a starter .frequency/
      git freq add build app-1 app-2    create subjects
      git freq run --until-idle         run steps until nothing is runnable
      git freq status                   counts per state
      git log --glob=refs/frequency     the audit trail, with plain git
    """
    app = ops.App(directory)
    ctx.obj = app
    ctx.call_on_close(app.close)


# ---------------------------------------------------------------- init / validate


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite existing starter files.")
@json_option
@pass_app
def init(app: ops.App, force: bool, as_json: bool) -> int:
    """Write a commented starter .frequency/ with the seed's build factory.

    \b
    Example:
      git freq init && git freq add build my-app && git freq run --until-idle
    """
    res = ops.init_project(app, force=force)
    if as_json:
        _emit_json(res)
    else:
        for path in res.written:
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
        for path, doc in res.expanded.items():
            click.echo(f"# {path}")
            click.echo(dump_yaml(doc).rstrip())
        return 0
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"ok: {len(res.factories)} factories ({', '.join(res.factories)})")
    return 0


# ---------------------------------------------------------------- subjects


@cli.command()
@click.argument("factory")
@click.argument("subjects", nargs=-1)
@click.option(
    "--from",
    "from_file",
    type=click.File("r"),
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
    as_json: bool,
) -> int:
    """Create subjects in FACTORY, all in one write (all of them or none).

    \b
    Examples:
      git freq add build app-1 app-2 --data owner=ana
      git freq add build --from apps.txt
      ls apps | git freq add build --from - --skip-existing
    """
    common = ops.parse_data(data)
    items: list[tuple[str, dict[str, str]]] = [(s, dict(common)) for s in subjects]
    if from_file is not None:
        items += [(n, {**common, **d}) for n, d in ops.parse_subjects(from_file.read())]
    res = ops.add_subjects(app, factory, items, state=state, skip_existing=skip_existing)
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
    """Counts per state for every factory (or one), and running steps."""
    res = ops.status(app, factory)
    if as_json:
        _emit_json(res)
        return 0
    click.echo(render.status_text(res))
    for problem in res.problems:
        click.echo(f"warning: {problem}", err=True)
    return 0


@cli.command()
@click.argument("factory")
@click.argument("subject")
@json_option
@pass_app
def show(app: ops.App, factory: str, subject: str, as_json: bool) -> int:
    """One subject: state, attempts, data, last error, output tail, history."""
    res = ops.show(app, factory, subject)
    if as_json:
        _emit_json(res)
        return 0
    lines = render.subject_text(res.subject, res.tip)
    if res.output_tail.strip():
        lines += ["  output (tail):"] + [f"    {ln}" for ln in res.output_tail.splitlines()[-10:]]
    lines += ["  history:"] + [f"    {ln}" for ln in render.history_lines(res.history)]
    click.echo("\n".join(lines))
    return 0


@cli.command()
@click.argument("factory", required=False)
@click.argument("subject", required=False)
@click.option(
    "-n",
    "--max-count",
    "limit",
    type=int,
    default=50,
    show_default=True,
    help="Show at most this many commits (0: all).",
)
@json_option
@pass_app
def log(app: ops.App, factory: str | None, subject: str | None, limit: int, as_json: bool) -> int:
    """History from git: one subject, one factory, or the whole journal.

    \b
    The same with plain git:
      git log refs/frequency/subjects/build/app-1
      git log --glob=refs/frequency
    """
    entries = ops.log(app, factory, subject, limit=limit or None)
    if as_json:
        _emit_json(
            [
                {
                    "commit": e.oid,
                    "ref": e.ref,
                    "at": e.at,
                    "message": e.message,
                    "trailers": e.trailers,
                }
                for e in entries
            ]
        )
        return 0
    for line in render.history_lines(entries):
        click.echo(line)
    return 0


# ---------------------------------------------------------------- planning and running


@cli.command("plan")
@click.option("--factory", "factories", multiple=True, help="Only this factory (repeatable).")
@json_option
@pass_app
def plan_cmd(app: ops.App, factories: tuple[str, ...], as_json: bool) -> int:
    """What would run now, and what waits and why. Changes nothing."""
    p = ops.plan_now(app, factories)
    if as_json:
        _emit_json(p)
    else:
        click.echo(render.plan_text(p))
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


class _TextReporter(Reporter):
    """Log lines per outcome; on a terminal, also a live line of running steps."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tty = sys.stdout.isatty()
        self.running: dict[str, float] = {}
        self.lock = threading.Lock()

    def emit(self, progress: Progress) -> None:
        if self.as_json:
            return
        key = f"{progress.factory}/{progress.subject} {progress.step}"
        with self.lock:
            if progress.event == "started":
                self.running[key] = time.monotonic()
            elif progress.event in ("finished", "failed", "lost"):
                self.running.pop(key, None)
            if progress.event in ("finished", "failed", "recovered", "lost"):
                self._clear()
                click.echo(
                    f"{progress.event:9} {progress.factory}/{progress.subject} "
                    f"{progress.step} #{progress.attempt}: {progress.detail}"
                )
            self._live()

    def _clear(self) -> None:
        if self.tty:
            click.echo("\r\033[K", nl=False)

    def _live(self) -> None:
        if not self.tty or not self.running:
            return
        now = time.monotonic()
        parts = [f"{k} {now - t:.1f}s" for k, t in sorted(self.running.items())[:4]]
        more = f" +{len(self.running) - 4}" if len(self.running) > 4 else ""
        width = shutil.get_terminal_size().columns - 1
        click.echo(("\r\033[Krunning: " + ", ".join(parts) + more)[: width + 4], nl=False)


@cli.command()
@click.option("--once", is_flag=True, help="Run one planning cycle and wait for its steps.")
@click.option("--until-idle", is_flag=True, help="Stop when nothing is runnable or running.")
@click.option("--factory", "factories", multiple=True, help="Only this factory (repeatable).")
@click.option("--max-parallel", type=int, default=None, help="Override the global cap.")
@json_option
@pass_app
def run(
    app: ops.App,
    once: bool,
    until_idle: bool,
    factories: tuple[str, ...],
    max_parallel: int | None,
    as_json: bool,
) -> int:
    """Run steps: plan, claim, run, record; greedily, under every cap.

    \b
    Examples:
      git freq run --until-idle
      git freq run --once --factory build
      git freq run --max-parallel 8
    """
    if once and until_idle:
        raise click.UsageError("--once and --until-idle exclude each other")
    summary = ops.run(
        app,
        once=once,
        until_idle=until_idle,
        factories=factories,
        max_parallel=max_parallel,
        reporter=_TextReporter(as_json),
        handle_signals=True,
    )
    if as_json:
        _emit_json(summary)
    else:
        click.echo(
            f"done: {summary.succeeded} succeeded, {summary.failed} failed, "
            f"{summary.recovered} recovered, {summary.lost_races} lost races"
            + (", interrupted" if summary.interrupted else "")
        )
    return 130 if summary.interrupted else 0


# ---------------------------------------------------------------- control


def _echo_control(res: ops.ControlResult, as_json: bool) -> int:
    if as_json:
        _emit_json(res)
    else:
        state = "paused" if res.paused else "running"
        click.echo(f"{res.factory}: {state}, autonomy {res.autonomy}")
    return 0


reason_option = click.option("--reason", default="", help="Why (recorded in the commit).")


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
    """Let a paused FACTORY claim again."""
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
@click.option("--all", "include_free", is_flag=True, help="Include released and expired locks.")
@json_option
@click.pass_context
def locks(ctx: click.Context, include_free: bool, as_json: bool) -> int:
    """List named locks: holder, age, expiry.

    \b
    Examples:
      git freq locks --all
      git freq locks break deploy --reason "holder host is gone"
    """
    if ctx.invoked_subcommand is not None:
        return 0
    rows = ops.list_locks(ctx.find_object(ops.App), include_free=include_free)  # type: ignore[arg-type]
    if as_json:
        _emit_json(rows)
        return 0
    if not rows:
        click.echo("no locks held" if not include_free else "no locks")
        return 0
    click.echo(
        render.table(
            [
                [
                    r.name,
                    r.holder,
                    r.subject,
                    f"{r.age_seconds:.0f}s",
                    r.expires_at,
                    "held" if r.held else "free",
                ]
                for r in rows
            ],
            ["lock", "holder", "subject", "age", "expires", ""],
        )
    )
    return 0


@locks.command("break")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded in the commit).")
@json_option
@pass_app
def locks_break(app: ops.App, name: str, reason: str, as_json: bool) -> int:
    """Release lock NAME by hand, whoever holds it."""
    row = ops.break_lock(app, name, reason=reason)
    if as_json:
        _emit_json(row)
    else:
        click.echo(f"broke lock {name} (was held by {row.holder} for {row.subject})")
    return 0


# ---------------------------------------------------------------- dead-letter queue


@cli.group()
def dlq() -> None:
    """The dead-letter queue: failures that stopped retrying, and their root cause.

    \b
    Examples:
      git freq dlq list
      git freq dlq show build#3
      git freq dlq requeue build#3 --reason "fixed the API key"
      git log refs/frequency/dlq/build          # the same queue with plain git
    """


@dlq.command("list")
@click.argument("factory", required=False)
@click.option("--all", "include_requeued", is_flag=True, help="Include requeued entries.")
@json_option
@pass_app
def dlq_list(app: ops.App, factory: str | None, include_requeued: bool, as_json: bool) -> int:
    """Entries waiting for a person (newest first)."""
    rows = ops.dlq_list(app, factory, include_requeued=include_requeued)
    if as_json:
        _emit_json(rows)
        return 0
    if not rows:
        click.echo("the dead-letter queue is empty")
        return 0
    click.echo(
        render.table(
            [
                [
                    r.id,
                    r.commit[:10],
                    f"{r.factory}/{r.subject}",
                    f"{r.step} #{r.attempt}",
                    r.failure_class,
                    r.reason[:60],
                    r.requeued_as or "",
                ]
                for r in rows
            ],
            ["id", "commit", "subject", "step", "class", "reason", "requeued as"],
        )
    )
    return 0


@dlq.command("show")
@click.argument("entry_id", metavar="ID")
@json_option
@pass_app
def dlq_show(app: ops.App, entry_id: str, as_json: bool) -> int:
    """One entry: failure, class and reason, output tail. ID is factory#N or a commit id."""
    res = ops.dlq_show(app, entry_id)
    if as_json:
        _emit_json(res)
        return 0
    e = res.entry
    lines = [
        f"{e.id} ({e.commit[:12]})  {e.factory}/{e.subject}",
        f"  step:     {e.step}, attempt {e.attempt}, failed in {res.state}",
        f"  class:    {e.failure_class} ({e.reason})",
        f"  exit:     {res.exit_code}" + (f", {res.duration_ms} ms" if res.duration_ms else ""),
        f"  subject:  {res.subject_commit[:12]}",
        f"  at:       {e.at}",
    ]
    if res.question:
        lines.append(f"  question: {res.question}")
    lines.append(
        f"  status:   requeued as {e.requeued_as}"
        if e.requeued_as
        else f"  status:   waiting (`git freq dlq requeue {e.id}`)"
    )
    if res.output_tail.strip():
        lines += ["  output (tail):"] + [f"    {ln}" for ln in res.output_tail.splitlines()[-20:]]
    click.echo("\n".join(lines))
    return 0


@dlq.command("requeue")
@click.argument("entry_id", metavar="ID")
@click.option("--reason", default="", help="Why (recorded in the requeue entry).")
@json_option
@pass_app
def dlq_requeue(app: ops.App, entry_id: str, reason: str, as_json: bool) -> int:
    """Put the subject back in the state it failed in, with a fresh attempt budget."""
    res = ops.dlq_requeue(app, entry_id, reason=reason)
    if as_json:
        _emit_json(res)
    else:
        click.echo(
            f"requeued {res.entry} as {res.requeue_entry}: {res.factory}/{res.subject} "
            f"-> {res.state}"
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
    click.echo(f"{factory}/{subject} [{res.state}]:")
    for reason in res.reasons:
        click.echo(f"  - {reason}")
    return 0


@cli.command()
@click.argument("factory", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@pass_app
def graph(app: ops.App, factory: str | None, fmt: str) -> int:
    """Draw factories (all, with the edges between them, when none is named).

    \b
    Example:
      git freq graph --format dot | dot -Tsvg > factories.svg
    """
    click.echo(render.graph(ops.graph_input(app, factory).factories, fmt))
    return 0


def main() -> None:
    """Console entry point (`git-freq`, `freq`)."""
    cli.main()
