"""Orchestration overhead per agent activation, no-op LLM: axo vs LangGraph vs a floor.

Every implementation runs the same graphs with an LLM that answers at once, so what is
measured is the cost of deciding who runs next and moving outputs between agents:

- ``python floor``: a dict-based threshold lattice calling no-op functions (no runtime);
- ``axo local``: actors on simpleSystemBase, in-process no-op provider (``type: function``);
- ``axo local, I/O bridge``: the path network providers take — each call is an effect sent to
  the host's event loop and its reply told back to the actor;
- ``axo multiproc``: one process per agent on loopback TCP, actors already started (runs after
  the first on one host, which reuse the agent processes);
- ``LangGraph``: StateGraph with no-op nodes, no checkpointer (the baseline).

Value: µs per activation: the best run divided by the number of agents. The in-process
implementations alternate in blocks of 5 runs (12 rounds: 60 runs each; one host for both axo
variants, its actors created before timing; one compiled LangGraph app), with a collection
before every block. Multiproc is measured after them, on a new host: its first run — starting
the actor system and one process per agent, then running — is its own row (one sample, in ms
per run, not compared with LangGraph), and the best of the next 2 runs is the ``axo multiproc``
row. Quick mode runs smaller graphs (labelled by their real size), 1 round of blocks of 2 and
1 multiproc run after the first.
"""

from __future__ import annotations

import asyncio
import gc
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


def langgraph_app(graph: Graph) -> Any:
    """The graph as a compiled LangGraph StateGraph with no-op nodes (no checkpointer)."""
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
    return builder.compile()


def langgraph_run(app: Any, graph: Graph) -> None:
    out = app.invoke({"outputs": []}, {"recursion_limit": 10_000})
    assert len(out["outputs"]) == len(graph)


def workflow(graph: Graph, *, bridge: bool) -> axo.Workflow:
    provider = (
        "{type: openai, base_url: 'http://127.0.0.1:9/v1'}"
        if bridge
        else "{type: function, function: 'axo.testing:noop'}"
    )
    return axo.load_workflow("bench.yaml", text=graphs.to_yaml(graph, provider))


IN_PROCESS = ("python floor", "axo local", "axo local, I/O bridge", "LangGraph")


def in_process(graph: Graph, rounds: int, block: int) -> dict[str, float]:
    """Best seconds per run of each in-process implementation, alternating in short blocks.

    The machine's speed drifts over seconds (on the 2-core VM this was written on, one core
    takes the virtio interrupts and the scheduler moves processes between cores): timing one
    implementation for a second and then the other lets a slow spell fall on one side only.
    Here every round runs each implementation for a block of ``block`` consecutive runs, so
    both see the same spells; every block starts after a collection, so that none pays for the
    garbage of another, and its later runs are warm, as in a process that keeps running.
    """
    local, bridged = workflow(graph, bridge=False), workflow(graph, bridge=True)
    instant: dict[str, Any] = {"p": _Instant()}
    app = langgraph_app(graph)

    async def go() -> dict[str, float]:
        best = dict.fromkeys(IN_PROCESS, float("inf"))
        with Host("local") as host:
            await host.run(local, "go")  # actors created once, as on a long-lived host
            await host.run(bridged, "go", providers=instant)
            for _ in range(rounds):
                gc.collect()
                for _ in range(block):
                    best["python floor"] = min(best["python floor"], _time(lambda: floor(graph)))
                gc.collect()
                for _ in range(block):
                    best["axo local"] = min(best["axo local"], await _atime(host.run(local, "go")))
                gc.collect()
                for _ in range(block):
                    seconds = await _atime(host.run(bridged, "go", providers=instant))
                    best["axo local, I/O bridge"] = min(best["axo local, I/O bridge"], seconds)
                gc.collect()
                for _ in range(block):
                    seconds = _time(lambda: langgraph_run(app, graph))
                    best["LangGraph"] = min(best["LangGraph"], seconds)
        return best

    return uvloop.run(go())


def multiproc_runs(graph: Graph, repeat: int) -> tuple[float, float]:
    """Seconds of the first run on a new multiproc host, from creating the host (actor system
    and agent processes started) to the run's end; best seconds of the ``repeat`` runs after
    it, which reuse the actors."""
    wf = workflow(graph, bridge=False)

    async def go() -> tuple[float, float]:
        gc.collect()
        start = time.perf_counter()
        with Host("multiproc") as host:
            await _atime(host.run(wf, "go"))
            first = time.perf_counter() - start
            best = float("inf")
            for _ in range(repeat):
                best = min(best, await _atime(host.run(wf, "go")))
        return first, best

    return uvloop.run(go())


def run(quick: bool) -> list[Measurement]:
    length, depth = (20, 3) if quick else (100, 10)
    cases = {
        f"{length}-agent chain": graphs.chain(length),
        f"10×{depth} all-to-all DAG": graphs.all_to_all(10, depth),
    }
    rounds, block = (1, 2) if quick else (12, 5)
    warm = 1 if quick else 2
    rows: list[Measurement] = []
    for case, graph in cases.items():
        per = 1e6 / len(graph)
        best = in_process(graph, rounds, block)
        # after the in-process rounds: a hundred actor processes exiting would slow whatever
        # ran next
        first, best["axo multiproc"] = multiproc_runs(graph, warm)
        notes = {
            "LangGraph": f"in-process rows: best of {rounds * block} runs each, "
            f"in alternating blocks of {block}",
            "axo multiproc": f"best of {warm} run{'s' if warm > 1 else ''} after the first on "
            "one host; actors already started",
        }
        for impl, seconds in best.items():
            note = notes.get(impl, "")
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
        rows.append(
            Measurement(
                case=f"{case}, first run",
                impl="axo multiproc, new host",
                value=first * 1e3,
                unit="ms/run",
                note=f"starting the actor system and {len(graph)} agent processes, then the "
                "run; one sample",
            )
        )
    return rows


def _time(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


async def _atime(run: Any) -> float:
    t = time.perf_counter()
    result = await run
    elapsed = time.perf_counter() - t
    assert result.ok, result.failure
    return elapsed


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main("orchestration", run)
