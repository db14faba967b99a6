"""Config files that are not what they should be: binary, not UTF-8, alias bombs, a file
named .frequency. Each is one problem line (or one error), never a traceback or a hang."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from freq.config import load_config
from freq.errors import ConfigError, NoConfig

from .conftest import FreqRepo

SEED = """\
factory_id: build
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
"""


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return [str(p) for p in info.value.problems]


def _folder(tmp_path: Path) -> Path:
    (tmp_path / ".frequency").mkdir()
    (tmp_path / ".frequency" / "build.yaml").write_text(SEED)
    return tmp_path / ".frequency"


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (PNG, "is not UTF-8 text (byte 0x89 at offset 0); is it a binary file?"),
        (b"\x1f\x8b\x08\x00", "is not UTF-8 text (byte 0x8b at offset 1); is it a binary file?"),
        (
            "caf\u00e9: 1\n".encode("latin-1"),
            "is not UTF-8 text (byte 0xe9 at offset 3); is it a binary file?",
        ),
        (b"\xfe\xff\x00f\x00a", "is not UTF-8 text (byte 0xfe at offset 0); is it a binary file?"),
        (
            b"ELF\x00\x01\x02",
            "invalid YAML: unacceptable character #x0000: special characters are not allowed",
        ),
        (
            b"key: \x1b[31mred\n",
            "invalid YAML: unacceptable character #x001b: special characters are not allowed",
        ),
    ],
)
def test_binary_and_non_utf8_files_are_one_problem(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    """A binary or non-UTF-8 .yaml is one problem naming the file; the others still load."""
    folder = _folder(tmp_path)
    (folder / "blob.yaml").write_bytes(content)
    assert _problems(tmp_path) == [f".frequency/blob.yaml: {reason}"]


def test_random_bytes_never_crash_the_loader(tmp_path: Path) -> None:
    """Whatever bytes a .yaml holds, loading ends in a Config or a ConfigError."""
    rng = random.Random(7)
    folder = _folder(tmp_path)
    for _ in range(200):
        (folder / "blob.yaml").write_bytes(rng.randbytes(rng.randrange(1, 64)))
        try:
            load_config(tmp_path)
        except ConfigError as exc:
            assert all("\n" not in str(p) for p in exc.problems)


def test_frequency_as_a_file_is_named(tmp_path: Path) -> None:
    """A file called .frequency is reported as such, not as a missing folder."""
    (tmp_path / ".frequency").write_text("max_parallel: 2\n")
    with pytest.raises(NoConfig) as info:
        load_config(tmp_path)
    assert info.value.one_line() == ".frequency is a file, not a folder; move it away"


@pytest.mark.parametrize(
    "command", [("status",), ("validate",), ("run", "--until-idle"), ("init",)]
)
def test_every_command_says_frequency_is_a_file(repo: FreqRepo, command: tuple[str, ...]) -> None:
    """Every command, init included, says it in one line and writes nothing."""
    (repo.path / ".frequency").write_text("factory_id: build\n")
    res = repo.run(*command).assert_failure()
    assert res.err == "git freq: .frequency is a file, not a folder; move it away\n"
    assert (repo.path / ".frequency").read_text() == "factory_id: build\n"
    assert repo.git("for-each-ref", "refs/frequency") == ""


def test_a_binary_file_through_the_cli(repo: FreqRepo) -> None:
    """`validate` and `run` print the one problem line, exit 1, and write no refs."""
    repo.write(".frequency/build.yaml", SEED)
    (repo.path / ".frequency" / "logo.yaml").write_bytes(PNG)
    for command in (("validate",), ("run", "--until-idle")):
        res = repo.run(*command).assert_failure()
        assert res.err == (
            ".frequency/logo.yaml: is not UTF-8 text (byte 0x89 at offset 0); "
            "is it a binary file?\n"
        )
    assert repo.git("for-each-ref", "refs/frequency") == ""
