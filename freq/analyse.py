"""What `git freq init --analyse` finds in a repository's own build files: pure, no I/O.

Must not import dulwich, click, subprocess, yaml or any outside system, nor read files or the
environment: the ops layer (freq/ops/analyse.py) reads the files and passes their texts in,
with the agent CLIs it found on PATH and a YAML parser (freq.configfiles owns yaml), and
renders the Findings as `.frequency/` text.

A *component* is one directory with build files (the root, or a first-level folder such as
`frontend/`); each gives commands for four roles (install, lint, test, build), each command
with the file and field it came from, so the summary can say why it was chosen. A Makefile's
targets win over the language's conventions in the same directory (it is the project's own
entry point); CI workflows are evidence, used only for a role nothing else fills.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# The agent CLIs `init --analyse` looks for, in the order it prefers them as implementer;
# the reviewer is the next one found, so that a second model reads the first one's work.
AGENT_CLIS = ("claude", "codex", "gemini")

# Folders never scanned for components (dependencies, build output, environments).
SKIP_DIRS = frozenset(
    {"node_modules", "vendor", "target", "dist", "build", "venv", ".venv", "__pycache__"}
)

# The file names read in the root and in each first-level folder.
MANIFESTS = frozenset(
    {
        "package.json", "package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lockb",
        "bun.lock", "pnpm-workspace.yaml", ".yarnrc.yml", "pyproject.toml", "uv.lock",
        "poetry.lock", "pdm.lock", "requirements.txt", "requirements-dev.txt", "tox.ini",
        "noxfile.py", "Makefile", "makefile", "GNUmakefile", "Cargo.toml", "Cargo.lock",
        "go.mod", "go.sum", "Gemfile", "Gemfile.lock", "Rakefile", "pom.xml", "mvnw",
        "build.gradle", "build.gradle.kts", "gradlew", "Dockerfile", ".gitignore",
    }
)  # fmt: skip

ROLES = ("install", "lint", "test", "build")

# The placeholder `npm init` writes as the test script: it always fails.
_NPM_PLACEHOLDER = "no test specified"
MAX_CI_COMMANDS = 40

ParseYaml = Callable[[str], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A shell command for one role, run from its component's directory, and why."""

    run: str
    source: str  # `package.json scripts.test`, `Makefile target test`, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Component:
    """One directory with build files, and the commands found for each role."""

    path: str  # "" for the repository root, else a folder such as "frontend"
    kinds: tuple[str, ...]  # node, python, rust, go, ruby, maven, gradle, docker, make
    install: Command | None = None
    lock_files: tuple[str, ...] = ()  # paths relative to the component
    lint: tuple[Command, ...] = ()
    test: tuple[Command, ...] = ()
    build: tuple[Command, ...] = ()
    deps_dir: str | None = None  # what `install` creates (node_modules, .venv), if anything

    def where(self, rel: str) -> str:
        """`rel` as a path from the repository root."""
        return f"{self.path}/{rel}" if self.path else rel


@dataclass(frozen=True, slots=True, kw_only=True)
class Findings:
    """Everything the analysis found, and notes for the summary."""

    components: tuple[Component, ...] = ()
    ci_commands: tuple[Command, ...] = ()  # `run:` / `script:` lines of CI, as evidence
    agents: tuple[str, ...] = ()  # agent CLIs found on PATH, in AGENT_CLIS order
    notes: tuple[str, ...] = ()
    fallback: Mapping[str, Command] = field(default_factory=dict)  # role -> from CI

    @property
    def setup(self) -> str | None:
        """The install commands of every component, as one command from the root."""
        return _combine([(c.path, c.install.run) for c in self.components if c.install is not None])

    @property
    def when_changed(self) -> tuple[str, ...]:
        """The lock files (or manifests) whose change means installing again."""
        return tuple(c.where(f) for c in self.components if c.install for f in c.lock_files)

    def commands(self, role: str) -> tuple[tuple[Component | None, Command], ...]:
        """Every command found for `role` (lint, test, build), from the CI when none is."""
        found = tuple((c, cmd) for c in self.components for cmd in getattr(c, role))
        if not found and role in self.fallback:
            return ((None, self.fallback[role]),)
        return found

    def check(self, *roles: str) -> str | None:
        """The commands of `roles` (in order) as one command from the root."""
        by_dir: dict[str, list[str]] = {}  # one group per folder, in component order
        for role in roles:
            for comp, cmd in self.commands(role):
                by_dir.setdefault(comp.path if comp else "", []).append(cmd.run)
        return _combine([(d, " && ".join(cmds)) for d, cmds in by_dir.items()])


