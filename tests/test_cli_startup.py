"""What the command line imports before it does anything: structure, not timing (bench h times it).

`--version`, `--help` and usage errors must load click and freq/cli/* alone; the heavy
systems (dulwich, yaml, jsonschema, the run loop) load when a command needs them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from freq import heap, ops

ROOT = Path(__file__).resolve().parent.parent

# Runs the CLI in a fresh interpreter and prints the modules it loaded beyond `import click`.
PROBE = """
import json, sys
import click
before = set(sys.modules)
from freq.cli import main
sys.argv = ["git-freq", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({"code": code, "loaded": sorted(set(sys.modules) - before)}))
"""


def _loaded(cwd: Path, *args: str) -> tuple[int, list[str]]:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    last = json.loads(res.stdout.strip().splitlines()[-1])
    return last["code"], last["loaded"]


def _allowed(module: str) -> bool:
    """click, the standard library, freq/cli/*, the two package __init__s (ops is lazy) and
    freq.heap (the standard library's gc: the collector's pace over the process)."""
    top = module.split(".", maxsplit=1)[0]
    return (
        top in ("click", *sys.stdlib_module_names)
        or module in ("freq", "freq.ops", "freq.cli", "freq.heap")
        or module.startswith("freq.cli.")
    )


def test_importing_the_cli_loads_no_outside_system(tmp_path: Path) -> None:
    """`import freq.cli` loads neither dulwich, yaml, jsonschema nor any of freq's core."""
    code = (
        "import sys, freq.cli; print(' '.join(m for m in sys.modules "
        "if m.split('.')[0] in ('dulwich', 'yaml', 'jsonschema', 'pexpect', 'freq')))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    loaded = set(res.stdout.split())
    assert not loaded & {"dulwich", "yaml", "jsonschema", "pexpect", "freq.store"}
    assert sorted(m for m in loaded if not m.startswith("freq.cli")) == [
        "freq",
        "freq.heap",
        "freq.ops",
    ]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--version"], 0),
        (["-h"], 0),
        ([], 0),
        (["dlq", "show", "-h"], 0),
        (["serve", "-h"], 0),  # the web stack loads only once serve runs
        (["serve", "--port", "x"], 2),
        (["nope"], 2),
        (["log", "-n", "-1"], 2),
        (["graph", "--json"], 2),
        (["run", "--once", "--until-idle"], 2),
    ],
)
def test_help_version_and_usage_errors_load_only_click_and_the_cli(
    repo, args: list[str], code: int
) -> None:  # type: ignore[no-untyped-def]
    """Nothing beyond click, the standard library and freq/cli/* for these (in a repository)."""
    got, loaded = _loaded(repo.path, *args)
    assert got == code
    assert [m for m in loaded if not _allowed(m)] == []


def test_a_command_that_runs_loads_what_it_needs(build_repo) -> None:  # type: ignore[no-untyped-def]
    """`status` loads the store and config; it does not load the run loop (`run` does), nor
    dulwich: packed and loose refs and the warm caches are read directly."""
    got, loaded = _loaded(build_repo.path, "status")
    assert got == 0
    assert {"freq.store", "freq.config", "freq.ops.subjects"} <= set(loaded)
    assert "dulwich" not in loaded
    assert "freq.loop" not in loaded and "freq.attempts" not in loaded


def test_a_run_of_plain_steps_loads_no_machinery_it_does_not_use(build_repo) -> None:  # type: ignore[no-untyped-def]
    """`run` over shell steps in place (no worktree, merge queue, emits, discovery, failure
    or `classify:` rule) leaves worktrees, work folders, landing, merges, the DLQ, discovery,
    the ledger, sync, the archiver and re2 unimported: each loads on its first use."""
    build_repo.run("add", "build", "a").assert_success()
    got, loaded = _loaded(build_repo.path, "run", "--until-idle", "--json")
    assert got == 0
    assert "freq.loop" in loaded and "freq.runners.shell" in loaded
    unused = {
        "freq.worktrees",
        "freq.workdirs",
        "freq.landing",
        "freq.merges",
        "freq.dlq",
        "freq.discovery",
        "freq.ledger",
        "freq.sync",
        "freq.archiver",
        "freq.patterns",
        "re2",
    }
    assert sorted(unused & set(loaded)) == []


@pytest.fixture
def build_repo(freq_repo):  # type: ignore[no-untyped-def]
    return freq_repo(
        {
            ".frequency/build.yaml": """
            factory_id: build
            state: {initial: new, terminal: [done]}
            steps:
              - {id: work, from_states: [new], to_state: done, run: "true"}
            """
        }
    )


def test_lazy_ops_names_match_their_modules() -> None:
    """ops' lazy table, its __all__ and its TYPE_CHECKING imports list the same names, and
    each name resolves to the object its submodule defines."""
    tree = ast.parse((ROOT / "freq/ops/__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                typed.update({a.name: imp.module.rsplit(".", 1)[1] for a in imp.names})
    assert typed == ops._HOME
    assert sorted(ops.__all__) == sorted(ops._HOME)
    for name, module in ops._HOME.items():
        sub = __import__(f"freq.ops.{module}", fromlist=[name])
        assert getattr(ops, name) is getattr(sub, name), name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ops.nope  # noqa: B018 - the attribute access is the test


def test_a_command_runs_at_the_slow_collector_pace_and_exits_past_it(repo) -> None:  # type: ignore[no-untyped-def]
    """The console entry sets young collections to freq.heap's pace for the command, and
    freezes every object before the interpreter's finalization (nothing left to walk)."""
    probe = (
        "import gc, sys\n"
        "from freq.cli import main\n"
        "sys.argv = ['git-freq', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo.path, capture_output=True, text=True, check=True
    )
    pace, frozen = res.stdout.split()[-2:]
    assert int(pace) == heap.COMMAND_THRESHOLD
    assert frozen == "True"
