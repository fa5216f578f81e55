"""A run's durable journal: what the host records, and what a resumed run reads back.

The host appends every run event (agent started, done, skipped; decisions; run finished) to
the event log, and every successful LLM or tool result *durably* — committed before the
asking actor sees it. Each agent's session after every step is also checkpointed (the newest
three are kept). A resumed run reads the log back: agents that completed are not run again,
and an interrupted turn is replayed — its recorded results are answered from the journal,
in order, so no completed LLM call or tool side effect happens twice.

The log is the durable record; a checkpoint is a copy, read on resume only to recover the
completion of an agent whose record the log lost. So checkpoints are written by a thread of
their own and not fsynced (``CheckpointWriter``, ``CheckpointStore`` without ``sync``): the
loop never waits for the disk, and the cost of a durable step is the one fsync that commits
its result. The end of a run (``finish``: succeeded, failed or stopped) writes every
checkpoint still queued; a killed process may lose its newest few, which resume does not need.

This module knows the event log's API and the messages it stores; not Thespian, not actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from axo.errors import UsageError
from axo.eventlog import EventLog, EventLogFailed, Record
from axo.llm.base import Usage
from axo.memory.checkpoint import CheckpointStore, CheckpointWriter
from axo.messages import (
    AgentDone,
    AgentSkipped,
    AgentStarted,
    LLMCall,
    LLMReply,
    PlanMade,
    RecallCall,
    RecallReply,
    RunEvent,
    RunFinished,
    StepDone,
    ToolsCall,
    ToolsReply,
)
from axo.result import RunTracker
from axo.runtime.pidfile import live_process
from axo.runtime.session import Session
from axo.workflow import Workflow

Call = LLMCall | ToolsCall | RecallCall
_FAILURES_NOTED = 5  # checkpoint failures noted one by one at a run's end; then a count
Reply = LLMReply | ToolsReply | RecallReply


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a folder name, never a path


def check_run_id(run_id: str, resumed_from: str | None = None) -> None:
    """Refuse a run id that is no plain folder name (``../x`` would leave the state folder),
    and, for a run to resume from ``resumed_from``, a state directory with no log (opening
    one would create it).

    Raises:
        UsageError: what is wrong and what an id looks like.
    """
    if not _RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"{run_id!r} is not a run id: an id is letters, digits, '_', '-' and '.' (at most "
            "128, not starting with '.') — `axo runs` lists the runs"
        )
    if resumed_from is not None and not os.path.isfile(os.path.join(resumed_from, "events.db")):
        raise UsageError(
            f"no run '{run_id}': {resumed_from} holds no event log — resume from the "
            "--state-dir the run used (`axo runs --state-dir DIR` lists its runs)"
        )


def effect_index(corr: str) -> int:
    """The step number inside an agent's turn, from a correlation id ``run:agent:n``."""
    return int(corr.rsplit(":", 1)[1])


@dataclass
class Completed:
    """An agent that finished in an earlier life of the run."""

    output: str
    usage: Usage
    llm_calls: int = 0
    tool_calls: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    session: list[Any] = field(default_factory=list)  # from its checkpoint, for distilling


@dataclass
class ResumeState:
    """What a resumed run starts from."""

    run_input: str
    completed: dict[str, Completed] = field(default_factory=dict)
    replies: dict[tuple[str, int], Reply] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def restore(self, tracker: RunTracker) -> None:
        """Show in ``tracker`` the agents completed in an earlier life, and what resuming
        found."""
        for aid, done in self.completed.items():
            if aid in tracker.agents:
                tracker.restore(
                    aid,
                    output=done.output,
                    usage=done.usage,
                    llm_calls=done.llm_calls,
                    tool_calls=done.tool_calls,
                    started_at=done.started_at,
                    finished_at=done.finished_at,
                )
        for problem in self.problems:
            tracker.note("resume_problem", "", {"problem": problem})
        detail = {"completed": sorted(self.completed), "recorded_results": len(self.replies)}
        tracker.note("resumed", "", detail)


