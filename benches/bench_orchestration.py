"""Orchestration overhead per agent activation, no-op LLM: axo vs LangGraph vs a floor.

Every implementation runs the same graphs with an LLM that answers at once, so what is
measured is the cost of deciding who runs next and moving outputs between agents:

- ``python floor``: a dict-based threshold lattice calling no-op functions (no runtime);
- ``axo local``: actors on simpleSystemBase, in-process no-op provider (``type: function``);
- ``axo local, I/O bridge``: the path network providers take — each call is an effect sent to
  the host's event loop and its reply told back to the actor;
- ``axo multiproc``: one process per agent on loopback TCP; actor start-up included;
- ``LangGraph``: StateGraph with no-op nodes, no checkpointer (the baseline).

Value: µs per activation: the best run (of 20 per pass, 3 passes interleaved) divided by the
number of agents; multiproc: the best of 3 runs on one host, measured after the passes.
"""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, Any, TypedDict

import uvloop

import axo
from axo.llm.base import ChatRequest, ChatResponse
from axo.runtime.host import Host
from benches import graphs
from benches._harness import Measurement, main

DESCRIPTION = "orchestration overhead per activation: axo local/multiproc vs LangGraph"

Graph = list[tuple[str, list[str]]]


def floor(graph: Graph) -> None:
    deps = {a: d for a, d in graph}
    dependents: dict[str, list[str]] = {a: [] for a, _ in graph}
    for a, d in graph:
        for u in d:
            dependents[u].append(a)
    signal = dict.fromkeys(deps, 0.0)
    outputs: dict[str, str] = {}
    ready = [a for a, d in graph if not d]
    while ready:
        a = ready.pop()
        outputs[a] = "ok" + str(len([outputs[u] for u in deps[a]]))
        for v in dependents[a]:
            signal[v] += 0.5
            if signal[v] >= 0.5 * len(deps[v]):
                ready.append(v)


class _Instant:
    name = "instant"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return ChatResponse(content="ok")

    async def aclose(self) -> None:
        pass


def axo_runs(graph: Graph, mode: str, repeat: int, *, bridge: bool = False) -> float:
    """Best seconds per run over ``repeat`` runs on one host."""
    provider = (
        "{type: openai, base_url: 'http://127.0.0.1:9/v1'}"
        if bridge
        else "{type: function, function: 'axo.testing:noop'}"
    )
    wf = axo.load_workflow("bench.yaml", text=graphs.to_yaml(graph, provider))
    overrides: dict[str, Any] = {"p": _Instant()} if bridge else {}

    async def go() -> float:
        best = float("inf")
        with Host(mode) as host:  # type: ignore[arg-type]
            for _ in range(repeat):
                t = time.perf_counter()
                result = await host.run(wf, "go", providers=overrides)
                best = min(best, time.perf_counter() - t)
                assert result.ok, result.failure
        return best

    return uvloop.run(go())


def langgraph_runs(graph: Graph, repeat: int) -> float:
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        outputs: Annotated[list[str], operator.add]

    builder = StateGraph(State)
    for aid, _ in graph:
        builder.add_node(aid, lambda s, _a=aid: {"outputs": [f"ok-{_a}"]})
    dependents = {a for _, deps in graph for a in deps}
    for aid, deps in graph:
        if not deps:
            builder.add_edge(START, aid)
        elif len(deps) == 1:
            builder.add_edge(deps[0], aid)
        else:
            builder.add_edge(deps, aid)  # a join: waits for all of them
        if aid not in dependents:
            builder.add_edge(aid, END)
    app = builder.compile()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = app.invoke({"outputs": []}, {"recursion_limit": 10_000})
        best = min(best, time.perf_counter() - t)
        assert len(out["outputs"]) == len(graph)
    return best


def run(quick: bool) -> list[Measurement]:
    cases = {
        "100-agent chain": graphs.chain(100 if not quick else 20),
        "10×10 all-to-all DAG": graphs.all_to_all(10, 10 if not quick else 3),
    }
    repeat = 2 if quick else 20  # in-process runs take milliseconds: many, for a stable best
    passes = 1 if quick else 3  # interleaved: a noisy moment hits every implementation
    rows: list[Measurement] = []
    for case, graph in cases.items():
        per = 1e6 / len(graph)
        best: dict[str, float] = {}
        for _ in range(passes):
            figures = {
                "python floor": min(_time(lambda g=graph: floor(g)) for _ in range(repeat)),
                "axo local": axo_runs(graph, "local", repeat),
                "axo local, I/O bridge": axo_runs(graph, "local", repeat, bridge=True),
                "LangGraph": langgraph_runs(graph, repeat),
            }
            for impl, seconds in figures.items():
                best[impl] = min(best.get(impl, float("inf")), seconds)
        # after the in-process passes: a hundred actor processes exiting would slow whatever
        # ran next
        best["axo multiproc"] = axo_runs(graph, "multiproc", 1 if quick else 3)
        for impl, seconds in best.items():
            note = (
                "best of several runs on one host; actors started once"
                if impl == "axo multiproc"
                else ""
            )
            rows.append(
                Measurement(
                    case=case,
                    impl=impl,
                    value=seconds * per,
                    unit="µs/act",
                    baseline=impl == "LangGraph",
                    note=note,
                )
            )
    return rows


def _time(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main("orchestration", run)
