"""The command line: parses, calls ops, renders, exits; `main` is the console entry point.

Must not import dulwich, subprocess or pexpect, nor touch git or processes directly: every
action is a function in ops. Click is allowed only in freq/cli/*. The root group, its error
boundary and the shared options live in `base`; each command group is one module that
registers its commands on `base.cli` when imported, which this package does below.
"""

from __future__ import annotations

from freq import heap

# Importing a command module registers its commands on the root group.
from freq.cli import (  # noqa: F401
    control,
    costs,
    dlq,
    hooks,
    housekeeping,
    project,
    running,
    subjects,
    web,
)
from freq.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console entry point (`git-freq`, `freq`); the collector's pace follows the process's
    lifetime (freq.heap: start-up and exit are a large part of a short command)."""
    heap.starting()
    try:
        cli.main()
    finally:
        heap.ending()
