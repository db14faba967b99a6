"""`git freq init --analyse`: the pure analysis over file texts (no git), then real fixture
repositories of each kind built here, each analysed, written and validated by the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from freq.analyse import SKIP_DIRS, Findings, analyse
from freq.configfiles import parse_yaml
from tests.conftest import FreqRepo, new_repo

STANDINS = Path(__file__).resolve().parent / "standins" / "bin"

PYPROJECT = """\
[project]
name = "app"
version = "0.1.0"
[project.optional-dependencies]
dev = ["pytest>=8", "ruff"]
[tool.mypy]
files = ["app"]
"""

MAKEFILE = """\
.PHONY: deps lint test build
deps:
\ttouch .deps
lint:
\t@echo lint ok
test: deps
\t@echo test ok
build:
\t@echo build ok
"""


def found(files: dict[str, str], agents: tuple[str, ...] = ()) -> Findings:
    return analyse(files, agents=agents, parse_yaml=parse_yaml)


def runs(f: Findings, role: str) -> list[str]:
    return [cmd.run for _, cmd in f.commands(role)]


# ---------------------------------------------------------------- JavaScript


SCRIPTS = json.dumps({"scripts": {"lint": "eslint .", "test": "vitest", "build": "vite build"}})


@pytest.mark.parametrize(
    ("lock", "install", "test"),
    [
        ("package-lock.json", "npm ci", "npm test"),
        ("pnpm-lock.yaml", "pnpm install --frozen-lockfile", "pnpm run test"),
        ("yarn.lock", "yarn install --frozen-lockfile", "yarn test"),
        ("bun.lockb", "bun install --frozen-lockfile", "bun run test"),
        ("bun.lock", "bun install --frozen-lockfile", "bun run test"),
    ],
)
def test_the_lock_file_names_the_package_manager(lock: str, install: str, test: str) -> None:
    """npm, pnpm, yarn and bun each install from their lock file (frozen), which is what a
    change re-runs setup on, and run the package.json scripts their own way."""
    f = found({"package.json": SCRIPTS, lock: ""})
    assert f.setup == install
    assert f.when_changed == (lock,)
    assert runs(f, "test") == [test]
    assert len(runs(f, "lint")) == 1 and runs(f, "lint")[0].endswith("lint")
    assert runs(f, "build")[0].endswith("build")


def test_no_lock_file_installs_and_npm_init_placeholder_test_is_ignored() -> None:
    """Without a lock file npm installs (not ci) and package.json is what changes; the test
    script `npm init` writes, which always fails, is not a test command."""
    pkg = json.dumps({"scripts": {"test": 'echo "Error: no test specified" && exit 1'}})
    f = found({"package.json": pkg})
    assert (f.setup, f.when_changed) == ("npm install", ("package.json",))
    assert runs(f, "test") == []


def test_yarn_berry_installs_immutable_and_package_manager_field_counts() -> None:
    """.yarnrc.yml means yarn 2+ (`--immutable`); `packageManager` names the manager when
    there is no lock file."""
    assert found({"package.json": SCRIPTS, "yarn.lock": "", ".yarnrc.yml": ""}).setup == (
        "yarn install --immutable"
    )
    pkg = json.dumps({"packageManager": "pnpm@9.1.0", "scripts": {"test": "jest"}})
    assert found({"package.json": pkg}).setup == "pnpm install"


def test_an_unreadable_package_json_is_a_note_not_a_crash() -> None:
    """A package.json that is not a JSON object is skipped with a note."""
    f = found({"package.json": "{nope"})
    assert f.components == ()
    assert f.notes == ("package.json: not a JSON object; skipped",)


# ---------------------------------------------------------------- Python


def test_pyproject_with_a_makefile_uses_the_makefile_targets() -> None:
    """A Makefile is the project's own entry point: its targets win over pytest and ruff, and
    `make install` (beside a pyproject) is the set-up."""
    mk = "install:\n\tpip install -e .\ntest:\n\tpytest\nlint:\n\truff check .\n"
    f = found({"pyproject.toml": PYPROJECT, "Makefile": mk})
    assert f.setup == "make install"
    assert (runs(f, "lint"), runs(f, "test"), runs(f, "build")) == (
        ["make lint"],
        ["make test"],
        [],
    )


def test_pyproject_alone_gets_a_venv_pytest_ruff_and_mypy() -> None:
    """The dev extra is installed into .venv; pytest and ruff come from the dependencies,
    mypy from [tool.mypy] (its `files` setting means no path argument)."""
    f = found({"pyproject.toml": PYPROJECT, ".gitignore": ".venv/\n"})
    assert f.setup == "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'"
    assert f.when_changed == ("pyproject.toml",)
    assert runs(f, "test") == [".venv/bin/python -m pytest"]
    assert runs(f, "lint") == [".venv/bin/python -m ruff check .", ".venv/bin/python -m mypy"]
    assert f.notes == ()


def test_uv_and_poetry_run_through_their_tool() -> None:
    """uv.lock → uv sync / uv run; poetry.lock → poetry install / poetry run."""
    uv = found({"pyproject.toml": PYPROJECT, "uv.lock": ""})
    assert (uv.setup, uv.when_changed, runs(uv, "test")) == (
        "uv sync",
        ("uv.lock",),
        ["uv run pytest"],
    )
    poetry = found({"pyproject.toml": PYPROJECT, "poetry.lock": ""})
    assert (poetry.setup, runs(poetry, "test")) == ("poetry install", ["poetry run pytest"])


def test_tox_runs_its_own_environments() -> None:
    """tox.ini: tests through `tox -e py`, a lint environment through its name; tox makes
    its own environments, so no set-up."""
    f = found({"pyproject.toml": PYPROJECT, "tox.ini": "[tox]\n[testenv]\n[testenv:lint]\n"})
    assert (f.setup, runs(f, "test"), runs(f, "lint")) == (None, ["tox -e py"], ["tox -e lint"])


def test_nox_sessions_are_read_by_name() -> None:
    """noxfile.py: `@nox.session` functions named tests and lint."""
    nox = (
        "import nox\n\n@nox.session(python=['3.12'])\ndef tests(session):\n    pass\n\n"
        "@nox.session\n@nox.parametrize('x', [1])\ndef lint(session, x):\n    pass\n"
    )
    f = found({"noxfile.py": nox})
    assert (runs(f, "test"), runs(f, "lint")) == (["nox -s tests"], ["nox -s lint"])


def test_invalid_toml_is_a_note() -> None:
    """A pyproject.toml that is not TOML is skipped with a one-line note."""
    f = found({"pyproject.toml": "[project\nname="})
    assert f.components == ()
    assert len(f.notes) == 1 and f.notes[0].startswith("pyproject.toml: not valid TOML (")


# ---------------------------------------------------------------- other ecosystems


@pytest.mark.parametrize(
    ("files", "setup", "lint", "test", "build"),
    [
        (
            {"Cargo.toml": "[package]\nname='x'\n", "Cargo.lock": ""},
            "cargo fetch",
            ["cargo clippy --all-targets -- -D warnings"],
            ["cargo test"],
            ["cargo build"],
        ),
        (
            {"Cargo.toml": "[workspace]\nmembers=['a']\n"},
            "cargo fetch",
            ["cargo clippy --workspace --all-targets -- -D warnings"],
            ["cargo test --workspace"],
            ["cargo build --workspace"],
        ),
        (
            {"go.mod": "module x\n", "go.sum": ""},
            "go mod download",
            ["go vet ./..."],
            ["go test ./..."],
            ["go build ./..."],
        ),
        (
            {"Gemfile": "gem 'rspec'\ngem \"rubocop\"\n", "Gemfile.lock": ""},
            "bundle install",
            ["bundle exec rubocop"],
            ["bundle exec rspec"],
            [],
        ),
        (
            {"Gemfile": "gem 'rails'\n", "Rakefile": ""},
            "bundle install",
            [],
            ["bundle exec rake test"],
            [],
        ),
        (
            {"pom.xml": "<project/>", "mvnw": ""},
            "./mvnw -B -q dependency:go-offline",
            [],
            ["./mvnw -B test"],
            ["./mvnw -B -DskipTests package"],
        ),
        (
            {"build.gradle.kts": "", "gradlew": ""},
            None,
            [],
            ["./gradlew test"],
            ["./gradlew assemble"],
        ),
        ({"build.gradle": ""}, None, [], ["gradle test"], ["gradle assemble"]),
        ({"Dockerfile": "FROM alpine\n"}, None, [], [], ["docker build ."]),
    ],
)
def test_each_ecosystem_gives_its_conventional_commands(
    files: dict[str, str], setup: str | None, lint: list[str], test: list[str], build: list[str]
) -> None:
    """Cargo, Go, Ruby, Maven, Gradle and a Dockerfile alone: their usual commands."""
    f = found(files)
    assert (f.setup, runs(f, "lint"), runs(f, "test"), runs(f, "build")) == (
        setup,
        lint,
        test,
        build,
    )


def test_a_dockerfile_builds_only_what_nothing_else_builds() -> None:
    """Beside a go.mod, `go build` is the build, not `docker build`."""
    assert runs(found({"go.mod": "module x\n", "Dockerfile": "FROM x\n"}), "build") == [
        "go build ./..."
    ]


def test_a_python_backend_and_a_js_frontend_combine_from_the_root() -> None:
    """Commands of a sub-folder run in it (`cd frontend && ...`), in a subshell when
    combined, so the next starts from the root again; lock files are root-relative."""
    f = found(
        {
            "pyproject.toml": PYPROJECT,
            "frontend/package.json": SCRIPTS,
            "frontend/package-lock.json": "",
            ".gitignore": "node_modules/\n.venv/\n",
        }
    )
    assert f.setup == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && (cd frontend && npm ci)"
    )
    assert f.when_changed == ("pyproject.toml", "frontend/package-lock.json")
    assert f.check("test") == ".venv/bin/python -m pytest && (cd frontend && npm test)"
    assert f.check("lint", "test") == (
        ".venv/bin/python -m ruff check . && .venv/bin/python -m mypy && .venv/bin/python -m "
        "pytest && (cd frontend && npm run lint && npm test)"
    )
    assert f.check("build") == "cd frontend && npm run build"
    assert f.notes == ()


def test_workspace_members_run_from_the_root() -> None:
    """In an npm workspace, a member's package.json is not a component of its own."""
    root = json.dumps({"workspaces": ["web"], "scripts": {"test": "turbo test"}})
    f = found({"package.json": root, "package-lock.json": "", "web/package.json": SCRIPTS})
    assert [c.path for c in f.components] == [""]
    assert "web/package.json: a workspace member; run from the root" in f.notes


