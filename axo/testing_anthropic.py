"""A scripted Anthropic Messages API server on loopback: ``FakeLLM``'s twin for ``anthropic``.

``FakeAnthropic`` is a real HTTP/1.1 server on 127.0.0.1 (its own thread and event loop, from
``axo.testing``'s ``ScriptedServer``). It answers ``POST /v1/messages`` from a script of the same
steps ``FakeLLM`` takes (``Reply``, ``ToolCalls``, ``Fail``, ``Drop``, ``Hang``) in Anthropic's
wire format: content blocks, ``stop_reason`` ``end_turn`` / ``tool_use``, usage as
``input_tokens`` / ``output_tokens``, errors as ``{"type": "error", "error": {...}}``. When the
request forces a tool (``tool_choice: {"type": "tool"}``) a ``Reply`` holding a JSON object is
answered as that tool's input, as a real model would be made to.

Before consulting its script it refuses what the real API refuses: no ``x-api-key`` (401), no
``anthropic-version``, no ``max_tokens``, no ``model``, turns that do not alternate user /
assistant or do not start with user, empty text blocks, a ``tool_result`` without a matching
``tool_use`` in the turn before, a ``tool_use`` not answered in the turn after (400). It logs
every request; a request that finds its script exhausted gets HTTP 400 naming the script, and
``check()`` (called on exit) then fails the test. It never cycles its script.

It does not stream, count real tokens, or validate JSON schemas.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from axo.testing import (
    Drop,
    Fail,
    Hang,
    LoggedRequest,
    Reply,
    ScriptedServer,
    Step,
    ToolCalls,
)

__all__ = ["AnthropicRequest", "FakeAnthropic", "system_agent_key", "wire_problem"]

Answer = tuple[int, Any, dict[str, str]]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_NAME = re.compile(r"You are (.+?)\.(?:\n|$)")


@dataclass
class AnthropicRequest(LoggedRequest):
    """One request as the server saw it, with Anthropic's top-level ``system`` field."""

    @property
    def system(self) -> str:
        return _system_text(self.body.get("system"))

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """Every content block of every turn, in order (a string content is one text block)."""
        out: list[dict[str, Any]] = []
        for m in self.messages:
            content = m.get("content")
            out += (
                [{"type": "text", "text": content}]
                if isinstance(content, str)
                else list(content or [])
            )
        return out

    @property
    def text(self) -> str:
        """The system text, every text block and every tool result, joined: for ``in``."""
        parts = [self.system]
        for b in self.blocks:
            if b.get("type") == "text":
                parts.append(str(b.get("text") or ""))
            elif b.get("type") == "tool_result":
                parts.append(str(b.get("content") or ""))
        return "\n".join(parts)


def _system_text(system: Any) -> str:
    if isinstance(system, list):
        return "".join(str(b.get("text") or "") for b in system if isinstance(b, dict))
    return str(system or "")


def system_agent_key(body: Mapping[str, Any]) -> str:
    """The agent a request comes from, read from the top-level ``system`` ("You are X.")."""
    found = _NAME.match(_system_text(body.get("system")))
    return found.group(1) if found else "*"


def wire_problem(headers: Mapping[str, str], body: Any) -> tuple[int, str] | None:
    """What the real Messages API would refuse in this request: (status, message), or None."""
    if not headers.get("x-api-key"):
        return 401, "x-api-key header is required"
    if not headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    if not isinstance(body, dict):
        return 400, "the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, "model: Field required"
    tokens = body.get("max_tokens")
    if tokens is None:
        return 400, "max_tokens: Field required"
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        return 400, "max_tokens: must be a positive integer"
    return _messages_problem(body.get("messages")) or _tools_problem(body)


def _messages_problem(messages: Any) -> tuple[int, str] | None:
    if not isinstance(messages, list) or not messages:
        return 400, "messages: at least one message is required"
    previous_uses: set[str] = set()
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            return 400, f"messages.{i}.role: must be 'user' or 'assistant', got {role!r}"
        if i == 0 and role != "user":
            return 400, "messages: the first message must use the 'user' role"
        if i and messages[i - 1].get("role") == role:
            return 400, (
                "messages: roles must alternate between 'user' and 'assistant', but "
                f"found multiple '{role}' roles in a row at messages.{i}"
            )
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return 400, f"messages.{i}: content must be a non-empty string or list of blocks"
        uses: set[str] = set()
        results: set[str] = set()
        for j, b in enumerate(blocks):
            kind = b.get("type") if isinstance(b, dict) else None
            where = f"messages.{i}.content.{j}"
            if kind == "text" and not b.get("text"):
                return 400, f"{where}: text content blocks must be non-empty"
            if kind == "tool_use":
                if role != "assistant":
                    return 400, f"{where}: tool_use blocks may only appear in assistant turns"
                if not isinstance(b.get("input"), dict):
                    return 400, f"{where}.input: must be a JSON object"
                uses.add(str(b.get("id")))
            elif kind == "tool_result":
                if role != "user":
                    return 400, f"{where}: tool_result blocks may only appear in user turns"
                if b.get("tool_use_id") not in previous_uses:
                    return 400, (
                        f"{where}: unexpected tool_use_id found in tool_result "
                        f"blocks: {b.get('tool_use_id')}. Each tool_result block "
                        "must have a corresponding tool_use block in the previous "
                        "message."
                    )
                results.add(str(b["tool_use_id"]))
            elif kind not in ("text", "image", "document"):
                return 400, f"{where}.type: unknown content block type {kind!r}"
        if role == "user" and previous_uses - results:
            return 400, (
                f"messages.{i}: tool_use ids were found without tool_result blocks "
                f"immediately after: {', '.join(sorted(previous_uses - results))}"
            )
        previous_uses = uses if role == "assistant" else set()
    return None


