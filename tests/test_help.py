"""Every command's --help carries a worked example, and click's shell completion scripts are
produced for bash, zsh and fish (README: "Shell completion")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from freq.cli import cli


def _commands(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))
    yield path


ALL = sorted(_commands(cli))


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "git-freq")
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    """`git freq ... -h` shows an Example(s) block with a `git freq` (or, for what the hook
    shims run, `git-freq`) command line in it."""
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, [*path, "-h"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Example" in res.output, f"`git freq {' '.join(path)} -h` has no example"
    after = res.output.split("Example", 1)[1]
    assert "git freq" in after or "git-freq" in after, res.output


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _git_freq_completion git-freq"),
        ("zsh", "#compdef git-freq"),
        ("fish", "complete --no-files --command git-freq"),
    ],
)
def test_completion_script_is_produced_for_each_shell(
    shell: str, marker: str, tmp_path: Path
) -> None:
    """`_GIT_FREQ_COMPLETE={shell}_source git-freq` prints click's script for that shell,
    registered for the git-freq command (not for the two words of `git freq`)."""
    exe = Path(sys.executable).parent / "git-freq"
    env = {**os.environ, "_GIT_FREQ_COMPLETE": f"{shell}_source"}
    out = subprocess.run([exe], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert marker in out.stdout, out.stdout


def test_completion_completes_commands_and_freq_has_its_own(tmp_path: Path) -> None:
    """Completing `git-freq in` offers init; `freq` answers `_FREQ_COMPLETE`."""
    exe = Path(sys.executable).parent / "git-freq"
    env = {**os.environ, "_GIT_FREQ_COMPLETE": "bash_complete", "COMP_WORDS": "git-freq in"}
    env["COMP_CWORD"] = "1"
    out = subprocess.run([exe], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["plain,init"]
    env = {**os.environ, "_FREQ_COMPLETE": "zsh_source"}
    freq = Path(sys.executable).parent / "freq"
    out = subprocess.run([freq], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "#compdef freq" in out.stdout


GIT_BASH_COMPLETION = Path("/usr/share/bash-completion/completions/git")


@pytest.mark.skipif(not GIT_BASH_COMPLETION.is_file(), reason="git's bash completion is absent")
def test_the_readme_git_freq_function_completes_two_words(tmp_path: Path) -> None:
    """The README's `_git_freq` makes git's own bash completion complete `git freq ...`
    through click's: sub-commands and options."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (function,) = re.findall(r"^```bash\n(_git_freq\(\).*?)^```", readme, re.M | re.S)
    probe = f"""
source {GIT_BASH_COMPLETION}
{function}
ask() {{
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
    __git_wrap__git_main; echo "${{COMPREPLY[*]}}"
}}
ask git freq in
ask git freq dlq ""
ask git freq init --an
"""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-c", probe], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.splitlines() == [
        "init",
        "diagnose fix list requeue show",
        "--analyse --analyze",
    ]
