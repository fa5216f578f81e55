"""Cost of durability per agent step: a durable axo run vs LangGraph + SqliteSaver.

Both sides run the same graph of no-op agents, each step's output a 1000-character string
(``output(agent)``), and each step checks that its input carries its upstream's output:

- ``axo, in-memory``: ``Host.run`` on a workflow whose provider is an in-process object that
  answers at once (no I/O). It goes the way every network provider goes (an effect the host
  performs), the path on which a durable run commits each result before the agent acts on it;
- ``axo, durable``: the same with ``state_dir`` — event log (SQLite WAL; every result fsynced
  before the agent sees it) and per-agent checkpoints (a copy of the log, written by a thread,
  not fsynced); opening and closing the log is part of every run;
- ``LangGraph, no checkpointer``: a StateGraph of the same nodes, no persistence;
- ``LangGraph + SqliteSaver`` (baseline): checkpointer on a file (WAL, synchronous=FULL), with
  ``durability="sync"``: each step's checkpoint is committed before the next step starts — the
  promise axo's durable run makes;
- ``LangGraph + SqliteSaver, async``: LangGraph's default ``durability="async"`` (a step's
  checkpoint is written while the next runs), for reference.

Cases: a chain of N agents (one commit per step on both sides: nothing can be batched) and a
fan-out of N independent agents (axo batches their commits by group commit; LangGraph runs them
as one superstep). Every run's final outputs are checked against the expected ones, and both
sides must agree. The ``durable − in-memory`` cases subtract each side's best in-memory run from
its best durable run: what durability itself costs per step, axo's against LangGraph's.

Value: µs per step (agent), best of several runs. Every round runs each implementation once,
in an order rotated from round to round, after a warm-up run of each (actors created, schema
made); a collection precedes every run and no validation is timed.
"""

from __future__ import annotations

import gc
import itertools
import operator
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import uvloop

import axo
from axo.llm.base import ChatRequest, ChatResponse
from axo.runtime.host import Host
from benches import graphs
from benches._harness import Measurement, main

DESCRIPTION = "durable run per step: axo (event log + checkpoints) vs LangGraph + SqliteSaver"

PAYLOAD = 1000  # characters of every step's output, on both sides
Graph = list[tuple[str, list[str]]]

AXO_MEM, AXO_DUR = "axo, in-memory", "axo, durable"
LG_MEM, LG_SYNC, LG_ASYNC = (
    "LangGraph, no checkpointer",
    "LangGraph + SqliteSaver",
    "LangGraph + SqliteSaver, async",
)
IMPLS = (AXO_MEM, AXO_DUR, LG_MEM, LG_SYNC, LG_ASYNC)


def output(agent: str) -> str:
    """What ``agent`` answers: PAYLOAD characters, naming it."""
    head = f"{agent} ok "
    return head + "y" * (PAYLOAD - len(head))


class Instant:
    """An in-process model that answers each agent with ``output(agent)`` at once.

    The agent is the one its system prompt names ("You are a7."); its prompt must carry the
    outputs of the agents it depends on (as a LangGraph node checks its input)."""

    name = "instant"

    def __init__(self, graph: Graph) -> None:
        self.deps = dict(graph)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        agent = (request.messages[0].content or "").removeprefix("You are ").removesuffix(".")
        prompt = request.messages[-1].content or ""
        for dep in self.deps[agent]:
            if output(dep) not in prompt:
                raise AssertionError(f"{agent}: the output of {dep} is not in its prompt")
        return ChatResponse(content=output(agent))

    async def aclose(self) -> None:
        pass