def test_an_unignored_dependency_folder_is_noted() -> None:
    """setup's node_modules would be committed with the step's work if not ignored."""
    f = found({"package.json": SCRIPTS, "package-lock.json": ""})
    assert f.notes == (
        "node_modules/ is not in .gitignore: add it, or what setup installs in a worktree is "
        "committed with the step's work",
    )


# ---------------------------------------------------------------- CI, as evidence


WORKFLOW = """\
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make ci-deps
      - run: |
          ./scripts/run-tests.sh --all
          echo ${{ matrix.python }}
"""

GITLAB = """\
stages: [test]
unit:
  before_script: [./bootstrap]
  script:
    - ./run unit tests
lint-job:
  script: ./check lint
"""


def test_ci_run_lines_are_evidence_and_fill_roles_nothing_else_fills() -> None:
    """Each `run:` line of a workflow and each `script:` line of GitLab CI is kept as
    evidence; a role no build file fills takes the first CI line that looks like it."""
    f = found({".github/workflows/ci.yml": WORKFLOW, ".gitlab-ci.yml": GITLAB})
    assert [c.run for c in f.ci_commands] == [
        "make ci-deps",
        "./scripts/run-tests.sh --all",
        "echo ${{ matrix.python }}",
        "./bootstrap",
        "./run unit tests",
        "./check lint",
    ]
    assert runs(f, "test") == ["./scripts/run-tests.sh --all"]
    assert runs(f, "lint") == ["./check lint"]
    # a build file's own command wins over the CI's
    assert runs(found({".gitlab-ci.yml": GITLAB, "go.mod": "module x\n"}), "test") == [
        "go test ./..."
    ]


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("jobs: [unclosed", "invalid YAML: "),
        ("- a\n- b\n", "not a mapping; skipped"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "anchors and aliases expand to more than",
        ),
        ("x: !!python/object/apply:os.system ['true']\n", "invalid YAML: "),
        ("[" * 5000, "nested more than 64 levels deep"),
    ],
)
def test_hostile_ci_yaml_is_a_one_line_note(text: str, note: str) -> None:
    """Broken, non-mapping, billion-laughs, code-constructing and deeply nested workflows
    are skipped with one line each; the analysis goes on."""
    f = found({".github/workflows/evil.yml": text, "go.mod": "module x\n"})
    assert len(f.notes) == 1, f.notes
    assert f.notes[0].startswith(".github/workflows/evil.yml: ") and note in f.notes[0]
    assert "\n" not in f.notes[0]
    assert runs(f, "test") == ["go test ./..."]