class Journal:
    """Records one run in an event log and its checkpoints in the run's folder."""

    def __init__(
        self,
        log: EventLog,
        run_id: str,
        run_dir: str,
        resume: ResumeState | None = None,
        *,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.log = log
        self.redact = redact  # the workflow's secrets out of checkpoints
        self.run_id = run_id
        self.run_dir = run_dir
        self.checkpoints = CheckpointStore(os.path.join(run_dir, "checkpoints"), sync=False)
        self._writer = CheckpointWriter(self.checkpoints)
        self.resume = resume
        self.sessions: dict[str, Session] = {}  # the host's, read for checkpoints
        self.replayed = 0
        self.unchecked: set[str] = set()  # agents with ``memory: {checkpoint: false}``

    # ------------------------------------------------------------------ opening

    @classmethod
    def start(
        cls,
        log: EventLog,
        run_id: str,
        run_dir: str,
        workflow: Workflow,
        run_input: str,
        runtime: str,
    ) -> Journal:
        digest = hashlib.sha256(run_input.encode()).hexdigest()[:16]
        log.start_run(
            run_id,
            stored_path(workflow.file),
            workflow.workflow_id,
            digest,
            {"input": run_input, "runtime": runtime, "agents": [a.id for a in workflow.agents]},
        )
        return cls(log, run_id, run_dir, redact=redactor(workflow))

    @classmethod
    def reopen(cls, log: EventLog, run_id: str, run_dir: str, workflow: Workflow) -> Journal:
        """Resume ``run_id``: read what it did, drop a corrupt tail, recover from checkpoints.

        Raises:
            UsageError: no such run, it ran another workflow, or another live process is
                running it (both would run its agents).
        """
        info = next((r for r in log.runs() if r.run_id == run_id), None)
        if info is None:
            raise UsageError(f"no run '{run_id}' in {log.path} — `axo runs` lists the runs")
        pid = live_process(run_dir)
        if info.status == "running" and pid is not None:
            raise UsageError(
                f"run '{run_id}' is still running (process {pid}): stop it with "
                f"`axo stop {run_id}` or let it end, then resume it"
            )
        if info.workflow_id != workflow.workflow_id or info.meta.get("agents") != [
            a.id for a in workflow.agents
        ]:
            raise UsageError(
                f"run '{run_id}' ran workflow {info.workflow_id or '(all agents)'} "
                f"of {info.workflow_file}, not this one — resume it with the same "
                f"file and --workflow"
            )
        replay = log.resume_run(run_id)
        state = ResumeState(run_input=str(info.meta.get("input", "")))
        if replay.problem:
            state.problems.append(
                f"event log: {replay.problem}; {replay.dropped} record(s) "
                f"after it dropped, the run continues from the good ones"
            )
        journal = cls(log, run_id, run_dir, state, redact=redactor(workflow))
        journal._read(replay.records, workflow)
        return journal

    def _read(self, records: list[Record], workflow: Workflow) -> None:
        state = self.resume
        assert state is not None
        for r in records:
            data = r.data
            if r.kind == "result" and isinstance(data, dict) and r.agent:
                reply = msgspec.convert(data["reply"], LLMReply | ToolsReply | RecallReply)
                state.replies[(r.agent, int(data["n"]))] = reply
            elif (
                r.kind == "agent_done"
                and isinstance(data, dict)
                and r.agent
                and data.get("status") == "done"
            ):
                state.completed[r.agent] = Completed(
                    output=str(data.get("output") or ""),
                    usage=msgspec.convert(data.get("usage") or {}, Usage),
                    llm_calls=int(data.get("llm_calls") or 0),
                    tool_calls=int(data.get("tool_calls") or 0),
                    started_at=float(data.get("started_at") or 0.0),
                    finished_at=float(data.get("finished_at") or 0.0),
                )
        for a in workflow.distillers:  # its session, to distil when this life ends
            done = state.completed.get(a.id)
            loaded = self.checkpoints.load_latest(a.id) if done is not None else None
            if done is not None and loaded is not None and isinstance(loaded.state, dict):
                done.session = list(loaded.state.get("session") or [])
        # an agent whose completion the log lost may still have a checkpoint that says so
        for a in workflow.agents:
            if a.id in state.completed:
                continue
            seen = len(self.checkpoints.warnings)  # skipped files, also when none was good
            loaded = self.checkpoints.load_latest(a.id)
            for skipped in self.checkpoints.warnings[seen:]:
                state.problems.append(
                    f"checkpoint {skipped.path}: {skipped.reason}; "
                    + ("using an older one" if loaded is not None else "no older one to use")
                )
            if loaded is None:
                continue
            snap = loaded.state
            if isinstance(snap, dict) and snap.get("status") == "done":
                state.completed[a.id] = Completed(
                    output=str(snap.get("output") or ""),
                    usage=msgspec.convert(snap.get("usage") or {}, Usage),
                    session=list(snap.get("session") or []),
                )
                state.problems.append(f"agent '{a.id}': completion recovered from its checkpoint")

    # ------------------------------------------------------------------ writing

    def replay(self, call: Call) -> Reply | None:
        """The recorded result of this step of the agent's turn, if it completed before."""
        if self.resume is None:
            return None
        reply = self.resume.replies.pop((call.agent, effect_index(call.corr)), None)
        if reply is not None:
            self.replayed += 1
            self.log.append(self.run_id, "replayed", call.agent, {"n": effect_index(call.corr)})
        return reply

    async def result(self, call: Call, reply: Reply) -> None:
        """Make a successful result durable (before the agent acts on it) and checkpoint."""
        n = effect_index(call.corr)
        agent = call.agent
        if isinstance(reply, LLMReply) and reply.response is None:
            detail = {"n": n, "error": reply.error, "kind": reply.kind}
            self.log.append(self.run_id, "llm_failed", agent, detail)
            return
        await self.log.append_durable(
            self.run_id, "result", agent, {"n": n, "reply": msgspec.to_builtins(reply)}
        )
        if not isinstance(reply, RecallReply) and agent not in self.unchecked:
            self._save(agent, {"status": "running", "step": n, "session": self.session(agent)})

    def session(self, agent: str) -> list[Any]:
        """The agent's turn so far, as its checkpoints keep it (``Session.saved``)."""
        session = self.sessions.get(agent)
        return session.saved() if session is not None else []

    async def settle(self) -> None:
        """Return once everything recorded so far is on disk (records committed, checkpoints
        written; no fsync): an LLM or tool call that waits for it before it starts is never
        the last trace a killed process leaves — what led to the call is there too."""
        await self.log.committed(self.run_id)
        await self._writer.written()  # mostly written meanwhile, by the writer's thread

    def _save(self, agent: str, state: dict[str, Any]) -> None:
        """Queue a checkpoint, with every secret of the workflow shown as ***."""
        self._writer.save(agent, state if self.redact is None else redacted(state, self.redact))

    def note(self, kind: str, agent: str, detail: dict[str, Any]) -> None:
        self.log.append(self.run_id, kind, agent, detail)

    def event(self, event: RunEvent) -> None:
        match event:
            case AgentStarted():
                self.log.append(self.run_id, "agent_started", event.agent, {"at": event.at})
            case AgentDone():
                data = msgspec.to_builtins(event)
                data.pop("type", None)
                self.log.append(self.run_id, "agent_done", event.agent, data)
                if event.status == "done" and event.agent not in self.unchecked:
                    self._save(
                        event.agent,
                        {
                            "status": "done",
                            "output": event.output,
                            "usage": msgspec.to_builtins(event.usage),
                            "session": self.session(event.agent),
                        },
                    )
            case AgentSkipped():
                self.log.append(self.run_id, "agent_skipped", event.agent, {"reason": event.reason})
            case PlanMade() | StepDone():
                data = msgspec.to_builtins(event)
                kind = data.pop("type", "plan")
                self.log.append(
                    self.run_id,
                    "plan_made" if kind == "PlanMade" else "step_done",
                    event.coordinator,
                    data,
                )
            case RunFinished():
                self.log.append(
                    self.run_id,
                    "run_finished",
                    None,
                    {"status": event.status, "lattice": event.lattice},
                )

    def close(self) -> None:
        """Write the checkpoints still queued and stop their thread (``finish`` does it too;
        this is for when the log has failed and ``finish`` cannot be recorded)."""
        self._writer.close()

    def abandon(self, exc: BaseException, redact: Callable[[str], str]) -> None:
        """The run ended by ``exc`` rather than by its actors: cancelled by its caller (an MCP
        client) it is stopped — resumable —, else failed. A log that fails now stays silent:
        it may be what failed."""
        with contextlib.suppress(EventLogFailed):
            if isinstance(exc, asyncio.CancelledError):
                self.note("run_cancelled", "", {"reason": "cancelled by its caller; resumable"})
                self.finish("stopped")
            else:
                self.note("run_failed", "", {"error": redact(str(exc) or repr(exc))})
                self.finish("failed")

    def finish(self, status: str) -> None:
        """Write the checkpoints still queued, then record the run's end."""
        self._writer.close()
        failures, self._writer.failures = self._writer.failures, []
        for failure in failures[:_FAILURES_NOTED]:
            self.note("checkpoint_failed", "", {"error": failure})
        if len(failures) > _FAILURES_NOTED:  # e.g. the run's folder was deleted: all fail
            more = len(failures) - _FAILURES_NOTED
            self.note("checkpoint_failed", "", {"error": f"and {more} more like these"})
        self.log.finish_run(self.run_id, status)


def stored_path(file: str) -> str:
    """How the log names a workflow file: its real path when it is one on disk (so that two
    projects' ``wf.yaml`` are told apart, and ``./wf.yaml`` is ``wf.yaml``), else as given (a
    workflow loaded from text)."""
    return os.path.realpath(file) if os.path.isfile(file) else file


def redactor(workflow: Workflow) -> Callable[[str], str] | None:
    """The workflow's redaction, or None for a workflow without secrets: nothing to hide, so
    what is stored (event log, checkpoints) is not walked string by string."""
    return workflow.redact if workflow.secrets else None


def redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` (built-in types) with ``redact`` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v, redact) for v in value]
    return value
