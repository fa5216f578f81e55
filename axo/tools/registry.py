"""Tools: a typed Python function becomes a tool; a registry holds them by name.

A tool's JSON schema comes from its type hints (through pydantic) and its docstring (summary
and ``Args:`` lines); arguments are validated before the function runs, and any failure —
bad arguments, an exception, a timeout — becomes an error result the model reads, not a crash.
This module knows nothing about agents, policies or actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import msgspec
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from axo.errors import UsageError
from axo.llm.base import ToolSpec, valid_text


class ToolExited(Exception):
    """A Python tool called ``sys.exit`` (which would otherwise end the host's event loop)."""


class ToolOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a tool call produced, as the model will read it."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    structured: Any = None


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may know about its caller."""

    run_id: str
    agent: str
    workspace: str
    memory: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


ToolFn = Callable[..., Any]


@dataclass
class Tool:
    """A named, described, schema'd callable.

    Attributes:
        writes: the tool changes something outside the conversation (files, processes,
            remote state); such tools are granted only by naming them in an allow-list.
        timeout: seconds before a call is abandoned (an error result).
        call: ``async (args, ctx) -> str | Any`` — what actually runs.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    call: Callable[[dict[str, Any], ToolContext], Awaitable[Any]]
    writes: bool = False
    timeout: float = 30.0
    source: str = "python"

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


_ARGS = re.compile(r"^\s*Args:\s*$")
_ARG_LINE = re.compile(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _doc_parts(fn: ToolFn) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(fn) or ""
    lines = doc.splitlines()
    summary = " ".join(lines[0:1]).strip()
    params: dict[str, str] = {}
    in_args = False
    for line in lines[1:]:
        if _ARGS.match(line):
            in_args = True
            continue
        if in_args:
            m = _ARG_LINE.match(line)
            if m:
                params[m.group(1)] = m.group(2).strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                in_args = False
    return summary, params


def tool(
    fn: ToolFn | None = None,
    *,
    name: str | None = None,
    writes: bool = False,
    timeout: float = 30.0,
) -> Any:
    """Turn a typed function into a ``Tool``: ``@tool`` or ``@tool(writes=True)``.

    A parameter named ``ctx`` annotated ``ToolContext`` receives the call's context and is not
    part of the schema. The function may be sync (run in a thread) or async.
    """

    def wrap(f: ToolFn) -> Tool:
        return make_tool(f, name=name, writes=writes, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


_made: dict[tuple[Any, ...], Tool] = {}


def make_tool(
    fn: ToolFn, *, name: str | None = None, writes: bool = False, timeout: float = 30.0
) -> Tool:
    """A Tool for ``fn``; built once per function and options (pydantic models cost ~1 ms)."""
    key = (fn, name, writes, timeout)
    try:
        return _made[key]
    except (KeyError, TypeError):
        pass
    made = _make_tool(fn, name=name, writes=writes, timeout=timeout)
    with contextlib.suppress(TypeError):
        _made[key] = made
    return made


def _make_tool(fn: ToolFn, *, name: str | None, writes: bool, timeout: float) -> Tool:
    sig = inspect.signature(fn)
    hints = get_type_hints(fn)
    summary, arg_docs = _doc_parts(fn)
    fields: dict[str, Any] = {}
    wants_ctx = False
    for pname, param in sig.parameters.items():
        if pname == "ctx":
            wants_ctx = True
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise UsageError(f"tool {fn.__name__}: *args/**kwargs cannot be described to a model")
        if pname not in hints:
            raise UsageError(f"tool {fn.__name__}: parameter '{pname}' needs a type hint")
        default = ... if param.default is param.empty else param.default
        from pydantic import Field

        fields[pname] = (hints[pname], Field(default, description=arg_docs.get(pname)))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    is_async = inspect.iscoroutinefunction(fn)

    async def call(args: dict[str, Any], ctx: ToolContext) -> Any:
        parsed = model.model_validate(args)
        kwargs = {k: getattr(parsed, k) for k in fields}
        if wants_ctx:
            kwargs["ctx"] = ctx
        try:
            if is_async:
                return await fn(**kwargs)
            return await asyncio.to_thread(fn, **kwargs)
        except SystemExit as exc:  # argparse inside a tool …: its failure, not the host's exit
            raise ToolExited(f"called sys.exit({exc.code!r})") from None

    return Tool(
        name=name or fn.__name__,
        description=summary or fn.__name__,
        parameters=schema,
        call=call,
        writes=writes,
        timeout=timeout,
    )


def format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid arguments: " + "; ".join(parts)


def canonical_args(arguments: str) -> str:
    """A canonical form of a call's JSON arguments (for recognising repeated calls)."""
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return arguments.strip()


class ToolRegistry:
    """Tools by name; resolves an agent's allow-list to the tools it may call."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | ToolFn) -> Tool:
        if not isinstance(t, Tool):
            t = make_tool(t)
        if t.name in self._tools:
            raise UsageError(f"a tool named '{t.name}' is already registered")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def allowed(self, allow_list: Iterable[str]) -> list[Tool]:
        """The tools an allow-list grants, in registry order.

        Entries: a tool's exact name (grants it, write tools included); ``mcp__<server>``
        (every tool of that MCP server); ``*`` (every tool that does not write).

        Raises:
            UsageError: an entry names no tool.
        """
        wanted = list(allow_list)
        out: dict[str, Tool] = {}
        for entry in wanted:
            if entry == "*":
                out.update({n: t for n, t in self._tools.items() if not t.writes})
            elif entry in self._tools:
                out[entry] = self._tools[entry]
            elif entry.startswith("mcp__") and entry.count("__") == 1:
                server = [t for n, t in self._tools.items() if n.startswith(entry + "__")]
                if not server:
                    raise UsageError(
                        f"allow-list entry '{entry}': no MCP server of that name has tools"
                    )
                out.update({t.name: t for t in server})
            else:
                import difflib

                near = difflib.get_close_matches(entry, list(self._tools), n=1)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                raise UsageError(
                    f"unknown tool '{entry}' in an allow-list{hint} "
                    f"(known: {', '.join(self.names()) or 'none'})"
                )
        return [self._tools[n] for n in self._tools if n in out]

    async def execute(
        self, name: str, call_id: str, arguments: str, ctx: ToolContext
    ) -> ToolOutcome:
        """Run one call; every failure becomes an error outcome."""
        t = self._tools.get(name)
        if t is None:
            return ToolOutcome(
                call_id=call_id, name=name, is_error=True, content=f"error: no tool named '{name}'"
            )
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            return ToolOutcome(
                call_id=call_id,
                name=name,
                is_error=True,
                content=f"error: arguments are not a JSON object ({exc})",
            )
        try:
            value = await asyncio.wait_for(t.call(args, ctx), t.timeout)
        except ValidationError as exc:
            return ToolOutcome(
                call_id=call_id,
                name=name,
                is_error=True,
                content=f"error: {format_validation(exc)}",
            )
        except TimeoutError:
            return ToolOutcome(
                call_id=call_id,
                name=name,
                is_error=True,
                content=f"error: {name} did not finish within {t.timeout:g}s",
            )
        except Exception as exc:
            return ToolOutcome(
                call_id=call_id,
                name=name,
                is_error=True,
                content=f"error: {type(exc).__name__}: {exc}",
            )
        return to_outcome(call_id, name, value)


def to_outcome(call_id: str, name: str, value: Any) -> ToolOutcome:
    """A tool's return value as the model reads it: text as is (made valid UTF-8), anything
    else as JSON — kept as ``structured`` too — or, when it has no JSON form, as ``str``."""
    if isinstance(value, ToolOutcome):
        return value
    if isinstance(value, str):
        return ToolOutcome(call_id=call_id, name=name, content=valid_text(value))
    try:
        structured = msgspec.to_builtins(value)
        text = json.dumps(structured, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, msgspec.EncodeError):  # no JSON form: only its text goes on
        return ToolOutcome(call_id=call_id, name=name, content=valid_text(str(value)))
    return ToolOutcome(call_id=call_id, name=name, content=text, structured=structured)