# ---------------------------------------------------------------- real repositories


def _only_git_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH with git (and the shell tools steps use) but no agent CLI."""
    bin_ = tmp_path / "no-agents-bin"
    bin_.mkdir()
    for tool in ("git", "sh", "make", "cat", "touch", "echo", "test", "true"):
        for folder in ("/usr/bin", "/bin"):
            if (Path(folder) / tool).exists():
                (bin_ / tool).symlink_to(Path(folder) / tool)
                break
    monkeypatch.setenv("PATH", str(bin_))


@pytest.fixture
def standins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The claude, codex and gemini stand-in CLIs first on PATH."""
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")


FIXTURES: dict[str, dict[str, str]] = {
    "npm": {"package.json": SCRIPTS, "package-lock.json": "{}", ".gitignore": "node_modules\n"},
    "pnpm": {"package.json": SCRIPTS, "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"},
    "yarn": {"package.json": SCRIPTS, "yarn.lock": "# yarn\n"},
    "bun": {"package.json": SCRIPTS, "bun.lock": "{}"},
    "python-make": {"pyproject.toml": PYPROJECT, "Makefile": MAKEFILE},
    "tox": {"pyproject.toml": PYPROJECT, "tox.ini": "[tox]\nenvlist = py\n[testenv]\n"},
    "nox": {"noxfile.py": "import nox\n@nox.session\ndef tests(s):\n    pass\n"},
    "cargo": {"Cargo.toml": "[package]\nname = 'x'\nversion = '0.1.0'\n", "Cargo.lock": ""},
    "go": {"go.mod": "module example.com/x\n", "go.sum": ""},
    "ruby": {"Gemfile": "gem 'rspec'\n", "Gemfile.lock": ""},
    "maven": {"pom.xml": "<project/>\n"},
    "gradle": {"build.gradle.kts": "plugins { java }\n", "gradlew": "#!/bin/sh\n"},
    "docker": {"Dockerfile": "FROM alpine\n"},
    "github": {".github/workflows/ci.yml": WORKFLOW},
    "gitlab": {".gitlab-ci.yml": GITLAB},
    "multi": {
        "backend/pyproject.toml": PYPROJECT,
        "frontend/package.json": SCRIPTS,
        "frontend/pnpm-lock.yaml": "",
        "Makefile": "lint:\n\techo\n",
        ".github/workflows/ci.yml": WORKFLOW,
    },
    "empty": {},
}

