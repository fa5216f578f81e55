"""Cost of durability per agent activation: axo's event log vs LangGraph + SqliteSaver.

One activation produces four events of realistic size (activated ~0.1 KB, LLM request ~1.5 KB,
LLM result ~0.7 KB, task completed ~0.8 KB). "Durable" means the activation's last event is
committed before the next thing acts on it. Implementations:

- ``in-memory list``: the four events appended to a list (the floor: no durability);
- ``axo eventlog, sync=full``: committed and fsynced (survives power loss), group commit;
- ``axo eventlog, sync=normal``: committed, WAL not fsynced (survives a process crash);
- ``LangGraph, no checkpointer``: the same graph without persistence (orchestration only);
- ``LangGraph + SqliteSaver``: a StateGraph of no-op nodes, checkpointer on a file (baseline).

Cases: a chain of N agents (each activation waits for the previous one to be durable, so
nothing can be batched: one commit per step), and a fan-out where N agents finish at once
(their events are batched by group commit; LangGraph runs them as one superstep).
Value: µs per activation, best of several runs, run start and finish included.
"""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from axo.eventlog import EventLog
from benches._harness import Measurement, main

DESCRIPTION = "durable event log per activation: axo group commit vs LangGraph + SqliteSaver"


def activation_events(agent: str) -> list[tuple[str, dict[str, Any]]]:
    """The four events one activation records, with realistic sizes."""
    usage = {"prompt_tokens": 412, "completion_tokens": 138}
    return [
        ("activated", {"input_chars": 812, "upstream": ["planner", "researcher"]}),
        (
            "llm_request",
            {
                "model": "smollm2-135m",
                "max_tokens": 512,
                "temperature": 0.2,
                "messages": [
                    {"role": "system", "content": "You are a careful analyst. " * 30},
                    {"role": "user", "content": "Summarise: " + "x" * 800},
                ],
            },
        ),
        (
            "llm_result",
            {
                "content": "The answer is " + "y" * 600,
                "usage": usage,
                "finish_reason": "stop",
                "seconds": 1.73,
            },
        ),
        (
            "task_completed",
            {
                "output": "The answer is " + "y" * 600,
                "usage": usage,
                "llm_calls": 1,
                "tool_calls": 0,
                "started_at": 1.0,
                "finished_at": 2.73,
                "agent_id": agent,
            },
        ),
    ]


EVENTS = [activation_events(f"a{i}") for i in range(1000)]


def memory_run(n: int) -> float:
    t = time.perf_counter()
    log: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        for kind, data in EVENTS[i % 1000]:
            log.append((kind, f"a{i}", data))
    return time.perf_counter() - t


def axo_run(log: EventLog, run_id: str, n: int, fanout: bool) -> float:
    """Seconds for one run of ``n`` activations, durable before the next acts."""

    async def activation(i: int) -> None:
        agent = f"a{i}"
        *first, (kind, data) = EVENTS[i % 1000]
        for k, d in first:
            log.append(run_id, k, agent, d)
        await log.append_durable(run_id, kind, agent, data)

    async def go() -> None:
        if fanout:
            await asyncio.gather(*(activation(i) for i in range(n)))
        else:
            for i in range(n):
                await activation(i)

    t = time.perf_counter()
    log.start_run(run_id, "bench.yaml", None, "h", {"agents": n})
    asyncio.run(go())
    log.finish_run(run_id, "succeeded")
    return time.perf_counter() - t


def langgraph_app(n: int, fanout: bool, checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        last: str  # the chain overwrites one value: the state stays small
        done: Annotated[list[str], operator.add]  # a superstep's nodes each add one

    builder = StateGraph(State)
    key = "done" if fanout else "last"
    for i in range(n):
        a = f"a{i}"
        builder.add_node(a, lambda s, _a=a: {key: [f"{_a} ok"] if fanout else f"{_a} ok"})
        if fanout or i == 0:
            builder.add_edge(START, f"a{i}")
        else:
            builder.add_edge(f"a{i - 1}", f"a{i}")
        if fanout or i == n - 1:
            builder.add_edge(f"a{i}", END)
    return builder.compile(checkpointer=checkpointer)


def langgraph_run(app: Any, thread: str) -> float:
    t = time.perf_counter()
    app.invoke(
        {"last": "", "done": []}, {"recursion_limit": 10_000, "configurable": {"thread_id": thread}}
    )
    return time.perf_counter() - t


def run(quick: bool) -> list[Measurement]:
    sizes = [20] if quick else [100, 1000]
    repeat = 2 if quick else 5
    rows: list[Measurement] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for fanout in (False, True):
                case = f"{'fan-out' if fanout else 'chain'}, {n} agents"
                rows += _case(
                    Path(tmp) / case.replace(" ", "_").replace(",", ""), case, n, fanout, repeat
                )
    return rows


def _case(tmp: Path, case: str, n: int, fanout: bool, repeat: int) -> list[Measurement]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    per = 1e6 / n
    rows = [
        Measurement(
            case=case,
            impl="in-memory list",
            unit="µs/act",
            value=min(memory_run(n) for _ in range(repeat)) * per,
        )
    ]
    syncs: tuple[Literal["full", "normal"], ...] = ("full", "normal")
    for sync in syncs:
        log = EventLog.open(tmp / f"axo-{sync}", sync=sync)
        best = min(axo_run(log, f"run{r}", n, fanout) for r in range(repeat))
        s = log.statistics()
        log.close()
        rows.append(
            Measurement(
                case=case,
                impl=f"axo eventlog, sync={sync}",
                value=best * per,
                unit="µs/act",
                note=f"{s['appends'] / repeat:.0f} records/run in {s['commits'] / repeat:.0f} "
                f"commits/run (largest batch {s['max_batch']})",
            )
        )
    plain = langgraph_app(n, fanout, None)
    rows.append(
        Measurement(
            case=case,
            impl="LangGraph, no checkpointer",
            unit="µs/act",
            value=min(langgraph_run(plain, "t") for _ in range(repeat)) * per,
        )
    )
    tmp.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(tmp / "langgraph.db", check_same_thread=False)
    try:
        app = langgraph_app(n, fanout, SqliteSaver(conn))
        best = min(langgraph_run(app, f"t{r}") for r in range(repeat))
    finally:
        conn.close()
    rows.append(
        Measurement(
            case=case,
            impl="LangGraph + SqliteSaver",
            value=best * per,
            unit="µs/act",
            baseline=True,
            note="SqliteSaver on a file, WAL, default synchronous (FULL)",
        )
    )
    return rows


if __name__ == "__main__":
    main("durability", run)
