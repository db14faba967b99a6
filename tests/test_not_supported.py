"""Fields the schema describes but `run` does not carry out yet are refused, not ignored.

Each is one problem line from `validate` and from `run` (exit 1), and nothing is written
under refs/frequency. See docs/config.md, "Not supported yet".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from freq import checks

from .conftest import FreqRepo

BUILD = """\
factory_id: build
state:
  initial: selected
  terminal: [done]
steps:
  - id: implement
    from_states: [selected]
    to_state: done
    run: echo "implementing $FREQ_SUBJECT"
"""

CASES = {
    "changed.since": (
        "build.yaml",
        "    requires: [{changed: {paths: [src], since: HEAD~3}}]\n",
        ".frequency/build.yaml:10: $.steps[0].requires[0].changed.since: "
        + checks.SINCE.format(since="HEAD~3"),
    ),
}


def _with(name: str, text: str) -> dict[str, str]:
    """The project's files with `text` added (to the step, or as frequency.yaml)."""
    if name == "build.yaml":
        return {"build.yaml": BUILD + text}
    return {"build.yaml": BUILD, "frequency.yaml": text}


def _refs(repo: FreqRepo) -> str:
    return repo.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/frequency")


@pytest.mark.parametrize("field", list(CASES))
def test_validate_and_run_refuse_the_field(freq_repo, field: str) -> None:  # type: ignore[no-untyped-def]
    """validate and run exit 1 with exactly the one line; refs/frequency does not move."""
    repo: FreqRepo = freq_repo({".frequency/build.yaml": BUILD})
    repo.run("add", "build", "a").assert_success()
    before = _refs(repo)
    name, text, line = CASES[field]
    for rel, content in _with(name, text).items():
        (repo.path / ".frequency" / rel).write_text(content)
    for command in (("validate",), ("run", "--until-idle"), ("run", "--once")):
        res = repo.run(*command).assert_failure()
        assert (res.out, res.err) == ("", line + "\n"), command
    assert _refs(repo) == before
    assert repo.git("status", "--porcelain") == "?? .frequency/\n"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("build.yaml", "    isolation: none\n"),
        ("build.yaml", "    isolation: worktree\n"),
        ("build.yaml", "    isolation: worktree\n    setup: make deps\n"),
        ("build.yaml", "    isolation: worktree\n    merge: {into: main, strategy: squash}\n"),
        ("build.yaml", "    touches: [src/**]\n"),
        ("build.yaml", "    requires: [{changed: {paths: [src], since: last_success}}]\n"),
        ("frequency.yaml", "agents: {}\n"),
        ("frequency.yaml", "archive_after: 1d\n"),
        ("frequency.yaml", "agents:\n  reviewer: {use: codex, model: gpt-5.5}\n"),
    ],
)
def test_what_is_carried_out_is_accepted(tmp_path: Path, name: str, text: str) -> None:
    """isolation (none or worktree, with setup and merge), touches, since: last_success,
    named agents and archive_after are carried out (or ask for nothing)."""
    from freq.config import load_config

    (tmp_path / ".frequency").mkdir()
    for rel, content in _with(name, text).items():
        (tmp_path / ".frequency" / rel).write_text(content)
    assert [f.factory_id for f in load_config(tmp_path).factories] == ["build"]


def test_docs_list_every_refusal_verbatim() -> None:
    """docs/config.md's "Not supported yet" table quotes each refusal as validate prints it."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    table = doc.split("## Not supported yet", 1)[1].split("\n## ", 1)[0]
    quoted = set(re.findall(r"^\|[^|]+\| `(.+)` \|$", table, re.M))
    reasons = {
        checks.SINCE.format(since="x"),
    }
    assert quoted == reasons
