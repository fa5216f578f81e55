"""The actor protocol and the run's events: frozen, tagged msgspec Structs.

This module is data only. Every message between the host process and the actors, and every
event a run emits, is defined here; a receiver handles the closed union with ``match`` and
ends in ``assert_never``. Addresses of actors are opaque objects (``Any``) owned by the runtime.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from axo.llm.base import ChatRequest, ChatResponse, ToolCall, ToolSpec, Usage
from axo.tools.registry import ToolOutcome


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


# ---------------------------------------------------------------- the agent's description


class PlanSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a coordinator needs: its domain and problem (texts read by the host)."""

    domain_file: str
    domain_text: str
    problem_file: str | None = None
    problem_text: str | None = None
    capabilities: dict[str, tuple[str, ...]] = {}
    max_rounds: int = 3


class AgentSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent actor needs to know about its agent (no secrets, no providers)."""

    id: str
    name: str
    system_prompt: str = ""
    model: str = ""
    provider: str = ""
    function: str | None = None  # "module:callable" for in-process providers
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    context_tokens: int = 3072
    max_iterations: int = 10
    tool_specs: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    per_call: int | None = None
    per_execution: int | None = None
    overflow_policy: str = "abort"
    output_schema: dict[str, Any] | None = None
    context: str = "last_round"  # or "full": what earlier rounds of a turn each request sees
    recall_k: int = 0  # facts recalled into every request (0: no long-term memory)
    role: str = "agent"
    plan: PlanSpec | None = None
    capabilities: tuple[str, ...] = ()  # what a worker offers in an auction (with its tools)


class Upstream(msgspec.Struct, frozen=True, kw_only=True):
    """The output of one completed dependency, labelled by agent."""

    agent: str
    name: str
    output: str


# ---------------------------------------------------------------- host → actors


class Configure(_Msg, frozen=True, kw_only=True):
    """Give a fresh agent actor its agent and the address to report to."""

    spec: AgentSpec
    run: Any
    host: Any


class ActorProcess(_Msg, frozen=True, kw_only=True):
    """Which process an actor lives in: an agent actor, once configured, tells its run actor;
    a run actor (multiproc), starting a run, tells the host."""

    pid: int


class StartRun(_Msg, frozen=True, kw_only=True):
    """Start one run: its agents (by index), their dependencies and the run's input."""

    run_id: str
    agents: tuple[AgentSpec, ...]
    dependencies: tuple[tuple[int, ...], ...]
    thresholds: tuple[float | None, ...]
    decay: tuple[float, ...]
    input: str
    completed: tuple[tuple[int, str], ...] = ()  # (agent, output) done in an earlier life
    # multiproc: how often (seconds) the run actor looks for agent processes that died
    # (0: never). Thespian's own notice (ChildActorExited) is not reliable: it can miss one.
    watch_children: float = 0.0


class StopRun(_Msg, frozen=True, kw_only=True):
    """Activate nothing more; finish as "stopped" once the running agents have finished."""

    run_id: str
    reason: str


class LLMReply(_Msg, frozen=True, kw_only=True):
    """The host's answer to an ``LLMCall``: a response, or an error."""

    corr: str
    response: ChatResponse | None = None
    error: str | None = None
    kind: str = "ProviderError"


class ToolsReply(_Msg, frozen=True, kw_only=True):
    """The host's answer to a ``ToolsCall``: one outcome per call, in order."""

    corr: str
    outcomes: tuple[ToolOutcome, ...]


class RecallReply(_Msg, frozen=True, kw_only=True):
    corr: str
    facts: tuple[str, ...]


class CancelRun(_Msg, frozen=True, kw_only=True):
    run_id: str
    reason: str


# ---------------------------------------------------------------- actors → actors / host


class Activate(_Msg, frozen=True, kw_only=True):
    """The lattice fired this agent: run one turn on the input and upstream outputs."""

    run_id: str
    agent: int
    input: str
    upstream: tuple[Upstream, ...]


class LLMCall(_Msg, frozen=True, kw_only=True):
    """An agent asks the host to perform an LLM call (actors do no I/O themselves)."""

    corr: str
    run_id: str
    agent: str
    provider: str
    request: ChatRequest
    reply_to: Any
    purpose: str = "turn"  # or "summarize", "plan": what the call is for


class ToolsCall(_Msg, frozen=True, kw_only=True):
    """An agent asks the host to run tool calls (concurrently, through policy and hooks)."""

    corr: str
    run_id: str
    agent: str
    calls: tuple[ToolCall, ...]
    reply_to: Any


class RecallCall(_Msg, frozen=True, kw_only=True):
    """An agent asks the host for the facts its memory holds about ``query``."""

    corr: str
    run_id: str
    agent: str
    query: str
    k: int
    reply_to: Any


class TurnEvent(_Msg, frozen=True, kw_only=True):
    """Something inside an agent's turn worth recording (budget, loop guard, packing)."""

    run_id: str
    agent: str
    kind: str
    detail: dict[str, Any]


class TaskCompleted(_Msg, frozen=True, kw_only=True):
    run_id: str
    agent: int
    output: str
    usage: Usage
    llm_calls: int
    started_at: float
    finished_at: float
    tool_calls: int = 0
    stop_reason: str = "answered"


class AgentFailed(_Msg, frozen=True, kw_only=True):
    run_id: str
    agent: int
    reason: str
    kind: str
    usage: Usage = Usage()
    llm_calls: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0


# ---------------------------------------------------------------- events (run → host)

AgentStatus = Literal["waiting", "running", "done", "failed", "skipped"]


class AgentStarted(_Msg, frozen=True, kw_only=True):
    run_id: str
    agent: str
    at: float


class AgentDone(_Msg, frozen=True, kw_only=True):
    run_id: str
    agent: str
    status: AgentStatus
    output: str | None
    reason: str | None
    usage: Usage
    llm_calls: int
    started_at: float
    finished_at: float
    tool_calls: int = 0
    stop_reason: str | None = None


class AgentSkipped(_Msg, frozen=True, kw_only=True):
    run_id: str
    agent: str
    reason: str


class PlanMade(_Msg, frozen=True, kw_only=True):
    """A coordinator's plan: its steps and which worker won each in the auction."""

    run_id: str
    coordinator: str
    steps: list[dict[str, Any]]
    awards: list[dict[str, Any]]
    unassigned: list[dict[str, Any]]


class StepDone(_Msg, frozen=True, kw_only=True):
    run_id: str
    coordinator: str
    step: int
    worker: str
    status: AgentStatus
    output: str | None
    reason: str | None
    usage: Usage
    llm_calls: int
    started_at: float
    finished_at: float


class RunFinished(_Msg, frozen=True, kw_only=True):
    run_id: str
    status: Literal["succeeded", "failed", "stopped"]
    lattice: dict[str, int]


RunEvent = AgentStarted | AgentDone | AgentSkipped | PlanMade | StepDone | RunFinished


class Events(_Msg, frozen=True, kw_only=True):
    """The events one handler of the run actor produced, sent as one message."""

    events: tuple[RunEvent, ...]


ToRunActor = StartRun | TaskCompleted | AgentFailed | CancelRun | StopRun | ActorProcess
ToAgentActor = Configure | Activate | LLMReply | ToolsReply | RecallReply
ToHost = LLMCall | ToolsCall | RecallCall | TurnEvent | Events | ActorProcess
