"""Test doubles that speak real protocols on loopback: a scripted OpenAI-compatible server.

``FakeLLM`` is a real HTTP/1.1 server on 127.0.0.1 (its own thread and event loop, so both
synchronous tests and axo's own event loop can talk to it). It answers ``POST
/v1/chat/completions`` from a script — text answers and tool calls — can delay, fail with a
status, drop the connection or never answer on cue, logs every request, and when its script
runs out answers HTTP 400 with a message naming the script, and records the fault so
``check()`` (called on exit) fails the test. It never cycles its script.

Scripts are either one sequence for every request, or one sequence per agent, keyed by the
agent found in the request (``You are <name>.`` opens axo's system prompt).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

__all__ = [
    "Drop",
    "Fail",
    "FakeLLM",
    "Hang",
    "LoggedRequest",
    "Reply",
    "ScriptExhausted",
    "Step",
    "ToolCalls",
]


@dataclass(frozen=True)
class Reply:
    """Answer with text (``content``) after ``delay`` seconds."""

    content: str
    delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class ToolCalls:
    """Answer with tool calls: ``[(name, arguments_dict), ...]``."""

    calls: Sequence[tuple[str, Mapping[str, Any]]]
    content: str | None = None
    delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error status (e.g. 500, 429 with ``retry_after``)."""

    status: int = 500
    message: str = "injected failure"
    retry_after: float | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""

    delay: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Never answer (until the server stops)."""


Step = Reply | ToolCalls | Fail | Drop | Hang


class ScriptExhausted(AssertionError):
    """The code under test made more LLM requests than the test's script provides."""


@dataclass
class LoggedRequest:
    """One request as the server saw it."""

    index: int
    key: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received: float
    answered: float | None = None
    step: Step | None = None
    status: int | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def text(self) -> str:
        """Every message's content, joined: handy for ``in`` checks."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


_NAME = re.compile(r"You are (.+?)\.(?:\n|$)")


def agent_key(body: Mapping[str, Any]) -> str:
    """The agent a request comes from, read from axo's system prompt ("You are X.")."""
    for m in body.get("messages", []):
        if m.get("role") == "system":
            found = _NAME.match(str(m.get("content") or ""))
            if found:
                return found.group(1)
    return "*"


