"""MCP servers as axo tools: connect a workflow's ``mcp_servers``, list their tools, call them.

``McpHub`` gives every configured server one long-lived owner task. That task enters the
transport and the SDK session and later exits them — anyio cancel scopes must be left by the
task that entered them — so the session stays open for the whole run and a stateful server
keeps its state between calls. Calls are made from the callers' own tasks: a request enters no
scope of the owner's.

Failure rules (every fault is an exception raised from ``Tool.call``, which the registry turns
into an error result the model reads, plus a ``record(kind, server, detail)`` event; no wait is
unbounded):

- a server that fails to start is left out: its tools are absent, ``mcp_server_failed`` says
  why, and the other servers are not affected;
- a call that outlives ``call_timeout`` fails (``mcp_call_timeout``); the server stays up;
- a server whose connection dies (a crashed process) is restarted once — reconnected and its
  tools re-listed (``mcp_server_crashed``, then ``mcp_server_restarted``); after a second death,
  or a failed restart, it is *unavailable* (``mcp_server_unavailable``) and its calls fail at
  once with ``server X is unavailable: <reason>``. A call in flight when the server dies is not
  retried (it may have had effects); it fails, naming what happened.

Stdio servers get the SDK's minimal environment (PATH, HOME, …) plus their configured ``env``,
never the whole of ours. This module knows the SDK and axo's ``Tool``; it knows nothing of
agents, runs or the host.
"""

from __future__ import annotations

import asyncio
import math
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import IO, Any, Literal

import anyio
import httpx2
import msgspec
from mcp import Client, StdioServerParameters
from mcp import types as mcp_types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from axo.config import McpServer
from axo.errors import ToolFailed, UsageError
from axo.mcp._reading import answer, closed_here, describe, leaf, unreadable
from axo.tools.registry import Tool, ToolContext

__all__ = ["McpHub", "Record", "ServerState", "ServerStatus", "list_server_tools", "tool_name"]

Record = Callable[[str, str, dict[str, Any]], None]
ServerState = Literal["connecting", "ready", "restarting", "failed", "unavailable", "closed"]
Streams = tuple[Any, Any]

MAX_RESTARTS = 1
SHUTDOWN_SECONDS = 10.0  # the SDK's own stdio shutdown escalates within ~6 s
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ServerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One server's state, as ``McpHub.status()`` reports it."""

    name: str
    transport: str
    state: ServerState
    tools: int
    restarts: int
    calls: int
    failures: int
    reason: str | None = None


def tool_name(server: str, tool: str) -> str:
    """The axo name of an MCP tool: ``mcp__<server>__<tool>``, characters a model API refuses
    replaced by ``_``."""
    return f"mcp__{_UNSAFE.sub('_', server)}__{_UNSAFE.sub('_', tool)}"


