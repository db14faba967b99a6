"""Each build system's conventions: what a directory's build files say to run, and why.

Pure, like freq.analyse, which calls it: no I/O, no environment, no outside system. Each
reader takes one directory's files ({name: text}), the directory as a prefix for sources
(`frontend/`) and a list to append notes to, and returns the Part it recognises (its
commands for install, lint, test and build, the lock files a change of which means
installing again, the folder the install creates) or None. freq.analyse combines them.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("install", "lint", "test", "build")

# The placeholder `npm init` writes as the test script: it always fails.
_NPM_PLACEHOLDER = "no test specified"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A shell command for one role, run from its component's directory, and why."""

    run: str
    source: str  # `package.json scripts.test`, `Makefile target test`, ...


def read_json(text: str | None) -> Any:
    """`text` parsed as JSON, or None when it is missing or not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
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


def _node(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
    if "package.json" not in files:
        return None
    doc = read_json(files["package.json"])
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
    return Part(
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


def _python(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
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
    return Part(
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


def _tox(text: str, where: str) -> Part:
    envs = set(re.findall(r"^\[testenv:([^\]\s]+)\]", text, re.M))
    src = f"{where}tox.ini"
    lint = [
        Command(run=f"tox -e {e}", source=f"{src} [testenv:{e}]")
        for e in ("lint", "style", "typecheck", "type", "mypy")
        if e in envs
    ]
    return Part(
        kind="python",
        roles=_roles(lint=lint, test=Command(run="tox -e py", source=f"{src} [testenv]")),
    )


def _nox(text: str, where: str) -> Part:
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
    return Part(kind="python", roles=_roles(lint=lint, test=test))


# ---------------------------------------------------------------- Makefile


_TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?![:=])", re.M)
_MAKE_ROLES = {
    "install": ("deps", "install-deps", "setup", "bootstrap", "venv", "dev"),
    "lint": ("lint", "check-lint", "typecheck"),
    "test": ("test", "tests", "check"),
    "build": ("build", "all"),
}


def _make(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
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
    return Part(kind="make", roles=roles, targets=targets)


# ---------------------------------------------------------------- Rust, Go, Ruby, JVM, Docker


def _rust(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
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
    return Part(
        kind="rust",
        roles=_roles(
            install=Command(run="cargo fetch", source=f"{where}{lock}"),
            lint=Command(run=f"cargo clippy{ws} --all-targets -- -D warnings", source=src),
            test=Command(run=f"cargo test{ws}", source=src),
            build=Command(run=f"cargo build{ws}", source=src),
        ),
        locks=(lock,),
    )


def _go(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
    if "go.mod" not in files:
        return None
    src = f"{where}go.mod"
    lock = "go.sum" if "go.sum" in files else "go.mod"
    return Part(
        kind="go",
        roles=_roles(
            install=Command(run="go mod download", source=f"{where}{lock}"),
            lint=Command(run="go vet ./...", source=src),
            test=Command(run="go test ./...", source=src),
            build=Command(run="go build ./...", source=src),
        ),
        locks=(lock,),
    )


def _ruby(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
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
    return Part(
        kind="ruby",
        roles=_roles(
            install=Command(run="bundle install", source=f"{where}{lock}"),
            lint=lint,
            test=test,
        ),
        locks=(lock,),
        deps_dir=None,
    )


def _maven(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
    if "pom.xml" not in files:
        return None
    mvn = "./mvnw" if "mvnw" in files else "mvn"
    src = f"{where}pom.xml"
    return Part(
        kind="maven",
        roles=_roles(
            install=Command(run=f"{mvn} -B -q dependency:go-offline", source=src),
            test=Command(run=f"{mvn} -B test", source=src),
            build=Command(run=f"{mvn} -B -DskipTests package", source=src),
        ),
        locks=("pom.xml",),
    )


def _gradle(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
    name = next((n for n in ("build.gradle.kts", "build.gradle") if n in files), None)
    if name is None:
        return None
    gradle = "./gradlew" if "gradlew" in files else "gradle"
    src = f"{where}{name}"
    return Part(
        kind="gradle",
        roles=_roles(
            test=Command(run=f"{gradle} test", source=src),
            build=Command(run=f"{gradle} assemble", source=src),
        ),
    )


def _docker(files: Mapping[str, str], where: str, notes: list[str]) -> Part | None:
    if "Dockerfile" not in files:
        return None
    return Part(
        kind="docker",
        roles=_roles(build=Command(run="docker build .", source=f"{where}Dockerfile")),
    )


READERS = (_make, _node, _python, _rust, _go, _ruby, _maven, _gradle, _docker)
