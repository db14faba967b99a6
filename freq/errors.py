"""The one error tree of Frequency, and its exit codes.

Imports nothing from freq. Every error a user can cause is a FreqError with a kebab-case
`code`, a one-line `message` and an optional `hint` (the next command to run); the
boundary in freq/cli/ (and later server.py) is the only place that turns them into output.

    FreqError                      exit 1
    ├── UsageError                 exit 2: the call's words are off
    ├── ConfigError                invalid .frequency/ files; carries every Problem
    ├── NotARepository             not inside a git repository
    ├── NoConfig                   no .frequency/ folder (hint: git freq init)
    ├── InvalidName                a name that cannot be a ref component
    ├── StepNotRunnable            a step that cannot start for this subject
    ├── UnknownFactory / UnknownSubject / UnknownState
    ├── SubjectExists
    ├── CorruptState               a ref under refs/frequency/ that Frequency cannot read
    │   └── BrokenHistory          its chain names an object the repository lacks
    ├── StateDirUnusable           .git/frequency/ is not a folder Frequency can use
    ├── RefConflict                a compare-and-swap lost its race (retryable)
    ├── WriteBlocked               a write that cannot be made now; a worker waits it out
    │   ├── GitLockHeld            a *.lock file held by someone else (retryable)
    │   ├── DiskFull               no space left; nothing was written
    │   └── WriteFailed            the repository refused a write (read-only, permissions)
    ├── LockHeld                   a named lock is held by another attempt (retryable)
    ├── CapFull                    a cap has no free slot at the moment of claiming (retryable)
    ├── UnknownEntry               no dead-letter entry with that id
    ├── AlreadyRequeued            a dead-letter entry that was requeued before
    ├── BatchIncomplete            a ref batch stopped part-way through its writes
    ├── MergeError                 git failed combining a branch onto its target (not a conflict)
    ├── WorktreeError              a git command of the worktree pool failed (git's last line)
    └── (more are added by the issues that need them)
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    """What to do next, as data each front end renders in its own words: plain `text`, and
    the Frequency action that does it as a command (its words after `git freq`, which the
    dashboard may offer as a button) or an `option` of the failed call (a parameter name,
    `skip_existing`, which the CLI shows as --skip-existing)."""

    text: str
    command: tuple[str, ...] = ()
    option: str | None = None

    def plain(self) -> str:
        """A front-end-neutral rendering: `wait, or break it (locks break deploy)`."""
        extra = " ".join(self.command) or (self.option or "")
        return f"{self.text} ({extra})" if extra else self.text


class FreqError(Exception):
    """Base of every error Frequency reports to a user."""

    code = "freq-error"
    exit_code = EXIT_FAILURE
    retryable = False

    def __init__(self, message: str, *, hint: Hint | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = Hint(text=hint) if isinstance(hint, str) else hint

    def one_line(self) -> str:
        """The message with its hint folded in, front-end neutral (see render.error_line)."""
        return f"{self.message}; {self.hint.plain()}" if self.hint else self.message

    def as_json(self) -> dict[str, object]:
        """The error as a JSON object for `--json` output; the hint as data."""
        hint = self.hint
        return {
            "code": self.code,
            "message": self.message,
            "hint": None
            if hint is None
            else {"text": hint.text, "command": list(hint.command), "option": hint.option},
        }


class UsageError(FreqError):
    """The command line was malformed."""

    code = "usage"
    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One problem in a configuration file: where it is and what is wrong."""

    path: str
    line: int | None
    where: str
    reason: str

    def __str__(self) -> str:
        loc = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{loc}: {self.where}: {self.reason}" if self.where else f"{loc}: {self.reason}"


class ConfigError(FreqError):
    """One or more configuration problems; all are reported at once."""

    code = "invalid-config"

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        first = str(self.problems[0]) if self.problems else "invalid configuration"
        message = first if n == 1 else f"{n} problems in configuration"
        super().__init__(message, hint=None)

    def as_json(self) -> dict[str, object]:
        data = super().as_json()
        data["problems"] = [
            {"path": p.path, "line": p.line, "where": p.where, "reason": p.reason}
            for p in self.problems
        ]
        return data


class NotARepository(FreqError):
    """The directory is not inside a git repository."""

    code = "not-a-repository"


class UnknownFactory(FreqError):
    """A factory id that no configuration file defines."""

    code = "unknown-factory"