EXPECTED_CHECK = {
    "npm": "npm run lint && npm test && npm run build",
    "pnpm": "pnpm run lint && pnpm run test && pnpm run build",
    "yarn": "yarn lint && yarn test && yarn build",
    "bun": "bun run lint && bun run test && bun run build",
    "python-make": "make lint && make test && make build",
    "tox": "tox -e py",
    "nox": "nox -s tests",
    "cargo": "cargo clippy --all-targets -- -D warnings && cargo test && cargo build",
    "go": "go vet ./... && go test ./... && go build ./...",
    "ruby": "bundle exec rspec",
    "maven": "mvn -B test && mvn -B -DskipTests package",
    "gradle": "./gradlew test && ./gradlew assemble",
    "docker": "docker build .",
    "github": "./scripts/run-tests.sh --all",
    "gitlab": "./check lint && ./run unit tests",
    "multi": (
        "make lint && (cd backend && .venv/bin/python -m ruff check . && .venv/bin/python -m "
        "mypy && .venv/bin/python -m pytest) && (cd frontend && pnpm run lint && pnpm run test "
        "&& pnpm run build)"
    ),
}


def _fixture(tmp_path: Path, kind: str) -> FreqRepo:
    repo = new_repo(tmp_path / kind)
    for rel, text in FIXTURES[kind].items():
        repo.write(rel, text)
    return repo


