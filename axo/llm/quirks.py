"""Small local models' quirks behind llama.cpp's server, handled so users never see them.

Pure functions, no I/O: ``prepare_messages`` makes a conversation acceptable to the chat
template (no ``None`` contents; tool calls and tools rendered as text the model can see) and
``parse_text_tool_calls`` reads tool calls that a model wrote as JSON text. What the server
does and why these exist is recorded in ``axo.llm.local``'s docstring.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from axo.llm.base import ChatMessage, ToolCall, ToolSpec

_CALL_KEYS = frozenset({"name", "function", "arguments", "parameters", "type", "id"})
_TOOL_PROMPT = (
    "You can call these tools:\n{tools}\n"
    "To call a tool, reply with only this JSON and nothing else: "
    '{{"name": "<tool name>", "arguments": {{<arguments>}}}}'
)


def prepare_messages(
    messages: tuple[ChatMessage, ...], *, tools: tuple[ToolSpec, ...] = ()
) -> tuple[ChatMessage, ...]:
    """Make a conversation acceptable to the server and visible to a template-limited model.

    An assistant turn that only calls tools gets the calls as JSON lines in ``content`` (the
    template never shows ``tool_calls``; the lines use the form ``parse_text_tool_calls``
    reads); any other ``None`` content becomes ``""``; a ``tool`` message without an id gets
    ``""``. With ``tools``, their description is appended to the system message (one is
    added when there is none), because the template does not render ``tools`` either.
    """
    prepared: list[ChatMessage] = []
    for message in messages:
        content = message.content
        if message.role == "assistant" and not content and message.tool_calls:
            content = "\n".join(_render_call(call) for call in message.tool_calls)
        tool_call_id = message.tool_call_id
        if message.role == "tool" and tool_call_id is None:
            tool_call_id = ""
        if content is None:
            content = ""
        if content != message.content or tool_call_id != message.tool_call_id:
            message = msgspec.structs.replace(message, content=content, tool_call_id=tool_call_id)
        prepared.append(message)
    if tools:
        described = _TOOL_PROMPT.format(tools="\n".join(_describe(t) for t in tools))
        if prepared and prepared[0].role == "system" and prepared[0].content:
            first = prepared[0]
            prepared[0] = msgspec.structs.replace(first, content=f"{first.content}\n\n{described}")
        else:
            prepared.insert(0, ChatMessage(role="system", content=described))
    return tuple(prepared)


def parse_text_tool_calls(content: str | None, tools: tuple[ToolSpec, ...]) -> tuple[ToolCall, ...]:
    """Read tool calls a model wrote as JSON text; ``()`` when the text holds none.

    Accepts, anywhere in the text (bare, in a ```json fence, between other words): an object
    ``{"name": N, "arguments": {...}}`` (``"parameters"`` and ``"function": N`` also work, as
    do OpenAI's ``{"type": "function", "function": {"name": N, "arguments": "..."}}`` and
    ``{"tool_calls": [...]}``), or a list of them. Only names of offered ``tools`` count;
    objects with other keys (a model echoing a tool's description) do not, nor do arguments
    that are not an object, name undeclared parameters or miss required ones. Value types are
    not checked: the tool runner validates. Ids are ``call_0``, ``call_1``, … in order.
    """
    if not content or not tools:
        return ()
    offered = {tool.name: tool for tool in tools}
    calls: list[tuple[str, dict[str, Any]]] = []
    for value in _json_values(content):
        calls += _read_calls(value, offered)
    return tuple(
        ToolCall(id=f"call_{i}", name=name, arguments=json.dumps(args, ensure_ascii=False))
        for i, (name, args) in enumerate(calls)
    )


def _render_call(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)


def _describe(tool: ToolSpec) -> str:
    spec = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return json.dumps(spec, ensure_ascii=False)


def _json_values(text: str) -> Iterator[Any]:
    """Yield every top-level JSON object or array embedded in ``text``, left to right."""
    decoder = json.JSONDecoder()
    start = 0
    while True:
        starts = [i for i in (text.find("{", start), text.find("[", start)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start += 1
            continue
        yield value
        start = end


def _read_calls(value: Any, offered: Mapping[str, ToolSpec]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(value, list):
        return [call for item in value for call in _read_calls(item, offered)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("tool_calls"), list) and len(value) == 1:
        return _read_calls(value["tool_calls"], offered)
    if not set(value) <= _CALL_KEYS:
        return []
    inner = value.get("function")
    if isinstance(inner, dict):
        if not set(inner) <= _CALL_KEYS:
            return []
        name, args = inner.get("name"), inner.get("arguments", inner.get("parameters"))
    else:
        name = inner if isinstance(inner, str) else value.get("name")
        args = value.get("arguments", value.get("parameters"))
    if not isinstance(name, str) or name not in offered:
        return []
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return []
    if args is None:
        args = {}
    if not isinstance(args, dict) or not _fits(args, offered[name].parameters):
        return []
    return [(name, args)]


def _fits(args: dict[str, Any], schema: Mapping[str, Any]) -> bool:
    """Whether ``args`` names only declared parameters and all required ones.

    A small model copies placeholders (``{"<parameter>": "<value>"}``) or echoes the schema;
    this catches both without validating value types, which the tool runner does.
    """
    if args == schema:
        return False
    properties = schema.get("properties")
    closed = isinstance(properties, Mapping) and not schema.get("additionalProperties")
    if closed and not set(args) <= set(properties):
        return False
    required = schema.get("required")
    return not isinstance(required, list) or set(required) <= set(args)
