"""Running commands: `plan` shows what would run, `run` runs it, reporting progress as text.

Must not import dulwich, subprocess or pexpect (every action is a function in ops); click is
allowed only in freq/cli/*.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

import click

from freq import ops, render
from freq.cli.base import _emit_json, cli, json_option, pass_app
from freq.report import Progress, Reporter


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
            elif progress.event in ("parked", "emitted", "discovered"):
                self._clear()
                who = f"{progress.factory}/{progress.subject}".rstrip("/")
                click.echo(f"{progress.event:9} {who}: {progress.detail}")
            elif progress.event in ("emit", "discovery", "problem"):
                self._clear()
                who = f"{progress.factory}/{progress.subject}".strip("/")
                click.echo(f"warning: {who + ': ' if who else ''}{progress.detail}", err=True)
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
            + (f", {summary.refused} refused (claim lost)" if summary.refused else "")
            + (", interrupted" if summary.interrupted else "")
        )
    return 130 if summary.interrupted else 0
