"""The lint contracts have no holes: proved by mutating a copy of the package and linting it.

Every module of freq gets an import of each outside system it does not own, and a use of
each banned stdlib escape (time.sleep, subprocess, random, ...) it does not own; one run of
import-linter and one of ruff must then report every single mutation. A module added
without a place in the layers contract must fail too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# outside system -> the modules allowed to import it (prefix match for packages)
OWNERS = {
    "dulwich": ("freq.store.git", "freq.store.wire"),
    "click": ("freq.cli",),
    "yaml": ("freq.configfiles",),
    "jsonschema": ("freq.schemas",),
    "subprocess": ("freq.proc",),
    "signal": ("freq.proc",),
    "pexpect": ("freq.proc",),
    "re2": ("freq.patterns",),
    "starlette": ("freq.web",),
    "uvicorn": ("freq.web",),
    "sse_starlette": ("freq.web",),
}
# banned stdlib escapes (ruff TID251) -> the module allowed to use each
ESCAPES = {
    "import time\ntime.sleep(0)\n": "freq.clock",
    "import time\ntime.time()\n": "freq.clock",
    "import random\n": "freq.clock",
    "import datetime\ndatetime.datetime.now()\n": "freq.clock",
}


def _modules(src: Path) -> dict[str, Path]:
    out = {}
    for path in sorted((src / "freq").rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def _owns(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def _copy(tmp: Path) -> Path:
    """The package and its lint settings, laid out as in the checkout (per-file settings
    name paths like freq/proc.py)."""
    shutil.copytree(ROOT / "freq", tmp / "freq", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def test_every_forbidden_import_in_every_module_fails_import_linter(tmp_path: Path) -> None:
    """Each module importing a system it does not own is reported, and so is a new
    module that has no layer."""
    src = _copy(tmp_path)
    expected: set[tuple[str, str]] = set()
    for module, path in _modules(src).items():
        added = [pkg for pkg, owners in OWNERS.items() if not _owns(module, owners)]
        with path.open("a") as f:
            f.write("".join(f"\nimport {pkg}  # mutation\n" for pkg in added))
        expected |= {(module, pkg) for pkg in added}
    (src / "freq" / "stray.py").write_text('"""A module with no layer."""\n')
    res = subprocess.run(
        [str(BIN / "lint-imports"), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    report = res.stdout + res.stderr
    assert res.returncode == 1, report
    found = set(re.findall(r"^-?\s*(freq[\w.]*) -> (\w+) \(l\.\d+\)", report, re.MULTILINE))
    missing = sorted(expected - found)
    assert not missing, f"mutations import-linter let through: {missing[:10]}\n{report[-2000:]}"
    assert "freq.stray" in report


def test_every_banned_escape_in_every_module_fails_ruff(tmp_path: Path) -> None:
    """time.sleep, time.time, datetime.now and random outside freq.clock, and subprocess
    outside freq.proc, are each reported in every other module (no file-wide ignores)."""
    src = _copy(tmp_path)
    expected: set[str] = set()
    for module, path in _modules(src).items():
        snippets = [code for code, owner in ESCAPES.items() if module != owner]
        if module != "freq.proc":
            snippets.append("import subprocess\n")
        path.write_text(path.read_text() + "\n" + "".join(snippets))
        expected.add(str(path.relative_to(tmp_path)))
    res = subprocess.run(
        [str(BIN / "ruff"), "check", "--select", "TID251", "--output-format", "concise", "freq"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    hits: dict[str, set[str]] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^(freq/\S+?\.py):\d+:\d+: TID251 `([\w.]+)` is banned", line)
        if m:
            hits.setdefault(m.group(1), set()).add(m.group(2))
    missing = []
    for rel in sorted(expected):
        module = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        want = {"time.sleep", "time.time", "random", "datetime.datetime.now"} - (
            {"time.sleep", "time.time", "random", "datetime.datetime.now"}
            if module == "freq.clock"
            else set()
        )
        if module != "freq.proc":
            want.add("subprocess")
        if not want <= hits.get(rel, set()):
            missing.append((rel, sorted(want - hits.get(rel, set()))))
    assert not missing, f"escapes ruff let through: {missing[:10]}\n{res.stdout[-2000:]}"