class _LoopbackHttp:
    """A minimal HTTP/1.1 server on 127.0.0.1 in its own thread; subclasses answer requests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name=type(self).__name__
        )
        self._server: asyncio.Server | None = None
        self._stopping: asyncio.Event | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            assert self._stopping is not None and self._server is not None
            self._stopping.set()
            self._server.close()
            for w in list(self._conns):
                w.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(n) if n else b""
                answer = await self.answer(method, path, headers, raw)
                if answer is None:  # drop the connection
                    return
                status, payload, extra = answer
                body = json.dumps(payload).encode()
                head = [
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(body)}",
                    "Connection: keep-alive",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._conns.discard(writer)
            writer.close()

    async def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]] | None:
        raise NotImplementedError

    async def _hang(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


class ScriptedServer(_LoopbackHttp):
    """What every fake model server shares: the script, its keys, the request log, and the
    loud failure when a script runs out (never a silent cycle).

    ``script=`` is one sequence for every request (kept under ``"*"``); ``scripts=`` is one per
    key, where ``"*"`` catches requests whose key has no script of its own.
    """

    def __init__(
        self,
        script: Sequence[Step] | None,
        scripts: Mapping[str, Sequence[Step]] | None,
        *,
        name: str | None,
        default_name: str,
        key: Callable[[Mapping[str, Any]], str],
    ) -> None:
        super().__init__()
        if (script is None) == (scripts is None):
            raise ValueError("give exactly one of script= or scripts=")
        self._steps: dict[str, list[Step]] = (
            {"*": list(script)}
            if script is not None
            else {k: list(v) for k, v in (scripts or {}).items()}
        )
        self._shared = script is not None
        self._used: dict[str, int] = {}
        self.name = name or _current_test() or default_name
        self._key = key
        self.requests: list[Any] = []
        self.exhausted: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.stop()
        if exc_type is None:
            self.check()

    def check(self) -> None:
        """Raise if any request found the script exhausted."""
        if self.exhausted:
            raise ScriptExhausted("; ".join(self.exhausted))

    def remaining(self) -> dict[str, int]:
        """Unused steps per key (``"*"`` for a shared script)."""
        return {k: len(v) - self._used.get(k, 0) for k, v in self._steps.items()}

    def requests_for(self, key: str) -> list[Any]:
        return [r for r in self.requests if r.key == key]

    def wait_for(self, count: int, *, key: str | None = None, timeout: float = 30.0) -> None:
        """Block until ``count`` requests (for ``key``, or in all) have arrived, or raise
        ``TimeoutError`` after ``timeout`` seconds."""

        def enough() -> bool:
            got = self.requests if key is None else self.requests_for(key)
            return len(got) >= count

        with self._arrived:
            if not self._arrived.wait_for(enough, timeout):
                raise TimeoutError(
                    f"{self.name}: {count} request(s)"
                    f"{' for ' + key if key else ''} did not arrive within "
                    f"{timeout:g}s"
                )

    def _log(self, entry: Any) -> None:
        with self._lock:
            self.requests.append(entry)
            self._arrived.notify_all()

    def _next_step(self, key: str) -> tuple[Step | None, str]:
        with self._lock:
            slot = "*" if self._shared or key not in self._steps else key
            if slot not in self._steps:
                return None, (
                    f"{self.name}: no script for agent '{key}' (scripted: "
                    f"{', '.join(sorted(self._steps))})"
                )
            steps, i = self._steps[slot], self._used.get(slot, 0)
            if i >= len(steps):
                return None, (
                    f"{self.name}: script for '{slot}' exhausted — it has "
                    f"{len(steps)} step(s) and request #{i + 1} arrived"
                )
            self._used[slot] = i + 1
            return steps[i], ""


class FakeLLM(ScriptedServer):
    """A scripted OpenAI-compatible chat-completions server on loopback.

    Args:
        script: steps answered in order, whatever agent asks.
        scripts: steps per agent key (``"*"`` catches requests with no known agent).
        name: names the script in the error sent when it runs out (default: the current
            pytest test).
        key: how to find a request's key (default: the agent named in the system prompt).
        model: the model name reported in answers.

    Use as a context manager; on exit it raises ``ScriptExhausted`` if any request found
    the script empty, and stops the server.
    """

    requests: list[LoggedRequest]

    def __init__(
        self,
        script: Sequence[Step] | None = None,
        *,
        scripts: Mapping[str, Sequence[Step]] | None = None,
        name: str | None = None,
        key: Callable[[Mapping[str, Any]], str] = agent_key,
        model: str = "fake-model",
    ) -> None:
        super().__init__(script, scripts, name=name, default_name="FakeLLM script", key=key)
        self.model = model

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def requests_for(self, key: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.key == key]

    async def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]] | None:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}, {}
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}, {}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": {"message": "body is not JSON"}}, {}
        key = self._key(body)
        entry = LoggedRequest(
            index=len(self.requests),
            key=key,
            path=path,
            headers=headers,
            body=body,
            received=time.monotonic(),
        )
        self._log(entry)
        step, problem = self._next_step(key)
        entry.step = step
        if step is None:
            self.exhausted.append(problem)
            entry.status, entry.answered = 400, time.monotonic()
            return 400, {"error": {"message": problem, "type": "script_exhausted"}}, {}
        if isinstance(step, Hang):
            await self._hang()
            return None
        if step.delay:
            await asyncio.sleep(step.delay)
        entry.answered = time.monotonic()
        if isinstance(step, Drop):
            return None
        if isinstance(step, Fail):
            entry.status = step.status
            extra = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else {}
            return step.status, {"error": {"message": step.message}}, extra
        entry.status = 200
        return 200, self._completion(body, step, entry.index), {}

    def _completion(
        self, body: dict[str, Any], step: Reply | ToolCalls, index: int
    ) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
        if isinstance(step, Reply):
            message: dict[str, Any] = {"role": "assistant", "content": step.content}
            finish = "stop"
            completion = step.completion_tokens
            if completion is None:
                completion = max(1, len(step.content) // 4)
            prompt = step.prompt_tokens
        else:
            message = {
                "role": "assistant",
                "content": step.content,
                "tool_calls": [
                    {
                        "id": f"call_{index}_{i}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(dict(args))},
                    }
                    for i, (name, args) in enumerate(step.calls)
                ],
            }
            finish = "tool_calls"
            completion = step.completion_tokens or 8 * len(step.calls)
            prompt = step.prompt_tokens
        return {
            "id": f"chatcmpl-fake-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt if prompt is not None else max(1, prompt_chars // 4),
                "completion_tokens": completion,
                "total_tokens": (prompt or max(1, prompt_chars // 4)) + completion,
            },
        }


def _current_test() -> str | None:
    import os

    current = os.environ.get("PYTEST_CURRENT_TEST")
    return current.rsplit(" ", 1)[0] if current else None


def noop(request: Any) -> str:
    """An in-process provider that answers "ok" at once (``type: function``,
    ``function: axo.testing:noop``): for measuring orchestration alone."""
    return "ok"


def echo_last(request: Any) -> str:
    """An in-process provider that answers with the last message's text (for tests)."""
    return str(request.messages[-1].content or "")
