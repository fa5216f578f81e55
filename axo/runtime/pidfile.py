"""Which process runs a durable run: a pid file in the run's folder while it runs, so that
``axo runs`` and ``axo stop`` can tell a killed run from a running one."""

from __future__ import annotations

import os

PID_FILE = "pid"


def write_pid(run_dir: str) -> None:
    """Note that this process runs the run in ``run_dir`` (removed when it finishes)."""
    with open(os.path.join(run_dir, PID_FILE), "w") as f:
        f.write(f"{os.getpid()}\n")


def _recorded(run_dir: str) -> tuple[int, bool] | None:
    """The pid in ``run_dir``'s pid file and whether that process lives; None without one."""
    try:
        with open(os.path.join(run_dir, PID_FILE)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid, False
    except PermissionError:  # someone else's: alive
        return pid, True
    return pid, True


def run_process_gone(run_dir: str) -> bool:
    """Whether the process that was running the run in ``run_dir`` has gone without
    finishing it (killed): its pid file is there and names no live process."""
    found = _recorded(run_dir)
    return found is not None and not found[1]


def live_process(run_dir: str) -> int | None:
    """The pid of the live process (another than this one) whose pid file is in ``run_dir``,
    or None."""
    found = _recorded(run_dir)
    if found is None or not found[1] or found[0] == os.getpid():
        return None
    return found[0]
