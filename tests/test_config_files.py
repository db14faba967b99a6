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


def _bomb(levels: int) -> str:
    """A "billion laughs" document: each level lists the previous one ten times."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels + 1):
        lines.append(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_anything_walks_it(tmp_path: Path) -> None:
    """10**10 nodes once expanded: refused from the composed graph (walking it would hang)."""
    folder = _folder(tmp_path)
    (folder / "bomb.yaml").write_text(_bomb(9))
    assert _problems(tmp_path) == [
        ".frequency/bomb.yaml: its anchors and aliases expand to more than 100,000 nodes "
        "(a billion-laughs bomb?)"
    ]


def test_a_bomb_hidden_under_a_merge_key_is_refused(tmp_path: Path) -> None:
    """The bomb inside a factory file, reached through `<<:`, is measured the same way."""
    folder = _folder(tmp_path)
    text = _bomb(8) + "x: {<<: {a: *l8}}\n"
    (folder / "bomb.yaml").write_text(text)
    [problem] = _problems(tmp_path)
    assert problem.startswith(".frequency/bomb.yaml: its anchors and aliases expand")


def test_modest_sharing_through_aliases_still_loads(tmp_path: Path) -> None:
    """One anchor merged into 300 steps stays far below the bound and loads."""
    folder = _folder(tmp_path)
    steps = "\n".join(f"  - {{<<: *common, id: s{k}}}" for k in range(1, 300))
    (folder / "wide.yaml").write_text(
        "factory_id: wide\nstate: {initial: a, terminal: [b]}\nsteps:\n"
        "  - &common {id: s0, from_states: [a], to_state: b, run: x, retry: {max_attempts: 2}}\n"
        f"{steps}\n"
    )
    wide = load_config(tmp_path).factory("wide")
    assert wide is not None
    assert [s.id for s in wide.steps[-2:]] == ["s298", "s299"]
    assert {s.retry.max_attempts for s in wide.steps} == {2}


@pytest.mark.parametrize(("depth", "shown"), [(70, 64), (3000, 64)])
def test_deep_nesting_is_one_problem(tmp_path: Path, depth: int, shown: int) -> None:
    """Nesting deeper than 64 levels is refused, even past Python's recursion limit."""
    folder = _folder(tmp_path)
    (folder / "deep.yaml").write_text("x: " + "[" * depth + "]" * depth + "\n")
    assert _problems(tmp_path) == [f".frequency/deep.yaml: nested more than {shown} levels deep"]


def test_a_list_as_a_mapping_key_is_one_problem(tmp_path: Path) -> None:
    """`? [a, b]` keys cannot be constructed; the refusal has its line, not a TypeError."""
    folder = _folder(tmp_path)
    (folder / "odd.yaml").write_text("factory_id: odd\n? [a, b]\n: 1\n")
    [problem] = _problems(tmp_path)
    assert problem.startswith(".frequency/odd.yaml:2: invalid YAML: ")


def test_a_too_long_timeout_through_the_cli(repo: FreqRepo) -> None:
    """`timeout: 99999999999d` was an internal error (OverflowError); now one problem line."""
    repo.write(".frequency/build.yaml", SEED + "    timeout: 99999999999d\n")
    for command in (("validate",), ("run", "--until-idle")):
        res = repo.run(*command).assert_failure()
        assert res.err == (
            ".frequency/build.yaml:9: $.steps[0].timeout: "
            "'99999999999d' is too long (at most 10000d)\n"
        )
