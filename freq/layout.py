"""Where a project's configuration lives: `.frequency/` and the files in it.

Imports only the standard library and freq.errors, so that finding the files costs nothing
(freq.config reads them; freq.configfiles parses them).
"""

from __future__ import annotations

import os
from pathlib import Path

from freq.errors import Hint, NoConfig

FOLDER = ".frequency"
SETTINGS_NAMES = ("frequency.yaml", "frequency.yml")
FACTORY_SCHEMA = "factory.schema.json"
SETTINGS_SCHEMA = "frequency.schema.json"


PACKAGED_SCHEMAS = Path(__file__).resolve().parent / "schemas"  # in a wheel: package data
CHECKOUT_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"  # in a checkout


def schema_text(name: str) -> str:
    """A schema's text: `freq/schemas/NAME` in a wheel, else `<repo>/schemas/NAME` (a checkout)."""
    packaged = PACKAGED_SCHEMAS / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (CHECKOUT_SCHEMAS / name).read_text(encoding="utf-8")


def find_config_files(root: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Every `.frequency/*.yaml` / `*.yml` file under `root` (not hidden ones), sorted by name.

    Raises NoConfig when `root` has no `.frequency/` folder.
    """
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        check_not_a_file(folder)
        raise NoConfig(f"no {FOLDER}/ folder in {root}", hint=Hint(text="run", command=("init",)))
    return tuple(
        sorted(
            (p for p in folder.iterdir() if is_config_name(p.name) and p.is_file()),
            key=lambda p: p.name,
        )
    )


def is_config_name(name: str) -> bool:
    """Whether a file of `.frequency/` named `name` is configuration (`*.yaml`, `*.yml`,
    not hidden)."""
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")


def check_not_a_file(folder: Path) -> None:
    """Raise NoConfig when `folder` (`.frequency`) exists but is a file (or a broken link)."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise NoConfig(f"{FOLDER} is a file, not a folder", hint="move it away")
