"""User actions as plain functions: one per command, shared by the CLI and the dashboard.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError). freq/cli/ renders;
server.py will serve the same. Callers use `from freq import ops` and `ops.X`; the actions live
in `app` (the App handle), `project`, `subjects`, `running` (the run loop), `control` (and
locks), `dlq`, `costs`, `cleanup` (housekeeping) and `hooks` (the git hooks), and are
re-exported here.

The re-exports are lazy (PEP 562 module `__getattr__`): importing this package imports none
of its submodules, so `git freq --version` and `--help` do not pay for dulwich, yaml,
jsonschema and the run loop; `ops.X` imports X's module on first use. Type checkers read the
same names from the `TYPE_CHECKING` block.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freq.ops.analyse import AnalyseResult, init_analysed
    from freq.ops.app import App
    from freq.ops.archive import ArchiveResult, ArchiveRow, archive
    from freq.ops.cleanup import ChainRow, CleanupResult, TaskReport, cleanup
    from freq.ops.control import (
        ApproveResult,
        ControlResult,
        LockRow,
        approve,
        break_lock,
        list_locks,
        pause,
        resume,
        set_autonomy,
    )
    from freq.ops.costs import BudgetRow, CostsResult, costs_report
    from freq.ops.discover import discover
    from freq.ops.dlq import (
        DiagnoseResult,
        DlqListResult,
        DlqRow,
        DlqShow,
        RequeueResult,
        dlq_diagnose,
        dlq_fix,
        dlq_list,
        dlq_requeue,
        dlq_show,
    )
    from freq.ops.hooks import (
        HookResult,
        Installed,
        InstallResult,
        hook_pre_push,
        hook_update,
        install_hooks,
    )
    from freq.ops.project import (
        STARTER_BUILD,
        STARTER_SETTINGS,
        GraphInput,
        InitResult,
        ValidateResult,
        graph_input,
        init_project,
        validate,
    )
    from freq.ops.running import run
    from freq.ops.scaffold import Choice
    from freq.ops.subjects import (
        AddResult,
        FactoryStatus,
        LogResult,
        OrphanStatus,
        ShowResult,
        StatusResult,
        TransitionResult,
        WhyResult,
        add_subjects,
        log,
        parse_data,
        parse_subjects,
        plan_now,
        show,
        status,
        transition,
        why,
    )

__all__ = [
    "STARTER_BUILD", "STARTER_SETTINGS", "AddResult", "AnalyseResult", "App", "ApproveResult",
    "ArchiveResult", "ArchiveRow", "BudgetRow",
    "ChainRow", "Choice", "CleanupResult", "ControlResult", "CostsResult", "DiagnoseResult",
    "DlqListResult", "DlqRow", "DlqShow", "FactoryStatus", "GraphInput", "HookResult",
    "InitResult", "InstallResult", "Installed", "LockRow",
    "LogResult", "OrphanStatus",
    "RequeueResult", "ShowResult", "StatusResult", "TaskReport", "TransitionResult",
    "ValidateResult", "WhyResult", "add_subjects", "approve", "archive", "break_lock", "cleanup",
    "costs_report", "discover",
    "dlq_diagnose", "dlq_fix", "dlq_list",
    "dlq_requeue", "dlq_show", "graph_input", "hook_pre_push", "hook_update", "init_analysed",
    "init_project",
    "install_hooks", "list_locks", "log",
    "parse_data", "parse_subjects", "pause", "plan_now", "resume", "run", "set_autonomy",
    "show", "status", "transition", "validate", "why",
]  # fmt: skip

# Which submodule defines each name of __all__ (a test checks that the two agree).
_NAMES_BY_MODULE: dict[str, tuple[str, ...]] = {
    "analyse": ("AnalyseResult", "init_analysed"),
    "app": ("App",),
    "archive": ("ArchiveResult", "ArchiveRow", "archive"),
    "cleanup": ("ChainRow", "CleanupResult", "TaskReport", "cleanup"),
    "control": (
        "ApproveResult", "ControlResult", "LockRow", "approve", "break_lock", "list_locks",
        "pause", "resume", "set_autonomy",
    ),
    "costs": ("BudgetRow", "CostsResult", "costs_report"),
    "discover": ("discover",),
    "dlq": (
        "DiagnoseResult", "DlqListResult", "DlqRow", "DlqShow", "RequeueResult", "dlq_diagnose",
        "dlq_fix", "dlq_list", "dlq_requeue", "dlq_show",
    ),
    "hooks": (
        "HookResult", "InstallResult", "Installed", "hook_pre_push", "hook_update",
        "install_hooks",
    ),
    "project": (
        "STARTER_BUILD", "STARTER_SETTINGS", "GraphInput", "InitResult", "ValidateResult",
        "graph_input", "init_project", "validate",
    ),
    "running": ("run",),
    "scaffold": ("Choice",),
    "subjects": (
        "AddResult", "FactoryStatus", "LogResult", "OrphanStatus", "ShowResult", "StatusResult",
        "TransitionResult",
        "WhyResult", "add_subjects", "log", "parse_data", "parse_subjects", "plan_now",
        "show", "status", "transition", "why",
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _NAMES_BY_MODULE.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines `name`, and keep the name here for next time."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


class _Package(ModuleType):
    """Keeps `ops.discover` the function. Importing the submodule freq.ops.discover makes the
    import system set this package's attribute `discover` to that module; an eager
    `from freq.ops.discover import discover` used to bind the function over it afterwards."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not (isinstance(value, ModuleType) and name in _HOME):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
