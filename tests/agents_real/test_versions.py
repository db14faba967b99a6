"""The installed CLIs are the versions the stubs and samples were made for."""

from __future__ import annotations

import pytest

from tests.agents_real import clis
from tests.agents_real.conftest import Place

pytestmark = pytest.mark.agents


@pytest.mark.parametrize("name", sorted(clis.VERSIONS))
def test_installed_version_is_the_pinned_one(place: Place, name: str) -> None:
    """`<cli> --version` names the version Makefile and clis.VERSIONS pin."""
    run = clis.run_cli([name, "--version"], cwd=place.cwd, env=place.env(), timeout=60)
    assert run.exit_code == 0, run.explain()
    assert clis.VERSIONS[name] in run.stdout.split(), run.explain()
