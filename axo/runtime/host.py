"""The host: the process that starts a run, performs its I/O and collects its events.

Actors send ``LLMCall`` effect requests to the host's external address; the host runs them as
concurrent tasks on its (uv)loop and tells each reply back to the asking actor. Two bridges
move messages between the loop and Thespian:

- ``InlineBridge`` (local mode): simpleSystemBase runs actors inside ``tell``/``listen`` on the
  calling thread, so a send is followed by draining the external address — no thread, no
  polling; the loop is free while LLM calls are in flight.
- ``ThreadBridge`` (multiproc mode): one thread owns every Thespian call (the external
  interface is not thread-safe), executes queued sends and listens in short slices, handing
  what arrives to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, TypeVar

import msgspec

from axo.errors import ProviderError, UsageError
from axo.eventlog import EventLog, EventLogFailed
from axo.llm.base import Provider
from axo.llm.providers import ProviderSet
from axo.llm.retry import watch_retries
from axo.memory.tiers import open_memory
from axo.messages import (
    ActorProcess,
    AgentDone,
    CancelRun,
    Events,
    LLMCall,
    LLMReply,
    RecallCall,
    RunEvent,
    RunFinished,
    StopRun,
    ToolsCall,
    ToolsReply,
    TurnEvent,
)
from axo.result import RunResult, RunTracker
from axo.runtime.bridges import InlineBridge, ThreadBridge
from axo.runtime.children import watch_exit
from axo.runtime.effects import EffectRunner, failed_reply, redacted_done
from axo.runtime.journal import Journal, check_run_id, redacted, redactor
from axo.runtime.lifecycle import apply_retention, distill
from axo.runtime.pidfile import PID_FILE, write_pid
from axo.runtime.session import Session
from axo.runtime.specs import start_message
from axo.runtime.system import ActorRuntime, ExitRequest, Mode, hide_in_logs
from axo.tools.builtins import builtin_tools
from axo.tools.policy import Policy, unknown_approvals
from axo.tools.registry import Tool, ToolRegistry
from axo.workflow import Workflow

EventHandler = Callable[[RunEvent, RunTracker], None]
T = TypeVar("T")
CANCEL_SECONDS = 2.0  # multiproc: how long a timed-out run waits for its actor's last records
CHILD_WATCH_SECONDS = 1.0  # multiproc: a killed agent process is noticed within about this


class _StartTimedOut(Exception):
    """The run's timeout passed while it was starting (servers, models, actors)."""


