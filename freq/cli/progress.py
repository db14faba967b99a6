"""Progress of `git freq run` as text: a log line per outcome and, on a terminal, a live line.

Must not import dulwich, subprocess or pexpect; click is allowed only in freq/cli/*. Imported
by `run` when it starts (not by `--help`), since it needs freq.report.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

import click

from freq.report import Progress, Reporter


class TextReporter(Reporter):
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
            if progress.event in ("finished", "failed", "recovered", "lost", "landed", "rejected"):
                self._clear()
                click.echo(
                    f"{progress.event:9} {progress.factory}/{progress.subject} "
                    f"{progress.step} #{progress.attempt}: {progress.detail}"
                )
            elif progress.event in ("parked", "emitted", "discovered", "archived"):
                self._clear()
                who = f"{progress.factory}/{progress.subject}".rstrip("/")
                click.echo(f"{progress.event:9} {who}: {progress.detail}")
            elif progress.event == "draining":
                self._clear()
                n = int(progress.detail or 0)
                what = f"{n} running step{'s' if n != 1 else ''}" if n else "no running steps"
                click.echo(
                    f"draining {what}; Ctrl-C again to stop them" if n else f"stopping: {what}",
                    err=True,
                )
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
