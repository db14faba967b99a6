"""User actions as plain functions: one per command, shared by the CLI and the dashboard.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError). freq/cli/ renders;
server.py will serve the same. Callers use `from freq import ops` and `ops.X`; the actions live
in `app` (the App handle), `project`, `subjects`, `control` (and locks) and `dlq`, and are
re-exported here.
"""

from __future__ import annotations

from freq.ops.app import App
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
from freq.ops.discover import discover
from freq.ops.dlq import (
    DlqListResult,
    DlqRow,
    DlqShow,
    RequeueResult,
    dlq_list,
    dlq_requeue,
    dlq_show,
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
    run,
    show,
    status,
    transition,
    why,
)

__all__ = [
    "STARTER_BUILD",
    "STARTER_SETTINGS",
    "AddResult",
    "App",
    "ApproveResult",
    "ControlResult",
    "DlqListResult",
    "DlqRow",
    "DlqShow",
    "FactoryStatus",
    "GraphInput",
    "InitResult",
    "LockRow",
    "LogResult",
    "OrphanStatus",
    "RequeueResult",
    "ShowResult",
    "StatusResult",
    "TransitionResult",
    "ValidateResult",
    "WhyResult",
    "add_subjects",
    "approve",
    "break_lock",
    "discover",
    "dlq_list",
    "dlq_requeue",
    "dlq_show",
    "graph_input",
    "init_project",
    "list_locks",
    "log",
    "parse_data",
    "parse_subjects",
    "pause",
    "plan_now",
    "resume",
    "run",
    "set_autonomy",
    "show",
    "status",
    "transition",
    "validate",
    "why",
]
