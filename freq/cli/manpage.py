"""The git-freq(1) manual page, rendered from the click commands so that it cannot drift.

Must not import dulwich, subprocess or pexpect; click is allowed only in freq/cli/*. The
command line never imports this module: `python -m freq.cli.manpage` rewrites the committed
pages under share/man/man1/ (the wheel installs them as data, see pyproject.toml), and a test
checks that they equal what this module renders now. `git freq --help` is git's: it runs
`git help freq`, which opens git-freq(1); `git freq -h` is click's own help.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from freq import __version__

PAGE = "git-freq"
ALIAS = "freq"  # the same program under its short name: freq(1) is a `.so` to git-freq(1)
FOLDER = Path("share/man/man1")  # relative to the repository root

_EXIT_STATUS = (
    ("0", "success"),
    ("1", "failure, or input that was refused (nothing was written)"),
    ("2", "usage error: the command line is malformed"),
    ("130", "interrupted"),
)
_FILES = (
    (".frequency/*.yaml", "the configuration: one file per factory, and frequency.yaml"),
    ("refs/frequency/*", "all state: subjects, locks, caps, control, dead-letter queue"),
    (".git/frequency/", "local files: full step logs, caches, worktrees"),
)


def _esc(text: str) -> str:
    """Text safe for troff: backslashes, minus signs (so options copy as typed), quotes,
    and lines that would start with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-").replace("'", "\\(aq")
    text = text.replace("`", "\\(ga")
    return "\n".join("\\&" + ln if ln.startswith(".") else ln for ln in text.split("\n"))


def _flags(opts: str) -> str:
    """`-n, --max-count INTEGER` with the flags in bold and their values in italics."""
    words = []
    for word in opts.split(" "):
        bare = word.rstrip(",")
        style = "B" if bare.startswith("-") else "I"
        words.append(f"\\f{style}{_esc(bare)}\\fR{word[len(bare) :]}")
    return " ".join(words)


def _help_text(cmd: click.Command) -> Iterator[str]:
    """The command's help as troff paragraphs; click's `\\b` paragraphs stay as written."""
    text = inspect.cleandoc(cmd.help or "").split("\f", 1)[0]
    for para in text.split("\n\n"):
        lines = para.split("\n")
        if lines[0].strip() == "\b":
            yield from (".PP", ".nf", *(_esc(ln) for ln in lines[1:]), ".fi")
        elif para.strip():
            yield from (".PP", _esc(" ".join(ln.strip() for ln in lines)))


def _options(ctx: click.Context, *, with_help: bool) -> Iterator[str]:
    for param in ctx.command.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        if not with_help and set(param.opts) & set(ctx.help_option_names):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            yield from (".TP", _flags(record[0]), _esc(record[1]))


def _commands(ctx: click.Context) -> Iterator[click.Context]:
    """Every command below `ctx`, depth first in name order, each with its own context."""
    group = ctx.command
    assert isinstance(group, click.Group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
        yield sub
        if isinstance(cmd, click.Group):
            yield from _commands(sub)


def render(root: click.Group, prog: str = "git freq") -> str:
    """The whole page in man(7) format."""
    ctx = click.Context(root, info_name=prog, **root.context_settings)
    summary = inspect.cleandoc(root.help or "").split("\n", 1)[0].rstrip(".")
    lines = [
        f'.TH {PAGE.upper()} 1 "" "{PAGE} {__version__}" "Frequency Manual"',
        ".SH NAME",
        f"{_esc(PAGE)} \\- {_esc(summary)}",
        ".SH SYNOPSIS",
        ".nf",
        f"\\fB{prog}\\fR [\\fB\\-C\\fR \\fIPATH\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        f"\\fB{ALIAS}\\fR [\\fB\\-C\\fR \\fIPATH\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".fi",
        ".SH DESCRIPTION",
        *_help_text(root),
        ".PP",
        _esc(
            f"`{prog}` and `{ALIAS}` are the same program. `{prog} --help` shows this page; "
            f"`{prog} -h` and `{prog} COMMAND -h` print short help. Every listing takes "
            "--json; errors are then a JSON object on stdout as well as one line on stderr."
        ),
        ".SH OPTIONS",
        *_options(ctx, with_help=True),
        ".SH COMMANDS",
    ]
    for sub in _commands(ctx):
        usage = " ".join(sub.command.collect_usage_pieces(sub))
        lines += [f'.SS "{_esc(sub.command_path)} {_esc(usage)}"', *_help_text(sub.command)]
        lines += list(_options(sub, with_help=False))
    lines.append(".SH EXIT STATUS")
    for code, what in _EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _esc(what)]
    lines.append(".SH FILES")
    for path, what in _FILES:
        lines += [".TP", f"\\fI{_esc(path)}\\fR", _esc(what)]
    lines += [
        ".SH SEE ALSO",
        "\\fBgit\\fR(1), \\fBgit\\-log\\fR(1), \\fBgit\\-for\\-each\\-ref\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """File name → text of every page under share/man/man1/."""
    from freq.cli import cli

    return {f"{PAGE}.1": render(cli), f"{ALIAS}.1": f".so man1/{PAGE}.1\n"}


def main(argv: list[str] | None = None) -> int:
    """Write the pages (`python -m freq.cli.manpage [--root DIR]`)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=Path(), help="the repository root")
    args = ap.parse_args(argv)
    folder = args.root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in pages().items():
        (folder / name).write_text(text)
        click.echo(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