class _WatchedStream:
    """A transport's read stream that reports its end — the server went away — to ``on_end``."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner, self._on_end = inner, on_end

    @property
    def last_context(self) -> Any:  # the SDK reads the sender's context off the stream
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def _watched(
    transport: AbstractAsyncContextManager[Streams], on_end: Callable[[], None]
) -> AsyncIterator[Streams]:
    async with transport as (read, write):
        yield _WatchedStream(read, on_end), write


class _Server:
    """One configured server: its owner task, its state and its calls."""

    def __init__(self, name: str, config: McpServer, record: Record) -> None:
        self.name, self.config, self._record = name, config, record
        self.state: ServerState = "connecting"
        self.reason: str | None = None
        self.tools: list[mcp_types.Tool] = []
        self.clashes: set[str] = set()  # tools left out: their axo name was another's
        self._inflight: set[anyio.CancelScope] = set()  # the calls waiting for an answer
        self._garbled: str | None = None  # the last line that was not JSON-RPC
        self.restarts = self.calls = self.failures = 0
        self.task: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self._generation = 0
        self._settled = anyio.Event()  # the current connection attempt is ready or has failed
        self._wake = anyio.Event()  # the owner should leave the current session
        self._scope: anyio.CancelScope | None = None
        self._stopping = False
        self._stderr: IO[bytes] | None = None

    # ------------------------------------------------------------ the owner task

    async def run(self) -> None:
        """Connect, serve until stopped or lost, reconnect once after a loss. Never raises."""
        try:
            while not self._stopping:
                failure = await self._session()
                if self._stopping:
                    break
                if failure is None and self.state == "restarting":
                    continue
                if failure is not None and self.state == "connecting":
                    self._set("failed", failure)
                    self._note("mcp_server_failed", reason=failure)
                elif failure is not None:
                    self._set("unavailable", f"restart failed: {failure}")
                    self._note("mcp_server_unavailable", reason=self.reason)
                break
        except Exception as exc:  # a bug of ours must not leave callers waiting
            self._set("failed", f"internal error: {describe(exc)}")
            self._note("mcp_server_failed", reason=self.reason)
        finally:
            if self.state in ("connecting", "ready", "restarting"):
                self.state = "closed"
            self._client = None
            self._settled.set()
            if self._stderr is not None:
                self._stderr.close()

    async def _session(self) -> str | None:
        """One connection, held until stopped or lost; the reason it failed to connect, or
        None."""
        self._wake = anyio.Event()
        self._generation += 1
        gen, started, connected = self._generation, time.monotonic(), False
        try:
            deadline = anyio.current_time() + self.config.connect_timeout
            with anyio.CancelScope(deadline=deadline) as self._scope:
                async with AsyncExitStack() as stack:
                    transport = await self._transport(stack)
                    client = Client(
                        _watched(transport, lambda: self._lost(gen, "")),
                        cache=None,
                        message_handler=self._on_message,
                    )
                    await stack.enter_async_context(client)
                    tools = await _list_all(client)
                    self._scope.deadline = math.inf  # connected: the session lives on
                    if self._stopping:
                        return None
                    connected, self._client, self.tools = True, client, tools
                    restarted = self.state == "restarting"
                    self._set("ready")
                    self._note(
                        "mcp_server_restarted" if restarted else "mcp_server_ready",
                        tools=len(tools),
                        seconds=round(time.monotonic() - started, 3),
                    )
                    await self._wake.wait()
            if self._scope.cancelled_caught and not connected and not self._stopping:
                return (
                    f"did not connect within {self.config.connect_timeout:g}s{self._stderr_tail()}"
                )
        except Exception as exc:
            if connected:  # tearing down a dead session may raise: the loss is already known
                self._lost(gen, describe(exc))
                return None
            cause = leaf(exc)
            if isinstance(cause, MCPError) and cause.code == mcp_types.CONNECTION_CLOSED:
                return f"the server exited before it was ready{self._stderr_tail()}"
            return f"{describe(exc)}{self._stderr_tail()}"
        finally:
            self._client = None
        return None

    async def _transport(self, stack: AsyncExitStack) -> AbstractAsyncContextManager[Streams]:
        cfg = self.config
        if cfg.transport == "stdio":
            if not cfg.command:
                raise ValueError("a stdio server needs 'command'")
            if self._stderr is None:
                self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 — closed by run()
            self._stderr.seek(0)
            self._stderr.truncate()  # a restart's stderr tells only its own story
            params = StdioServerParameters(
                command=cfg.command, args=list(cfg.args), env=dict(cfg.env) or None, cwd=cfg.cwd
            )
            return stdio_client(params, errlog=self._stderr)  # type: ignore[arg-type]
        if not cfg.url:
            raise ValueError("a streamable_http server needs 'url'")
        timeout = httpx2.Timeout(cfg.connect_timeout, read=max(300.0, cfg.call_timeout))
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=dict(cfg.headers), timeout=timeout)
        )
        return streamable_http_client(cfg.url, http_client=http)

    def _stderr_tail(self) -> str:
        """The last lines the server wrote to stderr, as `` (stderr: …)``, or ``""``."""
        f = self._stderr
        if f is None or f.closed:
            return ""
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 2000))
        lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        tail = " | ".join([ln for ln in lines if ln][-3:])
        return f" (stderr: {tail[-300:]})" if tail else ""

    # ------------------------------------------------------------ state changes

    def _set(self, state: ServerState, reason: str | None = None) -> None:
        self.state, self.reason = state, reason
        if state != "restarting":
            self._settled.set()

    def _note(self, kind: str, **detail: Any) -> None:
        self._record(kind, self.name, detail)

    def _lost(self, gen: int, what: str) -> None:
        """The connection of generation ``gen`` died: restart once, then give up."""
        if self._stopping or gen != self._generation or self.state != "ready":
            return
        reason = (what or "the connection closed") + self._stderr_tail()
        if self.restarts < MAX_RESTARTS:
            self.restarts += 1
            self._settled = anyio.Event()
            self._set("restarting", reason)
            self._note("mcp_server_crashed", reason=reason, action="restart")
        else:
            self._set("unavailable", reason)
            self._note("mcp_server_unavailable", reason=reason)
        self._wake.set()

    async def _on_message(self, message: Any) -> None:
        """What the session hands over besides answers: a line it could not read as JSON-RPC
        (the SDK only logs it) fails the calls waiting on this server at once — it may have
        been their answer, and they would otherwise wait out their timeout."""
        if isinstance(message, Exception):
            self._garbled = unreadable(message)
            self._note("mcp_protocol_error", error=self._garbled, calls=len(self._inflight))
            for scope in list(self._inflight):
                scope.cancel()
        await anyio.lowlevel.checkpoint()

    async def settled(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until the current connection attempt is over."""
        with anyio.move_on_after(timeout):
            await self._settled.wait()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.state != "ready" and self._scope is not None:
            self._scope.cancel()

    # ------------------------------------------------------------ calls

    async def call(self, tool: str, args: dict[str, Any]) -> str:
        self.calls += 1
        try:
            return await self._call(tool, args)
        except ToolFailed:
            self.failures += 1
            raise

    async def _call(self, tool: str, args: dict[str, Any]) -> str:
        client = await self._ready_client()
        gen, timeout = self._generation, self.config.call_timeout
        start = time.monotonic()
        scope = anyio.CancelScope()  # cancelled when the server sends what is not JSON-RPC
        self._inflight.add(scope)
        try:
            with scope:
                result = await _call_tool(client, tool, args, timeout)
        except MCPError as exc:
            # the SDK says "timed out" and "closed" with codes a server may send as its own
            # errors (-32001, -32000): only the SDK's own are a timeout or a lost server
            if exc.code == mcp_types.REQUEST_TIMEOUT and time.monotonic() - start >= timeout:
                self._note("mcp_call_timeout", tool=tool, timeout=timeout)
                raise ToolFailed(
                    f"MCP server '{self.name}': '{tool}' did not answer within {timeout:g}s"
                ) from None
            if exc.code == mcp_types.CONNECTION_CLOSED and closed_here(exc):
                raise self._went_away(gen, tool) from None
            self._note("mcp_call_failed", tool=tool, error=exc.message)
            raise ToolFailed(f"MCP server '{self.name}' refused '{tool}': {exc.message}") from None
        except (
            httpx2.HTTPError,
            OSError,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ) as exc:
            raise self._went_away(gen, tool, describe(exc)) from None
        finally:
            self._inflight.discard(scope)
        if scope.cancelled_caught:
            raise ToolFailed(
                f"MCP server '{self.name}' answered '{tool}' with something that is not "
                f"JSON-RPC ({self._garbled})"
            )
        if result.is_error:
            raise ToolFailed(
                f"'{tool}' (MCP server '{self.name}') reported an error: {answer(result)}"
            )
        return answer(result)

    async def _ready_client(self) -> Client:
        if self.state in ("connecting", "restarting"):
            await self.settled(self.config.connect_timeout + 1)
        if self.state == "ready" and self._client is not None:
            return self._client
        if self.state in ("connecting", "restarting"):
            raise ToolFailed(
                f"MCP server '{self.name}' is still starting after {self.config.connect_timeout:g}s"
            )
        raise ToolFailed(f"MCP server '{self.name}' is unavailable: {self.reason or self.state}")

    def _went_away(self, gen: int, tool: str, what: str = "") -> ToolFailed:
        self._lost(gen, what or f"the connection closed during '{tool}'")
        then = (
            "it is being restarted"
            if self.state == "restarting"
            else "it is now unavailable"
            if self.state == "unavailable"
            else ""
        )
        return ToolFailed(
            f"MCP server '{self.name}' went away during '{tool}': "
            f"{self.reason or what}" + (f"; {then}" if then else "")
        )

    def status(self) -> ServerStatus:
        return ServerStatus(
            name=self.name,
            transport=self.config.transport,
            state=self.state,
            tools=len(self.tools),
            restarts=self.restarts,
            calls=self.calls,
            failures=self.failures,
            reason=self.reason,
        )


