"""Shared test helpers: workflow text around a fake server, bounded waits for processes."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

import axo
from axo.testing import FakeLLM

T = TypeVar("T")


def fake_workflow(
    fake: FakeLLM,
    agents_yaml: str,
    *,
    retries: int = 0,
    timeout: float = 10,
    backoff: float = 0.01,
    extra: str = "",
) -> axo.Workflow:
    """A workflow whose only provider is ``fake``; ``agents_yaml`` is the agents: list body."""
    text = (
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}', max_retries: {retries},"
        f" timeout: {timeout}, backoff: {backoff}}}\n"
        "agents:\n" + agents_yaml + extra
    )
    return axo.load_workflow("test.yaml", text=text)


def descendants(root: int | None = None) -> set[int]:
    """Every live process below ``root`` (default: this process), read from /proc."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: set[int] = set()
    stack = [root]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def forked_copies() -> set[int]:
    """Live processes, other than this one, running this process's command line: the copies
    multiprocessing forks (Thespian's admin daemonizes, so they are not our descendants)."""
    with open("/proc/self/cmdline", "rb") as f:
        mine = f.read()
    me = os.getpid()
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() == mine and alive(int(entry)):
                    out.add(int(entry))
        except OSError:
            continue
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait (bounded, no sleep: pidfds become readable on exit) until ``pids`` have exited;
    return those still alive at the deadline."""
    fds = {}
    for pid in pids:
        try:
            fds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
    try:
        pending = dict(fds)
        deadline = _now() + timeout
        while pending:
            left = deadline - _now()
            if left <= 0:
                break
            ready, _, _ = select.select(list(pending.values()), [], [], left)
            for fd in ready:
                pending = {p: f for p, f in pending.items() if f != fd}
        return {p for p in pending if alive(p)}
    finally:
        for fd in fds.values():
            os.close(fd)


def _now() -> float:
    import time

    return time.monotonic()


def outcome_within(fn: Callable[[], T], seconds: float, hang: str) -> T | BaseException:
    """What ``fn`` returned or raised, run on a thread of its own; the test fails with ``hang``
    when it is still running after ``seconds`` (a bounded join: no sleep)."""
    out: list[T | BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), hang
    (outcome,) = out
    return outcome