class _StoppedEarly(Exception):
    """A stop came while the run was still starting."""


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not just a step it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Host:
    """Runs workflows on an actor system it owns.

    Args:
        mode: ``local`` or ``multiproc``.
        admin_port: multiproc admin port (default: a free one).
    """

    def __init__(self, mode: Mode = "local", *, admin_port: int | None = None) -> None:
        self.mode = mode
        self.rt = ActorRuntime(mode, admin_port=admin_port)
        self._closed = False
        # idle run actors (with their agent actors) by the agents they run: a later run of
        # the same agents reuses them with a fresh lattice instead of starting new actors
        self._idle: dict[bytes, list[Any]] = {}
        self._stoppers: list[Callable[[str], None]] = []

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.rt.shutdown()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask every run in progress to stop gracefully (resumable later)."""
        for stop in list(self._stoppers):
            stop(reason)

    async def run(
        self,
        workflow: Workflow,
        run_input: str,
        *,
        providers: dict[str, Provider] | None = None,
        on_event: EventHandler | None = None,
        timeout: float | None = None,
        run_id: str | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        policy: Policy | None = None,
        workspace: str | None = None,
        memory: Any = None,
        state_dir: str | None = None,
        resume: str | None = None,
    ) -> RunResult:
        """Run ``workflow`` on ``run_input`` and return its result (never raises for an
        agent's failure: that is a status; raises only for set-up errors).

        With ``state_dir`` the run is durable: every event goes to the event log there, and
        every LLM and tool result is committed before the agent acts on it. ``resume`` names
        a run of that log to continue (its input is taken from the log).
        """
        if resume is not None and state_dir is None:
            raise UsageError("resuming a run needs the state directory its log is in")
        for given in (resume, run_id):
            if given is not None:
                check_run_id(given, state_dir if given is resume else None)
        run_id = resume or run_id or uuid.uuid4().hex[:12]
        run_dir = os.path.join(state_dir or ".axo", "runs", run_id)
        log = journal = None
        if state_dir is not None:
            if resume is None:  # a resumed run's folder is made once the run is known
                os.makedirs(run_dir, exist_ok=True)  # STOP, checkpoints and the workspace
            log = EventLog.open(state_dir, redact=redactor(workflow))
            try:
                if resume is not None:
                    journal = Journal.reopen(log, run_id, run_dir, workflow)
                    os.makedirs(run_dir, exist_ok=True)
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(run_dir, "STOP"))  # the stop it obeyed
                    assert journal.resume is not None
                    run_input = journal.resume.run_input
                else:
                    journal = Journal.start(log, run_id, run_dir, workflow, run_input, self.mode)
                journal.unchecked = {a.id for a in workflow.agents if not a.memory.checkpoint}
                write_pid(run_dir)  # `axo runs` tells a killed run from a running one
                apply_retention(log, state_dir, workflow, keep=run_id)
            except BaseException:
                try:
                    if journal is not None:  # started: it must not stay "running"
                        with contextlib.suppress(EventLogFailed):  # the log may be what failed
                            journal.finish("failed")
                        journal.close()
                finally:
                    log.close()
                raise
        try:
            result = await self._run(
                workflow,
                run_input,
                run_id=run_id,
                run_dir=run_dir,
                state_dir=state_dir,
                journal=journal,
                providers=providers,
                on_event=on_event,
                timeout=timeout,
                tools=tools,
                policy=policy,
                workspace=workspace,
                memory=memory,
            )
        except BaseException as exc:  # the log must not show a run that never ends
            if journal is not None:
                journal.abandon(exc, workflow.redact)
            if isinstance(exc, UsageError) and workflow.redact(str(exc)) != str(exc):
                raise UsageError(workflow.redact(str(exc))) from None  # e.g. a model's name
            raise
        finally:
            if journal is not None:
                journal.close()  # no checkpoint thread left behind, even when the log failed
            if log is not None:
                log.close()
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(run_dir, PID_FILE))
        return result

    async def _run(
        self,
        workflow: Workflow,
        run_input: str,
        *,
        run_id: str,
        run_dir: str,
        state_dir: str | None,
        journal: Journal | None,
        providers: dict[str, Provider] | None,
        on_event: EventHandler | None,
        timeout: float | None,
        tools: Iterable[Tool | Callable[..., Any]],
        policy: Policy | None,
        workspace: str | None,
        memory: Any,
    ) -> RunResult:
        loop = asyncio.get_running_loop()
        tracker = RunTracker(run_id, workflow.labels)
        resumed = journal.resume if journal is not None else None
        if resumed is not None:
            resumed.restore(tracker)
        finished: asyncio.Future[RunFinished] = loop.create_future()
        registry = ToolRegistry(builtin_tools())
        for t in tools:
            registry.add(t)

        broken: list[str] = []  # why the run ended failed at once (``fail_run``)
        unwatch: list[Callable[[], None]] = []  # the watches on the run actor's process

        def fail_run(reason: str, *, logged: bool = False) -> None:
            """End the run now, failed, rather than let an agent wait for what cannot come:
            the log cannot record any more, or (``logged``: the log can) the run actor's
            process died."""
            if broken or finished.done():
                return
            cut, skipped = tracker.cancel_running(reason)
            if logged:
                record("run_failed", "", {"reason": reason, "failed": cut, "skipped": skipped})
                record_ends(cut, skipped, reason)
            broken.append(reason)
            if bridge is not None and run_actor is not None:
                bridge.send(run_actor, CancelRun(run_id=run_id, reason=reason))
            finished.set_result(RunFinished(run_id=run_id, status="failed", lattice={}))

        def log_failed(exc: EventLogFailed) -> None:
            fail_run(f"the event log failed: {exc}")

        hide = redactor(workflow)
        hide_in_logs(workflow.secrets)

        def record(kind: str, agent: str, detail: dict[str, Any]) -> None:
            if hide is not None:  # the result's notes reach stdout and MCP clients
                detail = redacted(detail, hide)
            tracker.note(kind, agent, detail)
            if journal is not None and not broken:
                try:
                    journal.note(kind, agent, detail)
                except EventLogFailed as exc:
                    log_failed(exc)

        hub = None
        tasks: set[asyncio.Task[None]] = set()
        bridge: InlineBridge | ThreadBridge | None = None
        run_actor: Any = None
        stops: list[str] = []  # stop requests, in order
        stopped = asyncio.Event()  # set by the first: a retry's wait ends at once
        interrupted: set[str] = set()  # agents a stop cut short (their next effect not run)
        setup: asyncio.Future[Any] | None = None  # a start-up step a stop may cancel
        sessions: dict[str, Session] = {}  # each turn, for distilling and its checkpoints
        for aid, done in resumed.completed.items() if resumed is not None else ():
            if done.session:  # from an earlier life: distilled when this one ends
                sessions[aid] = Session.restored(done.session)
        if journal is not None:
            journal.sessions = sessions
        view_failed: list[Exception] = []  # on_event raised (noted once)

        def finish_stopped(reason: str) -> None:
            """End the run as stopped from here: what was running waits again."""
            if finished.done():
                return
            cut = tracker.interrupt_running(f"cut short by the stop ({reason}); resumable")
            if cut:
                record("interrupted", "", {"agents": cut})
            deliver(Events(events=(RunFinished(run_id=run_id, status="stopped", lattice={}),)))

        def settle() -> None:
            """After a stop: once no effect is in flight, agents cut short end the run."""
            if interrupted and not any(not t.done() for t in tasks):
                finish_stopped(stops[0])

        def interrupt(agent: str) -> None:
            interrupted.add(agent)
            loop.call_soon(settle)  # after this effect's task is done

        def retried(agent: str) -> Callable[[ProviderError, float, int], None]:
            def note(failure: ProviderError, delay: float, attempts: int) -> None:
                detail = {"attempt": attempts, "error": effects.redact(str(failure))}
                record("llm_retry", agent, {**detail, "delay": round(delay, 3)})

            return note

        async def perform(call: LLMCall | ToolsCall | RecallCall) -> None:
            watch_retries(lambda: bool(stops), retried(call.agent), stopped)
            if stops:  # after a stop nothing new starts: a resumed run does it
                interrupt(call.agent)
                return
            reply = journal.replay(call) if journal is not None else None
            if isinstance(reply, LLMReply) and reply.response is not None:
                effects.used = effects.used + reply.response.usage  # spent before the stop
            if reply is not None:
                observe(call, reply)
            if reply is None:
                try:
                    reply = await effect(call)
                except EventLogFailed as exc:  # its result cannot be made durable
                    log_failed(exc)
                    return
                except asyncio.CancelledError:
                    if not stops or finished.done():
                        raise
                    interrupt(call.agent)  # a second stop does not wait for it
                    return
                except Exception as exc:  # e.g. a result the log cannot encode: the agent
                    reply = effect_failed(call, exc)  # hears of it, rather than wait forever
                if stops and isinstance(reply, LLMReply) and reply.error is not None:
                    interrupt(call.agent)  # not its failure: the stop ended its retries
                    return
            if isinstance(call, LLMCall) and isinstance(reply, LLMReply) and reply.response:
                tracker.spent(call.agent, reply.response.usage)
            if not finished.done() and bridge is not None:
                bridge.send(call.reply_to, reply, failed=lambda exc: unsent(call, exc))

        def record_ends(failed: list[str], skipped: list[str], reason: str) -> None:
            """Log the end of agents the host ended itself (the actors could not say it)."""
            if journal is None or broken:
                return
            for event in tracker.ended(failed, skipped, reason):
                try:
                    journal.event(event)
                except EventLogFailed as exc:
                    log_failed(exc)
                    return

        def effect_failed(call: LLMCall | ToolsCall | RecallCall, exc: BaseException) -> Any:
            """The reply that tells the agent its effect failed, and a note of why."""
            error = workflow.redact(f"{type(exc).__name__}: {exc}")
            record("effect_failed", call.agent, {"corr": call.corr, "error": error})
            return failed_reply(call, error)

        def unsent(call: LLMCall | ToolsCall | RecallCall, exc: BaseException) -> None:
            """A reply the bridge could not send (it does not pickle): send its failure."""
            if not finished.done() and bridge is not None:
                bridge.send(call.reply_to, effect_failed(call, exc))

        def observe(call: LLMCall | ToolsCall | RecallCall, reply: Any) -> None:
            """Keep what a turn saw (not a summary of it, nor a coordinator's plan)."""
            if isinstance(call, LLMCall) and isinstance(reply, LLMReply) and reply.response:
                if call.purpose == "turn":
                    sessions.setdefault(call.agent, Session()).add(call.request, reply.response)
            elif isinstance(reply, ToolsReply) and call.agent in sessions:
                sessions[call.agent].tool_results(reply.outcomes)

        async def effect(call: LLMCall | ToolsCall | RecallCall) -> Any:
            """Perform it, and (durable runs) commit the result before the agent sees it."""
            if journal is not None:
                await journal.settle()  # what led to the call is on disk before it starts
            if isinstance(call, LLMCall):
                reply: Any = await effects.llm(call)
            elif isinstance(call, ToolsCall):
                reply = await effects.tools(call)
            else:
                reply = effects.recall(call)
            observe(call, reply)  # before the checkpoint that keeps it
            if journal is not None and not (stops and getattr(reply, "error", None)):
                await journal.result(call, reply)  # durable before the agent acts on it
            return reply

        def effect_done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if stops:  # the last effect in flight may be what a stopped run waits for
                settle()

        def deliver(message: object) -> None:
            match message:
                case LLMCall() | ToolsCall() | RecallCall():
                    task = loop.create_task(perform(message))
                    tasks.add(task)
                    task.add_done_callback(effect_done)
                case ActorProcess():  # multiproc: the run actor's, whose death ends the run
                    died = partial(fail_run, "the run actor's process died", logged=True)
                    unwatch.append(watch_exit(loop, message.pid, died))
                case TurnEvent():
                    if message.run_id == run_id:
                        record(message.kind, message.agent, message.detail)
                case Events():
                    for event in message.events:
                        if event.run_id != run_id or finished.done():
                            continue
                        if isinstance(event, AgentDone) and workflow.secrets:  # the result too
                            event = redacted_done(event, workflow.redact)
                        tracker.apply(event)
                        if isinstance(event, AgentDone):  # what the host saw it spend
                            event = tracker.counted(event)
                        if journal is not None and not broken:
                            try:
                                journal.event(event)
                            except EventLogFailed as exc:
                                log_failed(exc)
                                continue
                        if on_event is not None:
                            try:
                                on_event(event, tracker)
                            except Exception as exc:  # a view's bug must not stall the run
                                if not view_failed:
                                    view_failed.append(exc)
                                    record("on_event_failed", "", {"error": repr(exc)})
                        if isinstance(event, RunFinished):
                            finished.set_result(event)
                case _:
                    pass  # Thespian's own notices (e.g. poison messages) are not ours

        def stop(reason: str) -> None:
            """The first stop lets what is in flight finish and starts nothing new (an
            effect that fails is not retried); a second one cuts in-flight effects short."""
            if finished.done():
                return
            stops.append(reason)
            stopped.set()
            record("stop_requested", "", {"reason": reason, "request": len(stops)})
            if run_actor is None:  # still starting: stop that
                if setup is not None:
                    setup.cancel()
                return
            if len(stops) == 1 and bridge is not None:
                bridge.send(run_actor, StopRun(run_id=run_id, reason=reason))
            else:
                for t in list(tasks):
                    t.cancel()
            loop.call_soon(settle)

        async def starting(step: Awaitable[T]) -> T:
            """A start-up step (servers, models, actors) that a stop cancels, within the run's
            timeout (which counts from the start)."""
            nonlocal setup
            if stops:
                raise _StoppedEarly
            setup = asyncio.ensure_future(step)
            try:
                if deadline is None:
                    return await setup
                return await asyncio.wait_for(setup, max(0.0, deadline - loop.time()))
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    raise _StartTimedOut from None
                raise  # the step's own timeout (e.g. a server's), not the run's
            except asyncio.CancelledError:
                if stops and not _cancelling():
                    raise _StoppedEarly from None
                raise
            finally:
                setup = None

        async def watch_stop_file() -> None:
            path = os.path.join(run_dir, "STOP")
            while not finished.done():
                if os.path.exists(path):
                    stop(f"STOP file {path}")
                    return
                await asyncio.sleep(0.2)  # a file has no change event we can await portably

        failure: str | None = None
        deadline = None if timeout is None else loop.time() + timeout
        watcher = loop.create_task(watch_stop_file()) if journal is not None else None
        self._stoppers.append(stop)
        provider_set: ProviderSet | None = None
        try:
            if workflow.config.mcp_servers:
                from axo.mcp.client import McpHub

                hub = await starting(
                    McpHub.open(
                        workflow.config.mcp_servers,
                        record=lambda kind, server, detail: record(kind, f"mcp:{server}", detail),
                    )
                )
                for t in hub.tools():
                    registry.add(t)
            try:
                start, crew_key = start_message(workflow, registry, run_id, run_input)
            except UsageError as exc:
                raise (exc if hub is None else hub.explained(exc)) from None
            unknown = unknown_approvals(
                (policy or Policy()).require_approval,
                set(registry.names()),
                set(workflow.config.mcp_servers),
            )
            if unknown:
                raise UsageError(f"require_approval names no tool: {', '.join(unknown)}")
            if not self.rt.inline:
                start = msgspec.structs.replace(start, watch_children=CHILD_WATCH_SECONDS)
            if resumed is not None and resumed.completed:
                index = {a.id: i for i, a in enumerate(workflow.agents)}
                start = msgspec.structs.replace(
                    start,
                    completed=tuple(
                        (index[a], c.output) for a, c in resumed.completed.items() if a in index
                    ),
                )
            allowed = {spec.id: {t.name for t in spec.tool_specs} for spec in start.agents}
            provider_set = ProviderSet(workflow, providers, state_dir=state_dir)
            workspace = workspace or os.path.join(run_dir, "workspace")
            effects = EffectRunner(
                run_id=run_id,
                providers=provider_set,
                registry=registry,
                allowed=allowed,
                policy=policy or Policy(),
                workspace=os.path.abspath(workspace),
                memory=memory if memory is not None else open_memory(workflow, state_dir),
                record=record,
                redact=workflow.redact,
                run_budget=workflow.config.run.token_budget,
            )
            if resumed is not None:  # the run budget counts what the run used before
                for done in resumed.completed.values():
                    effects.used = effects.used + done.usage
            bridge = (
                InlineBridge(self.rt, deliver)
                if self.rt.inline
                else ThreadBridge(self.rt, deliver, loop)
            )
            await starting(provider_set.open())
            idle = self._idle.get(crew_key)
            run_actor = idle.pop() if idle else await starting(bridge.create_run_actor())
            if stops:  # it came while the actor was made: the run must not start
                raise _StoppedEarly
            bridge.send(run_actor, start)
            try:
                if not finished.done():  # in local mode an in-process run is over already
                    left = None if deadline is None else max(0.0, deadline - loop.time())
                    await asyncio.wait_for(asyncio.shield(finished), left)
            except TimeoutError:
                failure = f"run timed out after {timeout:g}s"
                cut, skipped = tracker.cancel_running(failure)
                record("run_timed_out", "", {"reason": failure, "failed": cut, "skipped": skipped})
                bridge.send(run_actor, CancelRun(run_id=run_id, reason=failure))
                with contextlib.suppress(TimeoutError):  # its records: one per agent it ended
                    await asyncio.wait_for(asyncio.shield(finished), CANCEL_SECONDS)
                if not finished.done():  # the actor did not answer: the host writes them
                    record_ends(cut, skipped, failure)
            else:
                if broken:
                    failure = broken[0]
                elif finished.result().status != "stopped":  # a stopped run distils when it ends
                    await distill(workflow, start.agents, sessions, effects, tracker.after_turn)
        except _StoppedEarly:
            finish_stopped(stops[0])
        except _StartTimedOut:
            failure = f"run timed out after {timeout:g}s, while starting"
            _, skipped = tracker.cancel_running(failure)
            record("run_timed_out", "", {"reason": failure, "failed": [], "skipped": skipped})
            record_ends([], skipped, failure)
        finally:
            self._stoppers.remove(stop)
            for stop_watching in unwatch:
                stop_watching()
            if watcher is not None:
                watcher.cancel()
            for t in list(tasks):
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if run_actor is not None and bridge is not None:
                if finished.done() and failure is None and not interrupted:
                    self._idle.setdefault(crew_key, []).append(run_actor)  # reuse its actors
                else:
                    bridge.send(run_actor, ExitRequest())
            if bridge is not None:
                bridge.close()
            if provider_set is not None:
                await provider_set.aclose()
            if hub is not None:
                await hub.aclose()
        result = tracker.result(
            workflow=workflow.workflow_id,
            file=workflow.file,
            runtime=self.mode,
            run_input=run_input,
            sinks=workflow.sinks,
            failure=failure,
        )
        if journal is not None:
            if not finished.done():  # the actors could not say it: the host does
                journal.note("run_finished", "", {"status": result.status, "reason": failure})
            journal.finish(result.status)
        return result
