"""A chaos test's step: registers itself, checks the invariants at its start, sleeps.

Run by the chaos test's factory as a real process. Under one flock it removes the records
of steps that are no longer alive, counts the live ones, and appends one JSON line to the
audit log: how many steps were running at its start (global, of its own step, of its
lock's step) and whether another live run of the same subject and step existed. The
counts only rise at a start, so checking each start checks every instant.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(os.environ["AUDIT"])
LIVE = ROOT / "live"
LOCKED_STEP = "ship"  # the step that takes the named lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not running
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def main() -> int:
    me = {
        "pid": os.getpid(),
        "subject": os.environ["FREQ_SUBJECT"],
        "step": os.environ["FREQ_STEP"],
        "attempt": int(os.environ["FREQ_ATTEMPT"]),
        "worker": os.environ["FREQ_WORKER"],
    }
    LIVE.mkdir(parents=True, exist_ok=True)
    with open(ROOT / "audit.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        live = []
        for rec in LIVE.iterdir():
            try:
                other = json.loads(rec.read_text())
            except FileNotFoundError:
                continue  # removed meanwhile by a step that was killed mid-way
            if _alive(other["pid"]):
                live.append(other)
            else:
                rec.unlink()
        twin = [o for o in live if (o["subject"], o["step"]) == (me["subject"], me["step"])]
        row = {
            **me,
            "at": time.time(),
            "running": len(live) + 1,
            "same_step": sum(o["step"] == me["step"] for o in live) + 1,
            "twin": [o["pid"] for o in twin],
        }
        (LIVE / str(me["pid"])).write_text(json.dumps(me))
        with open(ROOT / "audit.jsonl", "a") as log:
            log.write(json.dumps(row) + "\n")
    time.sleep(float(sys.argv[1]))
    with open(ROOT / "audit.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # readers list the records under this lock
        (LIVE / str(me["pid"])).unlink(missing_ok=True)
        with open(ROOT / "ends.jsonl", "a") as log:
            log.write(json.dumps({**me, "at": time.time()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