@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_every_kind_of_repository_gets_a_valid_build_factory(
    tmp_path: Path, kind: str, standins_on_path: None
) -> None:
    """Each fixture repository: --analyse writes .frequency/ whose merge check is the
    project's own commands, with claude implementing and codex reviewing, and which
    `validate` accepts."""
    repo = _fixture(tmp_path, kind)
    out = repo.run("init", "--analyse", "--json").assert_success()
    res = json.loads(out.out)
    assert res["written"] == [".frequency/frequency.yaml", ".frequency/build.yaml"]
    chosen = {c["what"]: c["value"] for c in res["choices"]}
    assert chosen.get("check") == EXPECTED_CHECK.get(kind)
    assert (chosen["implement"], chosen["review"], chosen["merge"]) == (
        "claude",
        "codex",
        "into main",
    )
    assert repo.run("validate").assert_success().out.startswith("ok: 1 factory (build)")
    build = (repo.path / ".frequency/build.yaml").read_text()
    assert "# touches: [" in build  # left as a commented example
    if kind in EXPECTED_CHECK:
        assert f"check: {json.dumps(EXPECTED_CHECK[kind])}" in build


def test_text_summary_says_what_was_found_and_why(repo: FreqRepo, standins_on_path: None) -> None:
    """Without --json the summary names each component, each choice and its reason."""
    for rel, text in FIXTURES["multi"].items():
        repo.write(rel, text)
    out = repo.run("init", "--analyse").assert_success().out
    assert "found ./: make" in out
    assert "found backend/: python" in out and "found frontend/: node" in out
    assert "setup: (cd backend && python3 -m venv .venv" in out
    assert "  why: the project's own install (backend/pyproject.toml (pip); " in out
    assert "review: codex\n  why: a different agent CLI (codex) reads the first one's work" in out
    assert "wrote .frequency/build.yaml" in out


def test_refuses_to_overwrite_without_force(repo: FreqRepo, standins_on_path: None) -> None:
    """An existing .frequency/ is left alone (one line, exit 1) unless --force is given."""
    repo.write(".frequency/mine.yaml", "factory_id: mine\n")
    out = repo.run("init", "--analyse").assert_failure(1)
    assert out.err == (
        "git freq: .frequency/ already holds mine.yaml; nothing was written; overwrite "
        "frequency.yaml and build.yaml: pass --force\n"
    )
    assert not (repo.path / ".frequency/build.yaml").exists()
    (repo.path / ".frequency/mine.yaml").unlink()
    repo.run("init", "--analyse").assert_success()
    repo.write(".frequency/build.yaml", "broken: [")
    repo.run("init", "--analyse").assert_failure(1)
    repo.run("init", "--analyse", "--force").assert_success()
    repo.run("validate").assert_success()