def _tools_problem(body: dict[str, Any]) -> tuple[int, str] | None:
    tools = body.get("tools") or []
    names = []
    for i, t in enumerate(tools):
        if (
            not isinstance(t, dict)
            or not t.get("name")
            or not isinstance(t.get("input_schema"), dict)
        ):
            return 400, f"tools.{i}: a tool needs a name and an input_schema object"
        names.append(t["name"])
    choice = body.get("tool_choice")
    if (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and choice.get("name") not in names
    ):
        return 400, f"tool_choice: tool '{choice.get('name')}' is not among the tools offered"
    return None


class FakeAnthropic(ScriptedServer):
    """A scripted Anthropic Messages API server on loopback.

    Args:
        script: steps answered in order, whatever agent asks.
        scripts: steps per agent key (``"*"`` catches requests with no known agent).
        name: names the script in the error sent when it runs out (default: the current
            pytest test).
        key: how to find a request's key (default: the agent named in ``system``).
        api_key: when given, the only ``x-api-key`` accepted (any non-empty key otherwise).

    Point a client at ``base_url`` (the client appends ``/v1/messages``). Use as a context
    manager; on exit it raises ``ScriptExhausted`` if any request found the script empty.
    """

    def __init__(
        self,
        script: Sequence[Step] | None = None,
        *,
        scripts: Mapping[str, Sequence[Step]] | None = None,
        name: str | None = None,
        key: Callable[[Mapping[str, Any]], str] = system_agent_key,
        api_key: str | None = None,
    ) -> None:
        super().__init__(script, scripts, name=name, default_name="FakeAnthropic script", key=key)
        self._api_key = api_key
        self.misused: list[str] = []

    @property
    def base_url(self) -> str:
        return self.url

    def check(self) -> None:
        """Raise if any request found the script exhausted or could not follow a step."""
        super().check()
        if self.misused:
            raise AssertionError("; ".join(self.misused))

    def requests_for(self, key: str) -> list[AnthropicRequest]:
        return [r for r in self.requests if r.key == key]

    async def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> Answer | None:
        if method != "POST" or path.split("?")[0].rstrip("/") != "/v1/messages":
            return _error(404, f"no route {method} {path}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "the request body is not JSON")
        key = self._key(body) if isinstance(body, dict) else "*"
        entry = AnthropicRequest(
            index=len(self.requests),
            key=key,
            path=path,
            headers=headers,
            body=body,
            received=time.monotonic(),
        )
        self._log(entry)
        refused = wire_problem(headers, body)
        if (
            refused is None
            and self._api_key is not None
            and headers.get("x-api-key") != self._api_key
        ):
            refused = (401, "invalid x-api-key")
        if refused is not None:
            entry.status, entry.answered = refused[0], time.monotonic()
            return _error(*refused)
        step, problem = self._next_step(key)
        entry.step = step
        if step is None:
            self.exhausted.append(problem)
            entry.status, entry.answered = 400, time.monotonic()
            return _error(400, problem)
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
            extra = {} if step.retry_after is None else {"retry-after": f"{step.retry_after:g}"}
            return _error(step.status, step.message, extra)
        try:
            message = _message(entry, step)
        except ValueError as exc:
            self.misused.append(f"{self.name}: request #{entry.index + 1}: {exc}")
            entry.status = 400
            return _error(400, f"{self.name}: {exc}")
        entry.status = 200
        return 200, message, {}


def _error(status: int, message: str, extra: dict[str, str] | None = None) -> Answer:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return status, {"type": "error", "error": {"type": kind, "message": message}}, extra or {}


def _message(request: AnthropicRequest, step: Reply | ToolCalls) -> dict[str, Any]:
    """The Messages API answer for ``step``; raises ValueError when the step cannot fit."""
    choice = request.body.get("tool_choice") or {}
    forced = choice.get("name") if choice.get("type") == "tool" else None
    blocks: list[dict[str, Any]] = []
    if isinstance(step, Reply) and forced is None:
        blocks.append({"type": "text", "text": step.content})
        output = step.completion_tokens
    elif isinstance(step, Reply):
        try:
            value = json.loads(step.content)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ValueError(
                f"the request forces tool '{forced}', so the scripted Reply must "
                f"be a JSON object, not {step.content[:60]!r}"
            )
        blocks.append(_tool_use(request.index, 0, forced, value))
        output = step.completion_tokens
    else:
        if step.content:
            blocks.append({"type": "text", "text": step.content})
        blocks += [
            _tool_use(request.index, i, name, dict(args))
            for i, (name, args) in enumerate(step.calls)
        ]
        output = None
    text_out = "".join(
        json.dumps(b.get("input")) if b["type"] == "tool_use" else b["text"] for b in blocks
    )
    prompt = step.prompt_tokens if isinstance(step, Reply) else None
    return {
        "id": f"msg_fake_{request.index}",
        "type": "message",
        "role": "assistant",
        "model": request.body.get("model"),
        "content": blocks,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt if prompt is not None else max(1, len(request.text) // 4),
            "output_tokens": output if output is not None else max(1, len(text_out) // 4),
        },
    }


def _tool_use(index: int, i: int, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_fake_{index}_{i}", "name": name, "input": value}