def in_dir(path: str, command: str) -> str:
    """`command` run in `path` (a folder of the repository), from the root."""
    return f"cd {_quote(path)} && {command}" if path else command


def _combine(parts: list[tuple[str, str]]) -> str | None:
    """Commands (each in its folder) as one: alone as they are, together with `&&`, a
    command in a sub-folder in a subshell so the next one starts from the root again."""
    if not parts:
        return None
    if len(parts) == 1:
        return in_dir(*parts[0])
    return " && ".join(f"({in_dir(p, c)})" if p else c for p, c in parts)


def _quote(path: str) -> str:
    return path if re.fullmatch(r"[A-Za-z0-9_./-]+", path) else "'" + path.replace("'", "") + "'"


# ---------------------------------------------------------------- the analysis


def analyse(
    files: Mapping[str, str], *, agents: Iterable[str] = (), parse_yaml: ParseYaml
) -> Findings:
    """Findings from `files` ({path from the root: text}; a binary file's text may be ""),
    the agent CLIs found on PATH, and `parse_yaml` (text -> data; raises ValueError with a
    one-line reason) for CI files."""
    notes: list[str] = []
    by_dir: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        folder, _, name = path.rpartition("/")
        if name in MANIFESTS and folder.count("/") == 0 and not _skipped(folder):
            by_dir.setdefault(folder, {})[name] = text
    workspace = _node_workspace(by_dir.get("", {}))
    components = []
    for folder in sorted(by_dir, key=lambda d: (d != "", d)):
        here = by_dir[folder]
        if folder and workspace and "package.json" in here and set(here) <= {"package.json"}:
            notes.append(f"{folder}/package.json: a workspace member; run from the root")
            continue
        comp = _component(folder, here, notes)
        if comp is not None:
            components.append(comp)
    ci = list(_ci_commands(files, parse_yaml, notes))
    fallback = {}
    for role, rx in _CI_ROLES.items():
        if not any(getattr(c, role) for c in components):
            pick = next((c for c in ci if rx.search(c.run) and "${{" not in c.run), None)
            if pick is not None:
                fallback[role] = pick
    for comp in components:
        if comp.deps_dir and not _ignored(by_dir.get(comp.path, {}), by_dir.get("", {}), comp):
            notes.append(
                f"{comp.where(comp.deps_dir)}/ is not in .gitignore: add it, or what setup "
                "installs in a worktree is committed with the step's work"
            )
    found = tuple(a for a in AGENT_CLIS if a in set(agents))
    return Findings(
        components=tuple(components),
        ci_commands=tuple(ci[:MAX_CI_COMMANDS]),
        agents=found,
        notes=tuple(notes),
        fallback=fallback,
    )


def _skipped(folder: str) -> bool:
    return folder.startswith(".") or folder in SKIP_DIRS


def _ignored(here: Mapping[str, str], root: Mapping[str, str], comp: Component) -> bool:
    """Whether a .gitignore (the component's or the root's) names its deps folder."""
    name = comp.deps_dir or ""
    for text in (here.get(".gitignore", ""), root.get(".gitignore", "")):
        for line in text.splitlines():
            entry = line.strip().strip("/").removeprefix("**/")
            if entry in (name, f"{name}/", comp.where(name)) or entry == f"{name}*":
                return True
    return False