class UnknownSubject(FreqError):
    """A subject that does not exist in the named factory."""

    code = "unknown-subject"


class UnknownState(FreqError):
    """A state that the factory does not define."""

    code = "unknown-state"


class SubjectExists(FreqError):
    """Adding a subject that already exists."""

    code = "subject-exists"


class InvalidName(FreqError):
    """A factory, subject or lock name that cannot be a ref component."""

    code = "invalid-name"


class CorruptState(FreqError):
    """A ref under refs/frequency/ whose content Frequency cannot read."""

    code = "corrupt-state"


class BrokenHistory(CorruptState):
    """A commit of a ref's chain (or its tree, or a file of it) is not in the object store:
    `git gc --prune=now` removed an object no ref reached yet, and a ref then moved onto it
    or a commit was built on it. `at` is the commit where the chain breaks; `missing` the
    object that is absent (the commit itself unless a tree or file is named)."""

    code = "broken-history"

    def __init__(self, ref: str, at: str, *, missing: str | None = None, what: str = "") -> None:
        if missing is None or missing == at:
            why = "a commit git gc --prune=now removed?"
        else:
            why = f"its {what} {missing[:12]} is missing: git gc --prune=now removed it?"
        super().__init__(
            f"{ref}: history broken at {at[:12]} ({why})",
            hint=Hint(text="run", command=("cleanup", "--repair")),
        )
        self.ref = ref
        self.at = at
        self.missing = missing or at


class StateDirUnusable(FreqError):
    """.git/frequency/ (logs, the creation lock) is not a folder this process can use."""

    code = "state-dir-unusable"


class RefConflict(FreqError):
    """A compare-and-swap lost its race: the ref moved since it was read."""

    code = "lost-race"
    retryable = True

    def __init__(self, ref: str, message: str | None = None) -> None:
        super().__init__(message or f"lost race on {ref}: it moved since it was read")
        self.ref = ref


class WriteBlocked(FreqError):
    """A write that could not be made now, and may be later: a worker skips it for the
    cycle (or, for a result, retries it while its lease lasts) instead of stopping."""


class GitLockHeld(WriteBlocked):
    """A git lock file is held by another process and did not clear in time."""

    code = "git-lock-held"
    retryable = True


class RemoteUnreachable(WriteBlocked):
    """The coordination remote could not be reached (a partition, a stopped server): no
    claim is made, and a finished attempt's result is kept locally until a push succeeds."""

    code = "remote-unreachable"
    retryable = True


class RemoteRefused(WriteBlocked):
    """The remote turned a push away for a reason other than a lost race: a server hook
    refused it, or it lacks what Frequency needs (atomic pushes). A worker says so once
    and goes on with its other work, as for a lock it cannot take now."""

    code = "remote-refused"


class StepNotRunnable(FreqError):
    """A step cannot be started for the subject (wrong state, gate, ...)."""

    code = "not-runnable"


class NoConfig(FreqError):
    """The repository has no .frequency/ folder yet."""

    code = "no-config"


class DiskFull(WriteBlocked):
    """The disk (or quota) filled up; nothing was written."""

    code = "disk-full"


class WriteFailed(WriteBlocked):
    """The repository refused a write (a read-only disk, permissions, a file where git
    keeps a folder); nothing was changed."""

    code = "write-failed"


class LockHeld(FreqError):
    """A named lock is held by someone else."""

    code = "lock-held"
    retryable = True


class CapFull(FreqError):
    """A cap's semaphore is full at the moment of claiming."""

    code = "cap-full"
    retryable = True


class UnknownEntry(FreqError):
    """No dead-letter entry with that id."""

    code = "unknown-dlq-entry"


class AlreadyRequeued(FreqError):
    """The entry was requeued before; requeue the newer failure instead."""

    code = "already-requeued"


class BatchIncomplete(FreqError):
    """A ref batch whose writes stopped part-way (a full disk): which refs moved, which not.

    Batches are ordered so that such a prefix is harmless (a claim's cap slots move before
    its subject ref; slots whose claim never landed free themselves)."""

    code = "batch-incomplete"
    retryable = True


class MergeError(FreqError):
    """git failed while combining a branch onto its target or moving a branch (a bad
    revision, unrelated histories, a repository git cannot write); a conflict is not one."""

    code = "merge"


class WorktreeError(FreqError):
    """A git command of the worktree pool failed (or its folder is unusable); the message
    names what failed and git's last line on stderr."""

    code = "worktree"