def langgraph_app(graph: Graph, fanout: bool, checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        last: str  # the chain: each step overwrites the one value
        done: Annotated[list[str], operator.add]  # the fan-out: each node adds its output

    def node(agent: str, deps: list[str]) -> Callable[[State], State]:
        def step(state: State) -> State:
            for dep in deps:  # a chain node has one upstream; its output is "last"
                if state.get("last") != output(dep):
                    raise AssertionError(f"{agent}: the output of {dep} is not its input")
            return {"done": [output(agent)]} if fanout else {"last": output(agent)}

        return step

    builder = StateGraph(State)
    dependents = {d for _, deps in graph for d in deps}
    for aid, deps in graph:
        assert len(deps) <= 1, "chains and fan-outs only"
        builder.add_node(aid, node(aid, deps))
        builder.add_edge(deps[0] if deps else START, aid)
        if aid not in dependents:
            builder.add_edge(aid, END)
    return builder.compile(checkpointer=checkpointer)


def expected(graph: Graph) -> list[str]:
    """The sinks' outputs, sorted."""
    dependents = {d for _, deps in graph for d in deps}
    return sorted(output(a) for a, _ in graph if a not in dependents)


def check_axo(result: axo.RunResult, graph: Graph) -> list[str]:
    assert result.ok, result.failure
    for a in result.agents:
        assert a.status == "done" and a.output == output(a.id), (a.id, a.status)
    got = sorted(result.outputs.values())
    assert got == expected(graph), "axo: wrong final outputs"
    return got


def check_langgraph(state: dict[str, Any], graph: Graph, fanout: bool) -> list[str]:
    got = sorted(state["done"]) if fanout else [state["last"]]
    assert got == expected(graph), "LangGraph: wrong final outputs"
    return got


def disk_bytes(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def measure(tmp: Path, graph: Graph, fanout: bool, rounds: int) -> tuple[dict[str, float], str]:
    """Best seconds per run of every implementation, and a note on the bytes each side stored."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    wf = axo.load_workflow(
        "bench.yaml",
        text=graphs.to_yaml(graph, "{type: openai, base_url: 'http://127.0.0.1:9/v1'}"),
    )
    providers: dict[str, Any] = {"p": Instant(graph)}
    state_dir = tmp / "axo"
    lg_dir = tmp / "langgraph"
    lg_dir.mkdir(parents=True)
    conns = {
        m: sqlite3.connect(lg_dir / f"{m}.db", check_same_thread=False) for m in ("sync", "async")
    }
    apps = {
        LG_MEM: langgraph_app(graph, fanout, None),
        LG_SYNC: langgraph_app(graph, fanout, SqliteSaver(conns["sync"])),
        LG_ASYNC: langgraph_app(graph, fanout, SqliteSaver(conns["async"])),
    }
    durability = {LG_SYNC: "sync", LG_ASYNC: "async"}
    threads = itertools.count()

    async def go() -> dict[str, float]:
        best = dict.fromkeys(IMPLS, float("inf"))
        with Host("local") as host:

            async def once(impl: str) -> float:
                gc.collect()
                if impl in (AXO_MEM, AXO_DUR):
                    kw = {"state_dir": str(state_dir)} if impl == AXO_DUR else {}
                    t = time.perf_counter()
                    result = await host.run(wf, "go", providers=providers, **kw)
                    took = time.perf_counter() - t
                    finals[impl] = check_axo(result, graph)
                else:
                    extra = {"durability": durability[impl]} if impl in durability else {}
                    config = {
                        "recursion_limit": 10_000,
                        "configurable": {"thread_id": f"t{next(threads)}"},
                    }
                    t = time.perf_counter()
                    state = apps[impl].invoke({}, config, **extra)
                    took = time.perf_counter() - t
                    finals[impl] = check_langgraph(state, graph, fanout)
                return took

            finals: dict[str, list[str]] = {}
            for impl in IMPLS:  # warm-up: actors created, schemas made, code paths warm
                await once(impl)
            for r in range(rounds):
                order = IMPLS[r % len(IMPLS) :] + IMPLS[: r % len(IMPLS)]
                for impl in order:
                    best[impl] = min(best[impl], await once(impl))
            assert all(f == finals[LG_SYNC] for f in finals.values()), "the sides disagree"
        return best

    try:
        best = uvloop.run(go())
    finally:
        for c in conns.values():
            c.close()
    per_step = 1024 * (rounds + 1) * len(graph)  # durable runs on each side: warm-up + rounds
    axo_kib = disk_bytes(state_dir.rglob("*")) / per_step
    lg_kib = disk_bytes(lg_dir.glob("sync.db*")) / per_step
    note = (
        f"on disk per step: axo {axo_kib:.1f} KiB (event log + checkpoints), "
        f"LangGraph {lg_kib:.1f} KiB"
    )
    return best, note


def sig3(x: float) -> float:
    return float(f"{x:.3g}")


def run(quick: bool) -> list[Measurement]:
    sizes = [10] if quick else [100, 1000]
    rows: list[Measurement] = []
    costs: list[Measurement] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for fanout in (False, True):
                shape = "fan-out" if fanout else "chain"
                graph = graphs.independent(n) if fanout else graphs.chain(n)
                rounds = 1 if quick else max(5, 1500 // n)  # small cases are cheap: more runs
                best, stored = measure(Path(tmp) / f"{shape}-{n}", graph, fanout, rounds)
                per = 1e6 / n
                case = f"{shape}, {n} agents"
                notes = {
                    AXO_DUR: stored,
                    LG_SYNC: "durability='sync': each step committed before the next starts",
                    LG_ASYNC: "LangGraph's default: a step's checkpoint written during the next",
                }
                rows += [
                    Measurement(
                        case=case,
                        impl=impl,
                        value=sig3(best[impl] * per),
                        unit="µs/step",
                        baseline=impl == LG_SYNC,
                        note=notes.get(impl, ""),
                    )
                    for impl in IMPLS
                ]
                cost_case = f"{shape}, {n}: durable − in-memory"
                for impl, dur, mem in (("axo", AXO_DUR, AXO_MEM), ("LangGraph", LG_SYNC, LG_MEM)):
                    cost = (best[dur] - best[mem]) * per
                    costs.append(
                        Measurement(
                            case=cost_case,
                            impl=f"{impl} durability cost",
                            value=sig3(max(cost, 0.0)),
                            unit="µs/step",
                            baseline=impl == "LangGraph",
                            note="best durable − best in-memory, per step"
                            + (f" (measured {cost:.3g}: noise)" if cost < 0 else ""),
                        )
                    )
    return rows + costs


if __name__ == "__main__":
    main("durability", run)