def test_with_no_agent_on_path_steps_are_gates_and_agents_are_comments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No claude, codex or gemini on PATH: implement and review are gates for a person, the
    agents are commented examples, and a deterministic step runs the project's checks."""
    repo = _fixture(tmp_path, "python-make")
    _only_git_on_path(tmp_path, monkeypatch)
    res = json.loads(repo.run("init", "--analyse", "--json").assert_success().out)
    assert res["agents"] == []
    settings = (repo.path / ".frequency/frequency.yaml").read_text()
    assert "# agents:\n#   implementer: {use: claude}" in settings
    build = (repo.path / ".frequency/build.yaml").read_text()
    assert "    # agent: {use: implementer" in build
    assert '    run: "make lint && make test && make build"' in build
    repo.run("validate").assert_success()


def test_only_one_agent_cli_reviews_as_a_second_named_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only gemini on PATH, the reviewer is gemini too, said so in a comment."""
    repo = _fixture(tmp_path, "go")
    _only_git_on_path(tmp_path, monkeypatch)
    (tmp_path / "no-agents-bin" / "gemini").symlink_to(STANDINS / "gemini")
    res = json.loads(repo.run("init", "--analyse", "--json").assert_success().out)
    chosen = {c["what"]: c["value"] for c in res["choices"]}
    assert (chosen["implement"], chosen["review"]) == ("gemini", "gemini")
    assert (
        "the same CLI as the implementer" in (repo.path / ".frequency/frequency.yaml").read_text()
    )
    repo.run("validate").assert_success()


def test_hostile_workflow_in_a_real_repository_is_a_note(
    repo: FreqRepo, standins_on_path: None
) -> None:
    """A workflow that is not YAML is one `note:` line on stderr; init still succeeds."""
    repo.write(".github/workflows/bad.yml", "jobs: {unclosed\n")
    repo.write("go.mod", "module x\n")
    out = repo.run("init", "--analyse").assert_success()
    assert out.err.startswith("note: .github/workflows/bad.yml: not read (invalid YAML: ")
    assert len(out.err.splitlines()) == 1


RUNNABLE_MAKEFILE = """\
deps:
\t@touch .deps-installed
lint:
\t@echo lint ok
test:
\t@test -f .deps-installed && echo test ok
build:
\t@echo build ok
"""


def test_a_generated_config_runs_to_done_with_stand_in_agents(
    repo: FreqRepo, standins_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated factory really runs: the stand-in claude implements (writes a file) in
    a worktree set up by the project's install, the merge check (its lint, test, build)
    passes, the work lands on main, codex reviews, and the subject ends `done`."""
    repo.write("Makefile", RUNNABLE_MAKEFILE)
    repo.write(".gitignore", ".deps-installed\n")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "a project")
    repo.run("init", "--analyse").assert_success()
    build = (repo.path / ".frequency/build.yaml").read_text()
    assert 'setup: "make deps"' in build and '"make lint && make test && make build"' in build
    repo.git("add", "-A")
    repo.git("commit", "-qm", "frequency")
    monkeypatch.setenv("STANDIN_WRITE", "feature.txt")
    repo.run("add", "build", "x", "--data", "task=add a feature").assert_success()
    repo.run("run", "--until-idle").assert_success()
    shown = json.loads(repo.run("show", "build", "x", "--json").out)["subject"]
    assert shown["state"] == "done"
    assert (repo.path / "feature.txt").exists()
    log = repo.git("log", "--format=%s", "refs/frequency/subjects/build/x")
    assert "build/x: implement selected -> implemented" in log
    assert "build/x: review implemented -> done" in log


