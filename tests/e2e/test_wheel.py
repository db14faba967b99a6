"""The distribution as users install it: `git-freq` built as a wheel, installed into a fresh
venv (as pipx and uv tool do), and run from there, away from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REAL_HOME, new_repo

pytestmark = [pytest.mark.e2e, pytest.mark.git]

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )
    assert out.returncode == 0, f"{argv}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _tracked_package_files() -> set[str]:
    out = _run("git", "ls-files", "freq", cwd=ROOT)
    return {p for p in out.splitlines() if not p.endswith(".py")}


def test_the_built_wheel_installs_and_runs_as_git_freq(tmp_path: Path) -> None:
    """The wheel is named git_freq, carries the schemas, the hook shims, the man pages and
    every data file under freq/ (the dashboard's assets among them, when there are any);
    installed in a fresh venv it answers --version, --help and validates a repository."""
    env = dict(os.environ)
    cache = Path(REAL_HOME) / ".cache" / "pip"
    if REAL_HOME and cache.is_dir():
        env["PIP_CACHE_DIR"] = str(cache)  # the hermetic HOME has an empty one
    dist = tmp_path / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        ROOT,
        "-w",
        dist,
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = dist.glob("git_freq-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    version = wheel.name.split("-")[1]
    data = f"git_freq-{version}.data/data/share/man/man1"
    for expected in (
        "freq/schemas/factory.schema.json",
        "freq/schemas/frequency.schema.json",
        "freq/shims/pre-push",
        "freq/shims/update",
        f"{data}/git-freq.1",
        f"{data}/freq.1",
        "freq/cli/__init__.py",
        "freq/analyse.py",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert _tracked_package_files() <= names  # package data under freq/, whatever it is
    meta = zipfile.ZipFile(wheel).read(f"git_freq-{version}.dist-info/METADATA").decode()
    assert "\nName: git-freq\n" in meta

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "pip", "install", "-q", wheel, cwd=tmp_path, env=env)
    bin_ = venv / "bin"
    assert (venv / "share" / "man" / "man1" / "git-freq.1").is_file()
    # run from the venv alone: the checkout is not on sys.path
    clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean["PATH"] = f"{bin_}{os.pathsep}{env['PATH']}"
    assert _run(bin_ / "git-freq", "--version", cwd=tmp_path, env=clean) == (
        f"git-freq, version {version}\n"
    )
    where = _run(
        bin_ / "python", "-c", "import freq; print(freq.__file__)", cwd=tmp_path, env=clean
    )
    assert where.startswith(str(venv)), where
    helped = _run(bin_ / "git-freq", "--help", cwd=tmp_path, env=clean)
    assert helped.startswith("Usage: git freq [OPTIONS] COMMAND") and "  init " in helped
    repo = new_repo(tmp_path / "sample")
    repo.write("go.mod", "module example.com/x\n")
    _run("git", "freq", "init", "--analyse", cwd=repo.path, env=clean)
    assert _run("git", "freq", "validate", cwd=repo.path, env=clean) == "ok: 1 factory (build)\n"
    # `git freq --help` is `git help freq`, which opens the page the wheel installed
    manpath = {**clean, "MANPATH": str(venv / "share" / "man"), "MANPAGER": "cat", "PAGER": "cat"}
    if subprocess.run(["sh", "-c", "command -v man"], capture_output=True, check=False).returncode:
        return
    page = _run("git", "freq", "--help", cwd=repo.path, env=manpath)
    assert "GIT-FREQ" in page.upper()
