"""docs/tutorial.md works as written: its `sh` blocks, run in order by bash in an empty
folder, with stand-in claude, codex and gemini CLIs (real processes printing the real
output formats) on PATH, take two coordinated factories from nothing to done."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.git]

DOC = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
STANDINS = Path(__file__).resolve().parent / "standins" / "bin"


def blocks(kind: str) -> list[str]:
    """The fenced blocks of one kind (`sh`, `text`), in order."""
    return re.findall(rf"^```{kind}\n(.*?)^```", DOC.read_text(), re.M | re.S)


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    """Every sh block succeeds under `set -euo pipefail`; the subjects end where the page
    says, and what the page shows as output is what the commands printed."""
    script = "set -euo pipefail\n" + "\n".join(blocks("sh"))
    bin_ = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{STANDINS}{os.pathsep}{bin_}{os.pathsep}{os.environ['PATH']}",
        "STANDIN_WRITE": "CHANGES.txt",  # each stand-in agent really edits a file
    }
    out = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    repo = tmp_path / "greeter"
    states = {}
    for fid, name in (("build", "shout"), ("build", "whisper"), ("docs", "whisper")):
        blob = subprocess.run(
            ["git", "show", f"refs/frequency/subjects/{fid}/{name}:subject.json"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        states[fid, name] = json.loads(blob)["state"]
    assert states == {
        ("build", "shout"): "done",
        ("build", "whisper"): "done",
        ("docs", "whisper"): "documented",
    }
    # the outputs the page shows, line by line, minus commit ids that differ per run
    for shown in blocks("text"):
        for line in shown.splitlines():
            expected = re.sub(r"as [0-9a-f]{12}$", "as ", line)
            assert expected in out.stdout, f"the page shows {line!r}; the run printed\n{out.stdout}"


def test_the_concepts_page_factory_validates(repo) -> None:  # type: ignore[no-untyped-def]
    """The factory docs/concepts.md shows is a valid configuration as written."""
    concepts = (DOC.parent / "concepts.md").read_text()
    (factory,) = re.findall(r"^```yaml\n(.*?)^```", concepts, re.M | re.S)
    repo.write(".frequency/build.yaml", factory)
    assert repo.run("validate").assert_success().out.startswith("ok: 1 factory (build)")
