"""One workflow on the embedded local model: axo's overhead around real LLM work.

Runs ``workflows/review.yaml`` (four agents, one join) on SmolLM2-135M through llama.cpp's
server, started with per-request timing in its log. Compared in the same run:

- the sum of llama.cpp's own ``total time`` per request (what the model really spent);
- the time the client saw LLM calls in flight (the union of call intervals, HTTP included);
- the run's wall time as axo measured it.

axo's overhead = wall − union of LLM calls in flight (everything the runtime does while no
model call is waiting); it is reported as a percentage of the wall time. The server serves
one request at a time, so the two concurrent reviewers queue there, not in axo.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import uvloop

import axo
from axo.config import LocalProvider
from axo.llm.base import ChatRequest, ChatResponse
from axo.llm.embedded import LocalModel, start_local
from axo.runtime.host import Host
from benches._harness import Measurement, main

DESCRIPTION = "overhead of axo around real local-model calls (review.yaml on SmolLM2)"
ROOT = Path(__file__).resolve().parents[1]
_TOTAL = re.compile(r"llama_perf_context_print:\s+total time =\s+([\d.]+) ms")
_EVAL = re.compile(r"llama_perf_context_print:\s+eval time =\s+([\d.]+) ms /\s+(\d+) runs")


class Timed:
    """Wraps the local provider to record each call's interval as the client saw it."""

    def __init__(self, inner: LocalModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.intervals: list[tuple[float, float]] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        try:
            return await self.inner.complete(request)
        finally:
            self.intervals.append((start, time.perf_counter()))

    async def aclose(self) -> None:
        pass


def union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def run(quick: bool) -> list[Measurement]:
    wf = axo.load_workflow(ROOT / "workflows" / "review.yaml")
    text = (ROOT / "examples" / "inputs" / "pull_request.txt").read_text()
    if quick:
        text = text[:200]
    cfg = wf.provider_config("local")
    assert isinstance(cfg, LocalProvider)

    async def go() -> tuple[float, Timed, str, axo.RunResult]:
        model = await start_local("local", cfg, verbose=True)
        log = model.server.statistics().log_path
        offset = os.path.getsize(log)
        timed = Timed(model)
        try:
            with Host("local") as host:
                start = time.perf_counter()
                result = await host.run(wf, text, providers={"local": timed})  # type: ignore[dict-item]
                wall = time.perf_counter() - start
            with open(log, encoding="utf-8", errors="replace") as f:
                f.seek(offset)
                tail = f.read()
        finally:
            await model.aclose()
        assert result.ok, result.failure
        return wall, timed, tail, result

    wall, timed, tail, result = uvloop.run(go())
    server = sum(float(m) for m in _TOTAL.findall(tail)) / 1000
    evals = _EVAL.findall(tail)
    eval_s = sum(float(ms) for ms, _ in evals) / 1000
    eval_tokens = sum(int(n) for _, n in evals)
    in_flight = union(timed.intervals)
    overhead = wall - in_flight
    case = f"review.yaml, {len(timed.intervals)} LLM calls"
    completion = result.usage.completion_tokens
    return [
        Measurement(
            case=case,
            impl="llama.cpp total time (Σ)",
            value=server,
            unit="s",
            baseline=True,
            note="what the model spent, from the server's own log",
        ),
        Measurement(
            case=case,
            impl="LLM calls in flight (union)",
            value=in_flight,
            unit="s",
            note="as the client saw them, HTTP and the server's Python included",
        ),
        Measurement(case=case, impl="axo run, wall", value=wall, unit="s"),
        Measurement(
            case="axo overhead",
            impl="wall − calls in flight",
            value=overhead * 1000,
            unit="ms",
            note=f"{100 * overhead / wall:.2f}% of the wall time",
        ),
        Measurement(
            case="axo overhead",
            impl="share of wall time",
            value=100 * overhead / wall,
            unit="%",
            note="target < 2%",
        ),
        Measurement(
            case="throughput",
            impl="completion tokens / wall",
            value=completion / wall,
            unit="tok/s",
            lower_is_better=False,
        ),
        Measurement(
            case="throughput",
            impl="generation speed (llama.cpp eval)",
            value=eval_tokens / eval_s if eval_s else 0.0,
            unit="tok/s",
            lower_is_better=False,
        ),
    ]


if __name__ == "__main__":
    main("local", run)