def test_an_agent_refines_the_files_and_a_valid_edit_is_kept(
    repo: FreqRepo, standins_on_path: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--agent claude runs the (stand-in) CLI in the repository with the refine prompt;
    an edit that still validates is kept, and the result names the agent."""
    repo.write("go.mod", "module x\n")
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(calls))
    # the stand-in "edits" by writing a file: here a valid factory of its own
    monkeypatch.setenv("STANDIN_WRITE", ".frequency/zz-notes.md")
    res = json.loads(repo.run("init", "--analyse", "--agent", "claude", "--json").out)
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert "were just\nwritten by `git freq init --analyse`" in " ".join(call["argv"])
    assert res["refined_by"] is None  # it wrote a note beside the files, not the files
    assert "the claude agent changed neither file" in res["notes"]
    assert (repo.path / ".frequency/zz-notes.md").read_text() == "written by the claude stand-in\n"
    repo.run("validate").assert_success()


def test_an_agent_edit_that_does_not_validate_is_undone(
    repo: FreqRepo, standins_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent that breaks build.yaml: the analysis's files are put back, a note says why,
    and the configuration still validates."""
    repo.write("go.mod", "module x\n")
    monkeypatch.setenv("STANDIN_WRITE", ".frequency/build.yaml")
    out = repo.run("init", "--analyse", "--agent", "codex").assert_success()
    assert out.err == (
        "note: the codex agent's edit did not validate (1 problem: .frequency/build.yaml:1: $: "
        "must be a mapping, not 'written by the codex stand-in'); kept the analysis's files\n"
    )
    assert "factory_id: build" in (repo.path / ".frequency/build.yaml").read_text()
    repo.run("validate").assert_success()


def test_agent_without_analyse_is_a_usage_error(repo: FreqRepo) -> None:
    """--agent only refines what --analyse writes."""
    out = repo.run("init", "--agent", "claude").assert_failure(2)
    assert "--agent refines what --analyse writes: pass both" in out.err


def test_an_unusual_default_branch_is_quoted(tmp_path: Path, standins_on_path: None) -> None:
    """A default branch whose name YAML would misread is written quoted, and validates."""
    repo = FreqRepo(tmp_path / "odd")
    repo.path.mkdir()
    repo.git("init", "-q", "-b", "#trunk")
    repo.write("go.mod", "module x\n")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "first")
    res = json.loads(repo.run("init", "--analyse", "--json").assert_success().out)
    assert res["branch"] == "#trunk"
    assert '  into: "#trunk"' in (repo.path / ".frequency/build.yaml").read_text()
    repo.run("validate").assert_success()


def test_odd_files_are_skipped(repo: FreqRepo, standins_on_path: None) -> None:
    """A FIFO named like a manifest, a binary lock file, a build file that is not UTF-8 and
    a symlinked folder are passed over; what can be read is analysed."""
    repo.write("go.mod", "module x\n")
    os.mkfifo(repo.path / "package.json")
    (repo.path / "bun.lockb").write_bytes(b"\x00\xff\x00binary")
    (repo.path / "web").mkdir()
    (repo.path / "web" / "Gemfile").write_bytes(b"gem '\xff\xfe'\n")
    (repo.path / "elsewhere").symlink_to(repo.path.parent)
    res = json.loads(repo.run("init", "--analyse", "--json").assert_success().out)
    assert res["found"] == ["./: go"]
    repo.run("validate").assert_success()


def test_the_refining_agent_must_be_an_agent_cli(repo: FreqRepo) -> None:
    """ops refuses an agent it cannot run as a CLI, before writing anything."""
    from freq import ops
    from freq.errors import FreqError

    app = ops.App(repo.path)
    try:
        with pytest.raises(FreqError) as exc:
            ops.init_analysed(app, agent="aider")
    finally:
        app.close()
    assert exc.value.message == (
        "the agent that refines must be an agent CLI: claude, codex, gemini (not 'aider')"
    )
    assert not (repo.path / ".frequency").exists()


