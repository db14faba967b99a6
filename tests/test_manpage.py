"""git-freq(1): the committed page is what the commands say now, and `git freq --help` opens it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from freq.cli import cli
from freq.cli.manpage import FOLDER, pages

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = f"{Path(sys.executable).parent.name}/python -m freq.cli.manpage"


def _paths(group: click.Group, prefix: str = "git freq") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((f"{prefix} {name}", cmd))
        if isinstance(cmd, click.Group):
            out += _paths(cmd, f"{prefix} {name}")
    return out


def test_committed_pages_are_current() -> None:
    """share/man/man1/ holds exactly what the generator renders from today's commands."""
    for name, text in pages().items():
        committed = ROOT / FOLDER / name
        assert committed.is_file(), f"{committed} is missing; run `{REGENERATE}`"
        assert committed.read_text() == text, f"{committed} is stale; run `{REGENERATE}`"


def test_every_command_and_option_is_in_the_page() -> None:
    """Each command and subcommand has a section, and each of its options is listed."""
    page = pages()["git-freq.1"]
    for path, cmd in _paths(cli):
        assert f'.SS "{path.replace("-", chr(92) + "-")} ' in page, path
        for param in cmd.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert opt.replace("-", "\\-") in page, f"{path} {opt}"
    assert pages()["freq.1"] == ".so man1/git-freq.1\n"


def _venv_bin() -> Path:
    return Path(sys.executable).parent


@pytest.mark.e2e
def test_git_freq_help_opens_the_installed_page(tmp_path: Path) -> None:
    """The real git turns `git freq --help` into `man git-freq`; man finds the page the
    install put under <venv>/share/man/man1 from <venv>/bin on PATH."""
    if shutil.which("man") is None:
        pytest.skip("man is not installed: `git freq --help` shows the page through man(1)")
    installed = _venv_bin().parent / FOLDER / "git-freq.1"
    assert installed.is_file(), f"{installed} is missing; run `make install`"
    assert installed.read_text() == pages()["git-freq.1"], (
        f"{installed} is older than the committed page; run `make install`"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MANPATH", "MANOPT", "GIT_PAGER")}
    env.update(
        PATH=f"{_venv_bin()}{os.pathsep}{env.get('PATH', '')}",
        MANPAGER="cat",
        PAGER="cat",
        MANWIDTH="80",
    )
    res = subprocess.run(
        ["git", "freq", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "No manual entry" not in res.stderr
    lines = [" ".join(ln.split()) for ln in res.stdout.splitlines()]  # man justifies
    assert lines[lines.index("NAME") + 1].startswith("git-freq - Run factories of AI-agent")
    assert "git freq add [OPTIONS] FACTORY [SUBJECTS]..." in lines