async def _call_tool(
    client: Client, tool: str, args: dict[str, Any], timeout: float
) -> mcp_types.CallToolResult:
    """The session's ``call_tool``, ~10% cheaper than ``Client.call_tool``, whose extra rounds
    serve input requests and extension results this client never asks for; a stale schema
    (``HEADER_MISMATCH``, 2026-07-28 HTTP) goes to ``Client.call_tool``, which re-lists and
    resends once."""
    try:
        return await client.session.call_tool(tool, args, read_timeout_seconds=timeout)
    except MCPError as exc:
        if exc.code != mcp_types.HEADER_MISMATCH:
            raise
    return await client.call_tool(tool, args, read_timeout_seconds=timeout)


async def _list_all(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a paginator that never ends must not hang the connect
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _ignore(kind: str, server: str, detail: dict[str, Any]) -> None:
    pass


class McpHub:
    """The MCP servers of one run, connected; their tools as axo ``Tool``s.

    Open with ``await McpHub.open(servers)`` and close with ``await hub.aclose()`` (or use
    ``async with``): closing stops every server process.
    """

    def __init__(self, servers: Mapping[str, McpServer], *, record: Record | None = None) -> None:
        self._servers = {
            name: _Server(name, cfg, record or _ignore) for name, cfg in servers.items()
        }

    @classmethod
    async def open(
        cls, servers: Mapping[str, McpServer], *, record: Record | None = None
    ) -> McpHub:
        """Connect every server in parallel, each within its ``connect_timeout``.

        Args:
            servers: the workflow's ``mcp_servers``.
            record: called as ``record(kind, server, detail)`` for each server event.

        Returns:
            the hub; servers that failed to start are in ``status()``, not in ``tools()``.
        """
        hub = cls(servers, record=record)
        try:
            for s in hub._servers.values():
                s.task = asyncio.create_task(s.run(), name=f"mcp-server-{s.name}")
            for s in hub._servers.values():
                await s.settled(s.config.connect_timeout + 5)  # the owner's own deadline rules
        except BaseException:
            await hub.aclose()
            raise
        return hub

    def tools(self) -> list[Tool]:
        """Every tool of every ready server, named ``mcp__<server>__<tool>``.

        A tool is a ``writes`` tool unless the server marks it read-only, so ``*`` in an
        allow-list grants only read-only MCP tools.
        """
        out: dict[str, Tool] = {}
        for s in self._servers.values():
            if s.state != "ready":
                continue
            for spec in s.tools:
                tool = self._tool(s, spec)
                if tool.name in out:  # 'a.b' and 'a_b', or one name listed twice: keep the first
                    if spec.name not in s.clashes:  # noted once, not on every listing
                        s.clashes.add(spec.name)
                        s._note("mcp_tool_name_clash", tool=spec.name, name=tool.name)
                    continue
                out[tool.name] = tool
        return list(out.values())

    @staticmethod
    def _tool(server: _Server, spec: mcp_types.Tool) -> Tool:
        remote = spec.name

        async def call(args: dict[str, Any], ctx: ToolContext) -> str:
            return await server.call(remote, args)

        schema = dict(spec.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        read_only = bool(spec.annotations and spec.annotations.read_only_hint)
        cfg = server.config
        return Tool(
            name=tool_name(server.name, remote),
            description=spec.description or spec.title or f"{remote} ({server.name})",
            parameters=schema,
            call=call,
            writes=not read_only,
            timeout=cfg.call_timeout + cfg.connect_timeout + 1,
            source="mcp",
        )

    def specs(self) -> dict[str, list[mcp_types.Tool]]:
        """The SDK's tool descriptions, by server (empty for a server that is not ready)."""
        return {n: list(s.tools) if s.state == "ready" else [] for n, s in self._servers.items()}

    def explained(self, exc: UsageError) -> UsageError:
        """An allow-list error, with why the servers it may name did not start."""
        down = [s for s in self.status().values() if s.state in ("failed", "unavailable")]
        if not down:
            return exc
        why = "; ".join(f"MCP server '{s.name}' did not start: {s.reason}" for s in down)
        return UsageError(f"{exc} ({why})")

    def status(self) -> dict[str, ServerStatus]:
        """Each server's state, tool count, restarts, calls and failures."""
        return {name: s.status() for name, s in self._servers.items()}

    async def aclose(self) -> None:
        """Stop every server and wait (bounded) until their processes are gone."""
        for s in self._servers.values():
            s.stop()
        tasks = [s.task for s in self._servers.values() if s.task is not None and not s.task.done()]
        if not tasks:
            return
        # shielded: a caller being cancelled must not leave server processes behind
        _, pending = await asyncio.shield(asyncio.wait(tasks, timeout=SHUTDOWN_SECONDS))
        for t in pending:
            t.cancel()

    async def __aenter__(self) -> McpHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def list_server_tools(
    servers: Mapping[str, McpServer], *, record: Record | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Connect each server, list its tools, disconnect (for ``axo mcp tools``).

    Returns:
        by server: ``{"name": axo name, "tool": server's name, "description",
        "input_schema", "read_only"}`` per tool; ``[]`` for a server that failed (``record``
        gets ``mcp_server_failed`` with the reason).
    """
    async with await McpHub.open(servers, record=record) as hub:
        return {
            server: [
                {
                    "name": tool_name(server, t.name),
                    "tool": t.name,
                    "description": t.description or "",
                    "input_schema": t.input_schema,
                    "read_only": bool(t.annotations and t.annotations.read_only_hint),
                }
                for t in tools
            ]
            for server, tools in hub.specs().items()
        }