# ---------------------------------------------------------------- any input, a valid config

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.text(min_size=1, max_size=12)  # any characters: controls, surrogates, U+2028
_scripts = st.dictionaries(
    st.sampled_from(["lint", "test", "build", "typecheck", "test:unit", "tests"]),
    st.text(max_size=20),
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scripts=_scripts,
    folder=st.one_of(
        st.just(""),
        _names.filter(lambda n: "/" not in n and not n.startswith(".") and n not in SKIP_DIRS),
    ),
    lock=st.sampled_from(["", "package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lock"]),
    ci=st.lists(st.text(max_size=30), max_size=4),
    weird=st.booleans(),
    agents=st.sets(st.sampled_from(["claude", "codex", "gemini"])),
    branch=st.sampled_from(["main", "master", "#odd", "release/1.x", "a'b", 'q"uote']),
)
# folders whose names are glob or template syntax (a `{` broke when_changed once)
@example(scripts={}, folder="{", lock="", ci=[], weird=False, agents={"claude"}, branch="main")
@example(
    scripts={}, folder="a*[b?}", lock="yarn.lock", ci=[], weird=False, agents=set(), branch="main"
)
def test_whatever_the_repository_holds_the_texts_validate(
    tmp_path_factory: pytest.TempPathFactory,
    scripts: dict[str, str],
    folder: str,
    lock: str,
    ci: list[str],
    agents: set[str],
    branch: str,
    weird: bool,
) -> None:
    """Script bodies, folder names, CI lines and branch names of any characters (quotes,
    braces, colons, `#`, unicode) give frequency.yaml and build.yaml that validate."""
    from freq.config import load_config_files
    from freq.ops.scaffold import build_text, settings_text

    where = f"{folder}/" if folder else ""
    files = {f"{where}package.json": json.dumps({"scripts": scripts})}
    if lock:
        files[f"{where}{lock}"] = ""
    files[".github/workflows/ci.yml"] = json.dumps(
        {"jobs": {"t": {"steps": [{"run": line} for line in ci]}}}
    )
    if weird:  # a workflow whose JSON escapes make lone surrogates and controls in YAML
        files[".gitlab-ci.yml"] = 'job: {script: ["\\ud800 make test", "\\x1b[31mred\\u2028x"]}'
    f = found(files, tuple(agents))
    texts = {"frequency.yaml": settings_text(f), "build.yaml": build_text(f, branch)}
    root = tmp_path_factory.mktemp("any")
    config = load_config_files({n: t.encode() for n, t in texts.items()}, root=root)
    (build,) = config.factories
    assert [s.id for s in build.steps][:2] == ["implement", "review"]


def test_ci_lines_with_unprintable_characters_are_left_out() -> None:
    """An escape sequence or a lone surrogate in a CI line: the line is neither evidence nor
    a command (a `?` in its place would be a shell glob), and a note counts it."""
    gitlab = 'job: {script: ["\\ud800 make test", "\\x1b[31mred", "make check"]}'
    f = found({".gitlab-ci.yml": gitlab})
    assert [c.run for c in f.ci_commands] == ["make check"]
    assert f.notes == (".gitlab-ci.yml: 2 line(s) with unprintable characters left out",)
    assert runs(f, "test") == []


def test_folder_names_are_shell_quoted_or_skipped() -> None:
    """A folder named with a quote or a space is quoted for the shell; one with an escape
    sequence is skipped with a note."""
    f = found({"it's web/package.json": SCRIPTS, "bad\x1b[2J/go.mod": "module x\n"})
    assert f.setup == "cd 'it'\"'\"'s web' && npm install"
    assert f.notes[0] == "bad?[2J/go.mod: a folder name with unprintable characters; skipped"
