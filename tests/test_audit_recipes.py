"""docs/audit.md's recipes, run as written with plain git against a repository after a real
run (an agent step by the stand-in claude, a flaky step retried, a terminal failure in the
dead-letter queue, a subject moved by hand, a pause): each answers with the fact it names."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FreqRepo

pytestmark = [pytest.mark.git]

DOC = Path(__file__).resolve().parent.parent / "docs" / "audit.md"
CLAUDE = Path(__file__).resolve().parent / "standins" / "bin" / "claude"

BUILD = """\
factory_id: build
state: {initial: selected, terminal: [done, failed]}
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
    agent: {use: writer, prompt: "Implement {subject}"}
  - id: test
    from_states: [implemented]
    to_state: tested
    run: >-
      test -f .ok-$FREQ_SUBJECT || { touch .ok-$FREQ_SUBJECT;
      echo "flaky: connection reset"; exit 1; }
    retry: {max_attempts: 3, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}
  - id: deploy
    from_states: [tested]
    to_state: done
    run: 'if [ "$FREQ_SUBJECT" = app-3 ]; then echo "deploy: permission denied"; exit 1; fi'
"""

# heading of docs/audit.md -> what its recipe's output must contain
EXPECTED: dict[str, tuple[str, ...]] = {
    "What did this subject go through?": (
        "build/app-1: created -> selected",
        "build/app-1: test failed in implemented (exit 1)",
        "build/app-1: deploy tested -> done",
    ),
    "Where is it now, and with what data?": ('"state": "done"', '"subject": "app-1"'),
    "What is the last event of every subject?": (
        "build/app-2  build/app-2: manual done -> failed",
        "build/app-3  build/app-3: deploy parked in dead-letter queue",
    ),
    "What did each step cost?": ("implement    3 attempts  $0.0631", "test         6 attempts"),
    "Which agent, model and tokens did each agent attempt use?": (
        "writer claude-sonnet-4-5 in=31466 out=73 $0.021039 (reported)  build/app-1: implement",
    ),
    "Which attempts failed, and why?": (
        "build/app-3: deploy failed in tested (exit 1)\n    terminal (pattern: permission denied)",
        "build/app-1: test failed in implemented (exit 1)\n    retryable (pattern: connection",
    ),
    "What did the failed attempt print?": ("flaky: connection reset",),
    "What is in the dead-letter queue?": (
        "dlq build#1: build/app-3 deploy attempt 1 (terminal: pattern: permission denied)",
    ),
    "Who moved what by hand?": (
        "build/app-2: manual done -> failed\n    by alice@",
        ": customer cancelled",
    ),
    "Who paused, resumed or approved?": ("build: pause by alice@", "release freeze"),
    "Is the history intact?": ("history intact: ",),
}


def recipes() -> dict[str, str]:
    """{heading: the first sh block under it} of docs/audit.md."""
    found: dict[str, str] = {}
    for part in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        block = re.search(r"^```sh\n(.*?)^```", body, re.M | re.S)
        if block:
            found[heading.strip()] = block.group(1)
    return found


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> FreqRepo:
    """The run the page describes (module-scoped: every recipe reads the same history)."""
    mp = pytest.MonkeyPatch()
    try:
        home = tmp_path_factory.mktemp("audit-home")
        for key, value in {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "A",
            "GIT_AUTHOR_EMAIL": "a@example.com",
            "GIT_COMMITTER_NAME": "C",
            "GIT_COMMITTER_EMAIL": "c@example.com",
            "USER": "alice",
            "LC_ALL": "C",
        }.items():
            mp.setenv(key, value)
        from tests.conftest import new_repo

        repo = new_repo(tmp_path_factory.mktemp("audit") / "repo")
        repo.write(".gitignore", ".ok-*\n")
        repo.write(
            ".frequency/frequency.yaml", f"agents:\n  writer: {{use: claude, bin: {CLAUDE}}}\n"
        )
        repo.write(".frequency/build.yaml", BUILD)
        repo.git("add", "-A")
        repo.git("commit", "-qm", "config")
        repo.run("add", "build", "app-1", "app-2", "app-3").assert_success()
        repo.run("run", "--until-idle").assert_success()
        repo.run("transition", "build", "app-2", "failed", "--reason", "customer cancelled")
        repo.run("pause", "build", "--reason", "release freeze").assert_success()
        repo.run("resume", "build").assert_success()
        return repo
    finally:
        mp.undo()


def test_every_recipe_is_checked() -> None:
    """The page and this test name the same questions, so no recipe goes unrun."""
    assert sorted(recipes()) == sorted(EXPECTED)


@pytest.mark.parametrize("heading", sorted(EXPECTED))
def test_recipe_answers_its_question(audited: FreqRepo, heading: str) -> None:
    """The recipe, run by bash in the repository with plain git, prints the expected fact."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipes()[heading]],
        cwd=audited.path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), f"{heading}: no output"
    for fact in EXPECTED[heading]:
        assert fact in out.stdout, f"{heading}: {fact!r} not in\n{out.stdout}"