def _node_workspace(root: Mapping[str, str]) -> bool:
    if "pnpm-workspace.yaml" in root:
        return True
    doc = _json(root.get("package.json"))
    return isinstance(doc, dict) and bool(doc.get("workspaces"))


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _component(folder: str, files: Mapping[str, str], notes: list[str]) -> Component | None:
    """The component in `folder`, or None when its files name no build system."""
    where = (folder + "/") if folder else ""
    parts: list[_Part] = []
    for reader in _READERS:
        part = reader(files, where, notes)
        if part is not None:
            parts.append(part)
    if not parts:
        return None
    make = next((p for p in parts if p.kind == "make"), None)
    others = [p for p in parts if p.kind != "make"]
    made: dict[str, list[Command]] = dict(make.roles) if make is not None else {}
    # `make install` usually installs system-wide; beside a Python or JS manifest it is the
    # project's own set-up (this repository's Makefile is one such), and wins as the others do
    python_or_node = any(p.kind in ("python", "node") for p in others)
    if make and "install" not in made and "install" in make.targets and python_or_node:
        made["install"] = [Command(run="make install", source=f"{where}Makefile target install")]
    roles: dict[str, list[Command]] = {r: [] for r in ROLES}
    for role in ROLES:
        if made.get(role):
            roles[role] = list(made[role])
            continue
        for p in others:
            if role == "build" and p.kind == "docker" and roles["build"]:
                continue  # a Dockerfile builds only what nothing else builds
            roles[role] += p.roles.get(role, [])
    if not any(roles.values()):
        return None
    install = None
    if roles["install"]:
        run = " && ".join(c.run for c in roles["install"])
        install = Command(run=run, source=", ".join(c.source for c in roles["install"]))
    owner = next((p for p in others if p.roles.get("install")), None)
    return Component(
        path=folder,
        kinds=tuple(p.kind for p in parts),
        install=install,
        lock_files=tuple(f for p in others for f in p.locks) if install else (),
        lint=tuple(roles["lint"]),
        test=tuple(roles["test"]),
        build=tuple(roles["build"]),
        deps_dir=owner.deps_dir if owner is not None and install else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Part:
    """What one build system of a component gives."""

    kind: str
    roles: Mapping[str, list[Command]]
    locks: tuple[str, ...] = ()
    deps_dir: str | None = None
    targets: frozenset[str] = frozenset()


def _roles(**roles: Command | list[Command] | None) -> dict[str, list[Command]]:
    """{role: commands} from keyword arguments, leaving out the roles given None."""
    return {
        role: value if isinstance(value, list) else [value]
        for role, value in roles.items()
        if value is not None
    }


# ---------------------------------------------------------------- JavaScript


_LOCKS = (
    ("package-lock.json", "npm"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
)


def _node(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    if "package.json" not in files:
        return None
    doc = _json(files["package.json"])
    if not isinstance(doc, dict):
        notes.append(f"{where}package.json: not a JSON object; skipped")
        return None
    lock, pm = next(((f, m) for f, m in _LOCKS if f in files), (None, None))
    declared = doc.get("packageManager")
    if pm is None and isinstance(declared, str):
        pm = next((m for m in ("pnpm", "yarn", "bun", "npm") if declared.startswith(m)), None)
    pm = pm or "npm"
    src = f"{where}{lock}" if lock else f"{where}package.json"
    install = {
        "npm": "npm ci" if lock else "npm install",
        "pnpm": "pnpm install --frozen-lockfile" if lock else "pnpm install",
        "yarn": (
            (
                "yarn install --immutable"
                if ".yarnrc.yml" in files
                else "yarn install --frozen-lockfile"
            )
            if lock
            else "yarn install"
        ),
        "bun": "bun install --frozen-lockfile" if lock else "bun install",
    }[pm]
    scripts = doc.get("scripts")
    scripts = (
        {k: v for k, v in scripts.items() if isinstance(v, str)}
        if isinstance(scripts, dict)
        else {}
    )

    def script(*names: str) -> Command | None:
        for name in names:
            body = scripts.get(name)
            if body is None or (name == "test" and _NPM_PLACEHOLDER in body):
                continue
            if pm == "npm":
                run = "npm test" if name == "test" else f"npm run {name}"
            elif pm == "yarn":
                run = f"yarn {name}" if re.fullmatch(r"[a-z]+", name) else f"yarn run {name}"
            else:  # `bun test` is bun's own test runner, not the script: always `run`
                run = f"{pm} run {name}"
            return Command(run=run, source=f"{where}package.json scripts.{name}")
        return None

    lint = [c for c in (script("lint", "eslint"), script("typecheck", "type-check", "tsc")) if c]
    return _Part(
        kind="node",
        roles=_roles(
            install=Command(run=install, source=f"{src} ({pm})"),
            lint=lint,
            test=script("test", "test:unit", "tests"),
            build=script("build"),
        ),
        locks=(lock or "package.json",),
        deps_dir="node_modules",
    )


# ---------------------------------------------------------------- Python


def _python(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    has = {n for n in ("pyproject.toml", "tox.ini", "noxfile.py", "requirements.txt") if n in files}
    if not has:
        return None
    doc: dict[str, Any] = {}
    if "pyproject.toml" in files:
        try:
            doc = tomllib.loads(files["pyproject.toml"])
        except tomllib.TOMLDecodeError as exc:
            notes.append(f"{where}pyproject.toml: not valid TOML ({exc}); skipped")
            has.discard("pyproject.toml")
            if not has:
                return None
    tool = doc.get("tool") if isinstance(doc.get("tool"), dict) else {}
    assert isinstance(tool, dict)
    deps = _python_deps(doc)
    if "tox.ini" in files:
        return _tox(files["tox.ini"], where)
    if "noxfile.py" in files:
        return _nox(files["noxfile.py"], where)
    pyproject = f"{where}pyproject.toml"
    if "uv.lock" in files:
        manager, install, lock, prefix = "uv", "uv sync", "uv.lock", "uv run "
    elif "poetry.lock" in files or "poetry" in tool:
        manager, install, lock, prefix = "poetry", "poetry install", "poetry.lock", "poetry run "
        if "poetry.lock" not in files:
            lock = "pyproject.toml"
    elif "pdm.lock" in files:
        manager, install, lock, prefix = "pdm", "pdm install", "pdm.lock", "pdm run "
    else:
        manager, prefix = "pip", ".venv/bin/"
        project = doc.get("project") if isinstance(doc.get("project"), dict) else None
        if project is not None:
            extras = project.get("optional-dependencies")
            extra = next(
                (e for e in ("dev", "test", "tests") if isinstance(extras, dict) and e in extras),
                None,
            )
            target = f"'.[{extra}]'" if extra else "."
            install, lock = (
                f"python3 -m venv .venv && .venv/bin/pip install -e {target}",
                "pyproject.toml",
            )
        elif "requirements.txt" in files:
            reqs = " -r requirements-dev.txt" if "requirements-dev.txt" in files else ""
            install = f"python3 -m venv .venv && .venv/bin/pip install -r requirements.txt{reqs}"
            lock = "requirements.txt"
        else:
            return None
    src = f"{where}{lock} ({manager})"
    py = ".venv/bin/python -m " if manager == "pip" else prefix
    tests = "pytest" in deps or "pytest" in tool or "pytest.ini" in files
    lint = []
    if "ruff" in deps or "ruff" in tool:
        lint.append(Command(run=f"{py}ruff check .", source=f"{pyproject} ruff"))
    if "mypy" in tool:
        mypy = tool["mypy"]
        args = "" if isinstance(mypy, dict) and mypy.get("files") else " ."
        lint.append(Command(run=f"{py}mypy{args}", source=f"{pyproject} [tool.mypy]"))
    return _Part(
        kind="python",
        roles=_roles(
            install=Command(run=install, source=src),
            lint=lint,
            test=Command(run=f"{py}pytest", source=f"{pyproject} pytest") if tests else None,
        ),
        locks=(lock,),
        deps_dir=".venv" if manager in ("pip", "uv") else None,
    )


def _python_deps(doc: Mapping[str, Any]) -> set[str]:
    """Names of every dependency the pyproject lists (project, extras, groups, poetry)."""
    raw: list[Any] = []
    project = doc.get("project")
    if isinstance(project, dict):
        raw += project.get("dependencies") or []
        extras = project.get("optional-dependencies")
        if isinstance(extras, dict):
            for v in extras.values():
                raw += v if isinstance(v, list) else []
    groups = doc.get("dependency-groups")
    if isinstance(groups, dict):
        for v in groups.values():
            raw += v if isinstance(v, list) else []
    poetry = doc.get("tool", {}).get("poetry") if isinstance(doc.get("tool"), dict) else None
    if isinstance(poetry, dict):
        for key in ("dependencies", "dev-dependencies"):
            if isinstance(poetry.get(key), dict):
                raw += list(poetry[key])
        for group in (
            (poetry.get("group") or {}).values() if isinstance(poetry.get("group"), dict) else ()
        ):
            if isinstance(group, dict) and isinstance(group.get("dependencies"), dict):
                raw += list(group["dependencies"])
    names = set()
    for item in raw:
        if isinstance(item, str) and (m := re.match(r"\s*([A-Za-z0-9_.-]+)", item)):
            names.add(m.group(1).lower())
    return names


def _tox(text: str, where: str) -> _Part:
    envs = set(re.findall(r"^\[testenv:([^\]\s]+)\]", text, re.M))
    src = f"{where}tox.ini"
    lint = [
        Command(run=f"tox -e {e}", source=f"{src} [testenv:{e}]")
        for e in ("lint", "style", "typecheck", "type", "mypy")
        if e in envs
    ]
    return _Part(
        kind="python",
        roles=_roles(lint=lint, test=Command(run="tox -e py", source=f"{src} [testenv]")),
    )


def _nox(text: str, where: str) -> _Part:
    sessions = re.findall(r"@nox\.session\b[^\n]*\n(?:\s*@[^\n]*\n)*\s*def\s+(\w+)", text)
    src = f"{where}noxfile.py"
    lint = [
        Command(run=f"nox -s {s}", source=f"{src} session {s}")
        for s in ("lint", "lints", "style", "typecheck", "mypy")
        if s in sessions
    ]
    test = next(
        (
            Command(run=f"nox -s {s}", source=f"{src} session {s}")
            for s in ("tests", "test", "unit")
            if s in sessions
        ),
        Command(run="nox", source=f"{src} (every session)"),
    )
    return _Part(kind="python", roles=_roles(lint=lint, test=test))


# ---------------------------------------------------------------- Makefile


_TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?![:=])", re.M)
_MAKE_ROLES = {
    "install": ("deps", "install-deps", "setup", "bootstrap", "venv", "dev"),
    "lint": ("lint", "check-lint", "typecheck"),
    "test": ("test", "tests", "check"),
    "build": ("build", "all"),
}


def _make(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    name = next((n for n in ("GNUmakefile", "makefile", "Makefile") if n in files), None)
    if name is None:
        return None
    targets = frozenset(_TARGET.findall(files[name]))
    roles: dict[str, list[Command]] = {}
    for role, names in _MAKE_ROLES.items():
        hit = next((t for t in names if t in targets), None)
        if hit is not None:
            roles[role] = [Command(run=f"make {hit}", source=f"{where}{name} target {hit}")]
    if "lint" in roles and "test" in roles and roles["lint"][0].run == roles["test"][0].run:
        del roles["lint"]
    return _Part(kind="make", roles=roles, targets=targets)


# ---------------------------------------------------------------- Rust, Go, Ruby, JVM, Docker


def _rust(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    if "Cargo.toml" not in files:
        return None
    try:
        doc = tomllib.loads(files["Cargo.toml"])
    except tomllib.TOMLDecodeError as exc:
        notes.append(f"{where}Cargo.toml: not valid TOML ({exc}); skipped")
        return None
    ws = " --workspace" if "workspace" in doc else ""
    src = f"{where}Cargo.toml"
    lock = "Cargo.lock" if "Cargo.lock" in files else "Cargo.toml"
    return _Part(
        kind="rust",
        roles=_roles(
            install=Command(run="cargo fetch", source=f"{where}{lock}"),
            lint=Command(run=f"cargo clippy{ws} --all-targets -- -D warnings", source=src),
            test=Command(run=f"cargo test{ws}", source=src),
            build=Command(run=f"cargo build{ws}", source=src),
        ),
        locks=(lock,),
    )


def _go(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    if "go.mod" not in files:
        return None
    src = f"{where}go.mod"
    lock = "go.sum" if "go.sum" in files else "go.mod"
    return _Part(
        kind="go",
        roles=_roles(
            install=Command(run="go mod download", source=f"{where}{lock}"),
            lint=Command(run="go vet ./...", source=src),
            test=Command(run="go test ./...", source=src),
            build=Command(run="go build ./...", source=src),
        ),
        locks=(lock,),
    )


def _ruby(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    if "Gemfile" not in files:
        return None
    gems = set(re.findall(r"""^\s*gem\s+['"]([^'"]+)['"]""", files["Gemfile"], re.M))
    src = f"{where}Gemfile"
    lock = "Gemfile.lock" if "Gemfile.lock" in files else "Gemfile"
    if "rspec" in gems or "rspec-rails" in gems:
        test: Command | None = Command(run="bundle exec rspec", source=f"{src} gem rspec")
    elif "Rakefile" in files:
        test = Command(run="bundle exec rake test", source=f"{where}Rakefile")
    else:
        test = None
    lint = (
        Command(run="bundle exec rubocop", source=f"{src} gem rubocop")
        if "rubocop" in gems
        else None
    )
    return _Part(
        kind="ruby",
        roles=_roles(
            install=Command(run="bundle install", source=f"{where}{lock}"),
            lint=lint,
            test=test,
        ),
        locks=(lock,),
        deps_dir=None,
    )


def _maven(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    if "pom.xml" not in files:
        return None
    mvn = "./mvnw" if "mvnw" in files else "mvn"
    src = f"{where}pom.xml"
    return _Part(
        kind="maven",
        roles=_roles(
            install=Command(run=f"{mvn} -B -q dependency:go-offline", source=src),
            test=Command(run=f"{mvn} -B test", source=src),
            build=Command(run=f"{mvn} -B -DskipTests package", source=src),
        ),
        locks=("pom.xml",),
    )


def _gradle(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    name = next((n for n in ("build.gradle.kts", "build.gradle") if n in files), None)
    if name is None:
        return None
    gradle = "./gradlew" if "gradlew" in files else "gradle"
    src = f"{where}{name}"
    return _Part(
        kind="gradle",
        roles=_roles(
            test=Command(run=f"{gradle} test", source=src),
            build=Command(run=f"{gradle} assemble", source=src),
        ),
    )


def _docker(files: Mapping[str, str], where: str, notes: list[str]) -> _Part | None:
    if "Dockerfile" not in files:
        return None
    return _Part(
        kind="docker",
        roles=_roles(build=Command(run="docker build .", source=f"{where}Dockerfile")),
    )


_READERS = (_make, _node, _python, _rust, _go, _ruby, _maven, _gradle, _docker)


# ---------------------------------------------------------------- CI, as evidence


_CI_ROLES = {
    "lint": re.compile(r"\b(lint|ruff|eslint|clippy|vet|rubocop|flake8)\b"),
    "test": re.compile(r"\b(test|tests|pytest|rspec|tox|nox)\b"),
    "build": re.compile(r"\bbuild\b"),
}


def _ci_commands(files: Mapping[str, str], parse: ParseYaml, notes: list[str]) -> Iterator[Command]:
    """Each `run:` line of the GitHub workflows and each `script:` line of .gitlab-ci.yml."""
    for path in sorted(files):
        github = path.startswith(".github/workflows/") and path.endswith((".yml", ".yaml"))
        if not (github or path == ".gitlab-ci.yml"):
            continue
        try:
            doc = parse(files[path])
        except ValueError as exc:
            notes.append(f"{path}: not read ({exc})")
            continue
        if not isinstance(doc, dict):
            notes.append(f"{path}: not a mapping; skipped")
            continue
        found = _github_runs(doc) if github else _gitlab_scripts(doc)
        for text in found:
            for raw in text.splitlines():
                line = raw.strip()
                if line and not line.startswith("#"):
                    yield Command(run=line, source=path)


def _github_runs(doc: Mapping[Any, Any]) -> Iterator[str]:
    jobs = doc.get("jobs")
    for job in jobs.values() if isinstance(jobs, dict) else ():
        steps = job.get("steps") if isinstance(job, dict) else None
        for step in steps if isinstance(steps, list) else ():
            if isinstance(step, dict) and isinstance(step.get("run"), str):
                yield step["run"]


def _gitlab_scripts(doc: Mapping[Any, Any]) -> Iterator[str]:
    for job in doc.values():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script"):
            value = job.get(key)
            items = value if isinstance(value, list) else [value]
            yield from (i for i in items if isinstance(i, str))
