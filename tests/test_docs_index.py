"""Every page under docs/ is linked from the README, so a new page (the dashboard's, say)
is found from the front page; and every docs/ link of the README names a page that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_docs_page_is_linked_from_the_readme() -> None:
    """docs/*.md each appear as a (docs/NAME.md) link in README.md."""
    readme = (ROOT / "README.md").read_text()
    missing = [
        p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"(docs/{p.name}" not in readme
    ]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_every_docs_link_of_the_readme_exists() -> None:
    """No README link points at a page that is not there."""
    readme = (ROOT / "README.md").read_text()
    links = set(re.findall(r"\(docs/([A-Za-z0-9_.-]+\.md)", readme))
    assert links, "the README links no docs page"
    assert not [name for name in sorted(links) if not (ROOT / "docs" / name).is_file()]
