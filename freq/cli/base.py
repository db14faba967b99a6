"""The root click group, its error boundary, and the options and helpers every command shares.

Must not import dulwich, subprocess or pexpect, nor the command modules (they import this
one); click is allowed only in freq/cli/*. Every action is a function in ops. The error
boundary (`FreqGroup.main`) is the one place that turns exceptions into one-line messages
and exit codes (0 ok, 1 failure, 2 usage, 130 interrupted; SPEC §6, STYLE habit 6).

Start-up cost: `--version`, `--help` and usage errors import only click and freq/cli/*, so
this module imports nothing else from freq at import time. The App is made on first use by
`pass_app` (a command that runs needs it; `--help` never does), ops resolves its actions
lazily, and freq.errors is imported by the boundary only once an exception reaches it: a
FreqError can only exist after its module was imported anyway.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from freq import __version__

if TYPE_CHECKING:
    from freq import ops

PROG = "git freq"
R = TypeVar("R")


def _fail(
    message: str, code: int, *, as_json: bool, data: dict[str, Any] | None = None
) -> NoReturn:
    if as_json:
        _emit_json({"error": data or {"message": message}})
    click.echo(f"{PROG}: {message}", err=True)
    sys.exit(code)


def _crash_report(exc: BaseException) -> str:
    import os
    import platform
    import tempfile
    import traceback
    from datetime import UTC, datetime

    from freq.secrets import Redactor

    secrets = Redactor.of_env(os.environ)  # a traceback may quote a key: never written
    fd, path = tempfile.mkstemp(prefix="freq-crash-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"git-freq {__version__}\npython {sys.version}\nplatform {platform.platform()}\n")
        now = datetime.now(UTC).isoformat()  # noqa: TID251 - a crash report, outside any plan
        f.write(secrets.text(f"argv {sys.argv}\ntime {now}\n\n"))
        f.write(secrets.text("".join(traceback.format_exception(exc))))
    return path


def _takes_json(cmd: click.Command) -> bool:
    return any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option))


def _interrupted(as_json: bool) -> NoReturn:
    from freq.errors import EXIT_INTERRUPTED

    _fail("interrupted", EXIT_INTERRUPTED, as_json=as_json)


def _report(exc: Exception, as_json: bool) -> NoReturn:
    """A FreqError as one line (a ConfigError as one line per problem); anything else as one
    line naming a crash report."""
    from freq.errors import ConfigError, FreqError

    if isinstance(exc, ConfigError):
        if as_json:
            _emit_json({"error": exc.as_json()})
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        if len(exc.problems) > 1:
            click.echo(f"{PROG}: {len(exc.problems)} problems; nothing was run", err=True)
        sys.exit(exc.exit_code)
    if isinstance(exc, FreqError):
        from freq.render import error_line, hint_text

        data = exc.as_json()  # the hint as data, and as the words this front end uses
        data["hint"], data["next"] = (hint_text(exc.hint) if exc.hint else None), data["hint"]
        _fail(error_line(exc), exc.exit_code, as_json=as_json, data=data)
    path = _crash_report(exc)
    _fail(f"internal error: {type(exc).__name__}: {exc} (details in {path})", 1, as_json=as_json)


class FreqGroup(click.Group):
    """A click group whose `main` is Frequency's single error boundary."""

    group_class = type  # subgroups (`dlq`) are FreqGroups too, for `parse_args` below

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """A bare call (`git freq`, `git freq dlq`) lists the commands and exits 0: asking
        what there is is not a usage error (click would exit 2)."""
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

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
        # Shell completion (click's): `_GIT_FREQ_COMPLETE=bash_source git-freq` prints the
        # script for git-freq, `_FREQ_COMPLETE=...` for freq. Click derives the variable and
        # the command the script completes from the program name, which must be the
        # executable's, not the two words `git freq` of the usage lines.
        exe = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        exe = exe if exe in ("git-freq", "freq") else "git-freq"
        var = complete_var or f"_{exe.replace('-', '_').upper()}_COMPLETE"
        prog = exe if var in os.environ else PROG
        try:
            rv = super().main(argv, prog, var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            _interrupted(as_json)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx else PROG
            # `--json` on a command without that option (`graph --json`) is the mistake
            # itself: report it as text only
            as_json = as_json and (exc.ctx is None or _takes_json(exc.ctx.command))
            _fail(f"{exc.format_message()} (see `{cmd} --help`)", exc.exit_code, as_json=as_json)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code, as_json=as_json)
        except KeyboardInterrupt:
            _interrupted(as_json)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:  # the boundary: FreqErrors and anything unexpected, one line
            _report(exc, as_json)
        sys.exit(rv if isinstance(rv, int) else 0)


def app_of(ctx: click.Context) -> ops.App:
    """This invocation's App, made on first use and closed with the root context."""
    root = ctx.find_root()
    app: ops.App | None = root.meta.get("freq.app")
    if app is None:
        from freq import ops

        app = root.meta["freq.app"] = ops.App(root.params.get("directory") or ".")
        root.call_on_close(app.close)
    return app


def pass_app(f: Callable[..., R]) -> Callable[..., R]:
    """Pass this invocation's App as the first argument (click's make_pass_decorator needs
    the class at import time; this does not)."""

    @functools.wraps(f)
    def new_func(*args: Any, **kwargs: Any) -> R:
        ctx = click.get_current_context()
        return ctx.invoke(f, app_of(ctx), *args, **kwargs)

    return new_func


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
reason_option = click.option("--reason", default="", help="Why (recorded in the commit).")


def warn(problems: Sequence[str]) -> None:
    """Each problem found while reading state, as a `warning:` line on stderr."""
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


def _emit_json(value: Any) -> None:
    """`value` as JSON on stdout: indented on a terminal, one line when piped (`plan --json`
    on 10,000 subjects is 2.4 MB; indenting forces json's pure-Python encoder, 3x slower)."""
    import json

    indent = 2 if sys.stdout.isatty() else None
    try:
        text = json.dumps(value, default=_plain, ensure_ascii=False, indent=indent)
    except TypeError:  # a dict with keys json refuses (tuples): the exact, slower walk
        from freq import render

        text = json.dumps(render.jsonable(value), ensure_ascii=False, indent=indent)
    click.echo(text)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """One level of render.jsonable, as json's `default` hook: the C encoder walks the rest
    (5x faster than converting the whole tree first). tests/test_cli_json.py checks that
    both agree on every command's result."""
    names = _FIELDS.get(type(value))
    if names is None:
        import dataclasses

        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            from freq import render

            return render.jsonable(value)  # enums, datetimes, mappings, durations
        names = _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    return {name: getattr(value, name) for name in names}


@click.group(cls=FreqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C", "directory", default=".", metavar="PATH", help="Run as if started in PATH (like git -C)."
)
@click.version_option(__version__, prog_name="git-freq")
def cli(directory: str) -> None:
    """Run factories of AI-agent and shell steps; all state lives in git.

    \b
    Examples (a quick tour):
      git freq init --analyse           a build factory from this repository's files
      git freq init                     write a starter .frequency/
      git freq add build app-1 app-2    create subjects
      git freq run --until-idle         run steps until nothing is runnable
      git freq status                   counts per state
      git log --glob=refs/frequency     the audit trail, with plain git
    """
