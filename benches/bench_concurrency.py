"""Concurrency: N independent agents whose LLM answers after 200 ms.

The fake LLM (a real HTTP server on loopback, in this process) delays every answer by 200 ms.
If a waiting agent blocked the others, N agents would take N × 200 ms; axo's host runs all LLM
calls on one event loop, so they should take about 200 ms whatever N. Implementations:

- ``plain Python, concurrent`` (baseline): asyncio + httpx sending all N requests at once, a
  pool configured as axo's providers configure theirs, made and closed in each run as axo's
  provider is — the floor for this work;
- ``plain Python, sequential``: the same N requests one after another (smallest case only: it
  takes N × 200 ms by construction);
- ``axo local`` / ``axo multiproc``: ``axo.run`` of N independent agents, each a whole run as a
  caller pays it: starting and stopping the actor system (and, in multiproc, one process per
  agent) included.

The plain-Python sides send the very request bodies axo sent in its warm-up run. Every
implementation runs once to warm up, then once per round for several rounds, in an order
rotated from round to round; the value is the best run. Every run is checked: N answers
of "ok", and N requests seen by the server.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import httpx

import axo
from axo.testing import FakeLLM, Reply
from benches import graphs
from benches._harness import Measurement, main

DESCRIPTION = "N independent agents with a 200 ms LLM: wall time, axo vs concurrent plain httpx"
DELAY = 0.2
CONCURRENT, SEQUENTIAL = "plain Python, concurrent", "plain Python, sequential"
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)  # as axo's pool


def _answer(response: httpx.Response) -> str:
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def concurrent(base_url: str, bodies: list[dict[str, Any]]) -> list[str]:
    async def go() -> list[str]:
        async with httpx.AsyncClient(base_url=base_url, limits=LIMITS, timeout=60) as client:
            replies = await asyncio.gather(
                *(client.post("/chat/completions", json=b) for b in bodies)
            )
        return [_answer(r) for r in replies]

    return asyncio.run(go())


def sequential(base_url: str, bodies: list[dict[str, Any]]) -> list[str]:
    with httpx.Client(base_url=base_url, limits=LIMITS, timeout=60) as client:
        return [_answer(client.post("/chat/completions", json=b)) for b in bodies]


def sig3(x: float) -> float:
    return float(f"{x:.3g}")


def measure(n: int, rounds: int, with_sequential: bool) -> dict[str, float]:
    """Best wall seconds of every implementation for ``n`` agents."""
    impls = [CONCURRENT, *([SEQUENTIAL] if with_sequential else []), "axo local", "axo multiproc"]
    runs = (rounds + 1) * len(impls)
    with FakeLLM(script=[Reply("ok", delay=DELAY)] * n * runs) as fake:
        text = graphs.to_yaml(
            graphs.independent(n), f"{{type: openai, base_url: '{fake.base_url}'}}"
        )
        wf = axo.load_workflow("bench.yaml", text=text)
        bodies: list[dict[str, Any]] = []

        def axo_run(mode: str) -> Callable[[], list[str]]:
            def go() -> list[str]:
                result = axo.run(wf, "go", runtime=mode)  # type: ignore[arg-type]
                assert result.ok, result.failure
                return [a.output or "" for a in result.agents]

            return go

        calls: dict[str, Callable[[], list[str]]] = {
            "axo local": axo_run("local"),
            "axo multiproc": axo_run("multiproc"),
            CONCURRENT: lambda: concurrent(fake.base_url, bodies),
            SEQUENTIAL: lambda: sequential(fake.base_url, bodies),
        }

        def once(impl: str) -> float:
            gc.collect()
            seen = len(fake.requests)
            start = time.perf_counter()
            answers = calls[impl]()
            took = time.perf_counter() - start
            assert answers == ["ok"] * n, f"{impl}: wrong answers"
            assert len(fake.requests) - seen == n, f"{impl}: {len(fake.requests) - seen} requests"
            return took

        # warm-up, axo first: its requests' bodies are what the plain-Python sides send
        order = impls[-2:] + impls[:-2]
        once(order[0])
        bodies += [r.body for r in fake.requests]
        for impl in order[1:]:
            once(impl)
        best = dict.fromkeys(impls, float("inf"))
        for r in range(rounds):
            for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
                best[impl] = min(best[impl], once(impl))
    return best


def run(quick: bool) -> list[Measurement]:
    rows: list[Measurement] = []
    sizes = [5] if quick else [10, 100]
    rounds = 1 if quick else 5
    for n in sizes:
        case = f"{n} agents × {DELAY * 1000:.0f} ms LLM"
        best = measure(n, rounds, with_sequential=n == sizes[0])
        notes = {
            CONCURRENT: "asyncio + httpx, all requests at once",
            SEQUENTIAL: "httpx, one request after another",
            "axo local": "axo.run: actor system started and stopped in each run",
            "axo multiproc": "axo.run: actor system and one process per agent started each run",
        }
        rows += [
            Measurement(
                case=case,
                impl=impl,
                value=sig3(seconds),
                unit="s",
                baseline=impl == CONCURRENT,
                note=notes[impl],
            )
            for impl, seconds in best.items()
        ]
    return rows


if __name__ == "__main__":
    main("concurrency", run)
