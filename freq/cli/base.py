"""The root click group, its error boundary, and the options and helpers every command shares.

Must not import dulwich, subprocess or pexpect, nor the command modules (they import this
one); click is allowed only in freq/cli/*. Every action is a function in ops. The error
boundary (`FreqGroup.main`) is the one place that turns exceptions into one-line messages
and exit codes (0 ok, 1 failure, 2 usage, 130 interrupted; SPEC §6, STYLE habit 6).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from freq import __version__, ops, render
from freq.errors import EXIT_INTERRUPTED, EXIT_USAGE, ConfigError, FreqError

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
            _fail(render.error_line(exc), exc.exit_code, as_json=as_json, data=exc.as_json())
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
reason_option = click.option("--reason", default="", help="Why (recorded in the commit).")


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
