"""How the host's loop and the Thespian actor system exchange messages (see ``axo.runtime.host``).

- ``InlineBridge`` (local mode): simpleSystemBase runs actors inside ``tell``/``listen`` on the
  calling thread, so a send is followed by draining the external address.
- ``ThreadBridge`` (multiproc mode): one thread owns every Thespian call (the external
  interface is not thread-safe), executes queued sends and listens in short slices, handing
  what arrives to the loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

from axo.runtime.actors import RunActor
from axo.runtime.system import ActorRuntime, ExitRequest

# a job's report: the future that fails with its exception, and what gets its result (on the loop)
_Report = tuple[asyncio.Future[Any], Callable[[Any], None]]


class InlineBridge:
    """Local mode: actors run inside our calls, on the loop's thread."""

    def __init__(self, rt: ActorRuntime, deliver: Callable[[object], None]) -> None:
        self.rt, self.deliver = rt, deliver

    async def create_run_actor(self) -> Any:
        return self.rt.create(RunActor)

    def send(
        self,
        address: Any,
        message: object,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Send; ``failed`` (if given) hears why a message could not be sent."""
        try:
            self.rt.tell(address, message)
        except Exception as exc:
            if failed is None:
                raise
            failed(exc)
        while (m := self.rt.listen(0)) is not None:
            self.deliver(m)

    def close(self) -> None:
        pass


class ThreadBridge:
    """Multiproc mode: a thread owns the actor system; the loop talks to it by queue."""

    SLICE = 0.002  # seconds per listen; bounds the latency of a queued send

    def __init__(
        self, rt: ActorRuntime, deliver: Callable[[object], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.rt, self.deliver, self.loop = rt, deliver, loop
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], _Report | None]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="axo-bridge", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            self._run_jobs()
            m = self.rt.listen(self.SLICE)
            if m is not None:
                self.loop.call_soon_threadsafe(self.deliver, m)
        self._run_jobs()  # sends queued before close (an ExitRequest) still go

    def _run_jobs(self) -> None:
        while True:
            try:
                job, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                out = job()
            except BaseException as exc:  # report to the caller, keep pumping
                if fut is not None:
                    self.loop.call_soon_threadsafe(_set_exc, fut[0], exc)
            else:
                if fut is not None:
                    self.loop.call_soon_threadsafe(fut[1], out)

    async def create_run_actor(self) -> Any:
        fut: asyncio.Future[Any] = self.loop.create_future()

        def make() -> tuple[Any, bool]:  # on the bridge's thread
            address = self.rt.create(RunActor)
            if fut.cancelled():  # a stop or the run's timeout came first: nobody will use it
                self.rt.tell(address, ExitRequest())
                return address, True
            return address, False

        def made(out: tuple[Any, bool]) -> None:  # on the loop
            address, ended = out
            if not fut.done():
                fut.set_result(address)
            elif not ended:  # cancelled after the bridge looked
                if self._thread.is_alive():
                    self.send(address, ExitRequest())
                else:  # closed meanwhile: the actor system is ours alone now
                    self.rt.tell(address, ExitRequest())

        self._jobs.put((make, (fut, made)))
        return await fut

    def send(
        self,
        address: Any,
        message: object,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue a send; ``failed`` (if given) hears on the loop why it could not be sent
        (a message that does not pickle), else a failure is dropped with the job."""
        report = None
        if failed is not None:
            report = (self.loop.create_future(), lambda _: None)
            report[0].add_done_callback(lambda f: f.cancelled() or failed(f.exception()))
        self._jobs.put((lambda: self.rt.tell(address, message), report))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _set_exc(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
