"""The run actor's watch over its agent actors' processes (multiproc): an agent whose
process dies fails at once, and gets a new actor when it is next activated.

Thespian tells a parent ``ChildActorExited`` when it notices a child's death on SIGCHLD, but it
can miss one (two children dying together), and nothing looks again. So agent actors report
their pid when configured, and while a run is on the run actor looks now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from axo.lattice import State
from axo.messages import AgentFailed, AgentSpec, Configure

RUNNING = int(State.RUNNING)


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (reaped, or a zombie where /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class ChildWatch:
    """Mixin of the run actor: its agent actors' processes (``dead``, ``pids``)."""

    start: Any
    lattice: Any
    over: bool
    actors: list[Any]
    plans: dict[int, Any]
    dead: set[int]
    pids: dict[int, int]
    starts: int
    host: Any
    agent_class: type

    def _watch_children(self, tag: object) -> None:
        """Multiproc: while a run is on, look now and then for agent processes that are
        gone (Thespian's ChildActorExited can miss one whose exit it did not see)."""
        start = self.start
        if start is None or self.over or tag != self.starts or not start.watch_children:
            return
        for i, pid in list(self.pids.items()):
            if i < len(self.actors) and process_gone(pid):
                del self.pids[i]
                self._child_exited(self.actors[i])
        if not self.over:
            self.wakeupAfter(timedelta(seconds=start.watch_children), payload=self.starts)

    def _child_exited(self, address: Any) -> None:
        """An agent actor is gone: what it was running fails (its dependents are skipped;
        ``--resume`` runs it again). It gets a new actor when it is next activated."""
        if address not in self.actors:
            return
        i = self.actors.index(address)
        self.dead.add(i)
        self.pids.pop(i, None)
        start, lattice = self.start, self.lattice
        if start is None or lattice is None or self.over or lattice.state[i] != RUNNING:
            return
        if i in self.plans:  # a coordinator whose plan runs: its own work is done
            return
        self._failed(
            AgentFailed(
                run_id=start.run_id,
                agent=i,
                reason="its actor's process exited while it was running",
                kind="ActorExited",
                finished_at=time.time(),
            )
        )

    def _revive(self, i: int, spec: AgentSpec) -> None:
        """A new actor for agent ``i``, whose actor died (messages keep their order: it is
        configured before anything else reaches it)."""
        self.dead.discard(i)
        self.pids.pop(i, None)
        self.actors[i] = self.createActor(self.agent_class)
        self.send(self.actors[i], Configure(spec=spec, run=self.myAddress, host=self.host))


def watch_exit(
    loop: asyncio.AbstractEventLoop, pid: int, gone: Callable[[], None]
) -> Callable[[], None]:
    """Call ``gone`` on ``loop`` once process ``pid`` exits (its pidfd becomes readable: no
    polling); returns what stops the watch. Where there are no pidfds, nothing is watched."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return lambda: None
    open_ = [True]

    def stop() -> None:
        if open_:
            open_.clear()
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
            os.close(fd)

    def fire() -> None:
        stop()
        gone()

    loop.add_reader(fd, fire)
    return stop
