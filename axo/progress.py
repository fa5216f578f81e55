"""What a person sees while a run goes: a live table in a terminal, event lines otherwise.

This module renders a ``RunTracker``; it knows nothing about actors or providers. The live
table goes to stderr so stdout carries only the result (and ``--json`` stays parseable).
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from axo.messages import (
    AgentDone,
    AgentSkipped,
    AgentStarted,
    PlanMade,
    RunEvent,
    RunFinished,
    StepDone,
)
from axo.result import AgentResult, RunResult, RunTracker

_STYLE = {
    "waiting": "dim",
    "running": "yellow",
    "done": "green",
    "failed": "bold red",
    "skipped": "magenta",
}
_MARK = {"waiting": "·", "running": "▶", "done": "✓", "failed": "✗", "skipped": "–"}


def _fmt_seconds(s: float | None) -> str:
    return "" if s is None else f"{s:.2f}s"


def agent_table(agents: list[AgentResult], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    table.add_column("agent")
    table.add_column("status")
    table.add_column("tokens in", justify="right")
    table.add_column("tokens out", justify="right")
    table.add_column("time", justify="right")
    table.add_column("tok/s", justify="right")
    for a in agents:
        tps = a.tokens_per_second
        table.add_row(
            a.id if a.name == a.id else f"{a.id} ({a.name})",
            Text(
                f"{_MARK[a.status]} {a.status}"
                + (f" ({a.retries} retr{'y' if a.retries == 1 else 'ies'})" if a.retries else ""),
                style=_STYLE[a.status],
            ),
            str(a.usage.prompt_tokens) if a.usage.prompt_tokens else "",
            str(a.usage.completion_tokens) if a.usage.completion_tokens else "",
            _fmt_seconds(a.seconds),
            f"{tps:.1f}" if tps else "",
        )
    return table


class ProgressView:
    """Live progress of one run on a terminal; plain event lines when not a terminal."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream, highlight=False)
        self.live_mode = self.console.is_terminal if live is None else live
        self._tracker: RunTracker | None = None
        self._live: Live | None = None
        self._t0 = time.monotonic()

    def _render(self) -> Group:
        t = self._tracker
        if t is None:
            return Group(Text("starting…"))
        agents = [t.agents[a] for a in t.order]
        elapsed = time.monotonic() - self._t0
        u = t.usage
        footer = Text(
            f"{elapsed:.1f}s · {u.total_tokens} tokens "
            f"({u.prompt_tokens} in, {u.completion_tokens} out)",
            style="dim",
        )
        return Group(agent_table(agents), footer)

    def __enter__(self) -> ProgressView:
        self._t0 = time.monotonic()
        if self.live_mode:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=8,
                transient=True,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)
            self._live = None

    def on_event(self, event: RunEvent, tracker: RunTracker) -> None:
        self._tracker = tracker
        if self._live is not None:
            return
        t = time.monotonic() - self._t0
        match event:
            case AgentStarted():
                line = f"{event.agent}: running"
            case AgentDone():
                a = tracker.agents[event.agent]
                line = (
                    f"{event.agent}: {event.status} ({a.usage.total_tokens} tokens, "
                    f"{_fmt_seconds(a.seconds)})"
                )
                if event.reason:
                    line += f" — {event.reason.splitlines()[0]}"
            case AgentSkipped():
                line = f"{event.agent}: skipped — {event.reason}"
            case PlanMade():
                line = (
                    f"{event.coordinator}: planned {len(event.steps)} steps, "
                    f"{len(event.awards)} awarded"
                )
            case StepDone():
                line = f"{event.coordinator}: step {event.step} ({event.worker}) {event.status}"
                if event.reason:
                    line += f" — {event.reason.splitlines()[0]}"
            case RunFinished():
                line = f"run {event.status}"
            case _:
                return  # an event with nothing to show
        self.stream.write(f"[{t:7.2f}s] {line}\n")
        self.stream.flush()


def readable(output: str) -> str:
    """Structured output (a JSON object) as ``key: value`` lines; other text unchanged."""
    text = output.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return output
    try:
        data = json.loads(text, strict=False)  # small models put raw newlines in strings
    except ValueError:
        return output
    if not isinstance(data, dict):
        return output
    return "\n".join(
        f"{k}: {' '.join(str(v).split()) if isinstance(v, str) else json.dumps(v)}"
        for k, v in data.items()
    )


def print_result(result: RunResult, stream: IO[str] | None = None) -> None:
    """The human-readable result: the sinks' outputs, then a table of every agent."""
    console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
    for sink in result.sinks:
        a = result.agent(sink)
        title = a.id if a.name == a.id else f"{a.id} ({a.name})"
        console.rule(Text(title, style="bold"), align="left")
        if a.status == "done":
            console.print(Text(readable(a.output or "") or "(empty answer)"))
        else:
            console.print(Text(f"({a.status}: {a.reason or 'no output'})", style="red"))
    console.print()
    console.print(agent_table(result.agents))
    u = result.usage
    style = "green" if result.ok else "bold red"
    summary = (
        f"run {result.run_id} {result.status} in {result.wall_seconds:.2f}s · "
        f"{u.total_tokens} tokens ({u.prompt_tokens} in, {u.completion_tokens} out)"
    )
    console.print(Text(summary, style=style))
    if result.failure:
        console.print(Text(result.failure, style="red"))
