"""Concurrency: independent agents whose LLM answers after 200 ms.

The fake LLM (a real HTTP server on loopback) delays every answer by 200 ms. If a waiting
agent blocked the others, N agents would take N × 200 ms; axo's host runs all LLM calls on one
event loop, so they should take about 200 ms whatever N. The baseline is the same N requests
sent one after another with httpx from plain Python.
"""

from __future__ import annotations

import time

import httpx

import axo
from axo.testing import FakeLLM, Reply
from benches import graphs
from benches._harness import Measurement, main

DESCRIPTION = "N independent agents with a 200 ms LLM: wall time, axo vs sequential calls"
DELAY = 0.2


def run(quick: bool) -> list[Measurement]:
    rows: list[Measurement] = []
    sizes = [10] if quick else [10, 100]
    for n in sizes:
        case = f"{n} agents × {DELAY * 1000:.0f} ms LLM"
        with FakeLLM(script=[Reply("ok", delay=DELAY)] * n) as fake:
            start = time.perf_counter()
            with httpx.Client(base_url=fake.base_url) as client:
                for _ in range(n):
                    client.post(
                        "/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    ).raise_for_status()
            sequential = time.perf_counter() - start
        rows.append(
            Measurement(
                case=case,
                impl="plain Python, sequential",
                value=sequential,
                unit="s",
                baseline=True,
            )
        )
        for mode in ("local", "multiproc"):
            with FakeLLM(script=[Reply("ok", delay=DELAY)] * n) as fake:
                text = graphs.to_yaml(
                    graphs.independent(n), f"{{type: openai, base_url: '{fake.base_url}'}}"
                )
                wf = axo.load_workflow("bench.yaml", text=text)
                start = time.perf_counter()
                result = axo.run(wf, "go", runtime=mode)  # type: ignore[arg-type]
                wall = time.perf_counter() - start
                assert result.ok, result.failure
            rows.append(
                Measurement(
                    case=case,
                    impl=f"axo {mode}",
                    value=wall,
                    unit="s",
                    note="includes starting the actor system"
                    + (" and one process per agent" if mode == "multiproc" else ""),
                )
            )
    return rows


if __name__ == "__main__":
    main("concurrency", run)
