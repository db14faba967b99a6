"""Fixtures of the real-CLI suite: the installed CLIs, a fresh repository and an empty
HOME per run. Every test here is marked `agents` and skipped unless `make test-agents`
installed the CLIs (it sets FREQ_AGENTS_BIN); `make test` deselects the marker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agents_real import clis
from tests.conftest import FreqRepo, new_repo


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `agents`, and skip them when the CLIs are missing."""
    here = Path(__file__).parent
    missing = clis.bin_dir() is None
    skip = pytest.mark.skip(
        reason=f"the agent CLIs are not installed ({clis.BIN_ENV} unset): run `make test-agents`"
    )
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.agents)
            if missing:
                item.add_marker(skip)


@dataclass(frozen=True, slots=True)
class Place:
    """Where one CLI run happens: a git repository (cwd), its own HOME and TMPDIR."""

    repo: FreqRepo
    home: Path
    tmp: Path

    @property
    def cwd(self) -> Path:
        return self.repo.path

    def env(self, **extra: str) -> dict[str, str]:
        """The run's environment: clis.base_env plus `extra`."""
        return {**clis.base_env(self.home, tmp=self.tmp), **extra}


@pytest.fixture
def place(tmp_path: Path) -> Place:
    """A fresh git repository with one commit, an empty HOME and a TMPDIR."""
    home = tmp_path / "agent-home"
    tmp = tmp_path / "agent-tmp"
    home.mkdir()
    tmp.mkdir()
    return Place(repo=new_repo(tmp_path / "repo"), home=home, tmp=tmp)
