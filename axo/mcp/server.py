"""axo as an MCP server: every agent of a workflow file, and every workflow, is a tool.

- ``agent_<id>`` (argument ``task``) runs that one agent alone — a one-agent workflow without
  its dependencies — and answers with its output;
- ``workflow_<id>`` (argument ``input``) runs a named workflow; a file without ``workflows:``
  offers one ``workflow_<name>`` (``workflow_main`` when the file has no ``name:``) running
  every agent. It answers with the sink agents' outputs as text and the whole ``RunResult``
  as structured content.

A run sends MCP progress notifications as its agents finish (when the client asked for
progress), is cancelled when the client cancels the call, and a failed run is an ``is_error``
result naming the failed agent and why. Bad arguments are MCP errors (``INVALID_PARAMS``).
The providers (a local model's server above all) start with the first run that needs them and
serve every later run of the session (over HTTP: of the app), so a model loads once.

Transports: ``serve_stdio``, and ``serve_http`` (streamable HTTP) which binds loopback by
default, refuses any other address without a bearer token, and answers 401 to every request
without ``Authorization: Bearer <token>`` when a token is set. This module knows the SDK's
server side and axo's public run API; it knows nothing of actors or the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import math
import os
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import uvicorn
from mcp import types as mcp_types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp, Receive, Scope, Send

from axo.api import run_async
from axo.errors import UsageError
from axo.llm.base import Provider
from axo.llm.providers import ProviderSet
from axo.messages import AgentDone, AgentSkipped, RunEvent
from axo.result import RunResult, RunTracker
from axo.runtime.system import Mode
from axo.workflow import Workflow, load_file

__all__ = ["AxoMcpServer", "build_server", "http_app", "serve_http", "serve_stdio"]

DEFAULT_PORT = 8765
_CANCEL_SECONDS = 10.0  # how long a cancelled run may take to wind down
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class _Entry:
    """One tool: what it runs and the one string argument it takes."""

    tool: mcp_types.Tool
    workflow: Workflow
    arg: str
    agent: str | None = None  # the agent of an ``agent_<id>`` tool


def _schema(arg: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {arg: {"type": "string", "description": description}},
        "required": [arg],
        "additionalProperties": False,
    }


def _gist(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _entries(file: Workflow) -> dict[str, _Entry]:
    cfg, out = file.config, {}
    for agent in cfg.agents:
        alone = Workflow(
            file.file, cfg, (agent.model_copy(update={"depends_on": []}),), None, file.secrets
        )
        about = f"Run the agent '{agent.display_name}' alone on a task and return its answer."
        if agent.system_prompt:
            about += f" Its instructions: {_gist(agent.system_prompt)}"
        about = file.redact(about)  # a ${VAR} in a name or a prompt is a secret
        name = f"agent_{agent.id}"
        schema = _schema("task", "What the agent should do.")
        out[name] = _Entry(
            mcp_types.Tool(name=name, description=about, input_schema=schema),
            alone,
            "task",
            agent.id,
        )
    if cfg.workflows:
        chosen = [(f"workflow_{w.id}", file.select(w.id), w.description) for w in cfg.workflows]
    else:
        label = _UNSAFE.sub("_", file.redact(cfg.name)) if cfg.name else "main"
        chosen = [(f"workflow_{label}", file.select(None), cfg.description)]
    for name, wf, description in chosen:
        names = ", ".join(a.display_name for a in wf.agents)
        about = (
            f"Run the workflow '{name.removeprefix('workflow_')}' ({len(wf.agents)} agents: "
            f"{names}) on an input and return its final output."
        )
        if description:
            about += f" {_gist(description)}"
        about = file.redact(about)
        out[name] = _Entry(
            mcp_types.Tool(
                name=name, description=about, input_schema=_schema("input", "The run's input.")
            ),
            wf,
            "input",
        )
    return out


def _argument(name: str, entry: _Entry, arguments: dict[str, Any] | None) -> str:
    args = dict(arguments or {})
    value = args.pop(entry.arg, None)
    if value is None:
        raise MCPError(
            mcp_types.INVALID_PARAMS,
            f"{name}: missing the required argument '{entry.arg}' (a string)",
        )
    if not isinstance(value, str):
        raise MCPError(
            mcp_types.INVALID_PARAMS,
            f"{name}: '{entry.arg}' must be a string, got {type(value).__name__}",
        )
    if args:
        raise MCPError(
            mcp_types.INVALID_PARAMS,
            f"{name}: unknown argument(s) {', '.join(sorted(args))} — it takes only '{entry.arg}'",
        )
    return value


def _outputs(result: RunResult) -> str:
    if len(result.outputs) == 1:
        return next(iter(result.outputs.values()))
    names = {a.id: a.name for a in result.agents}
    return "\n\n".join(f"## {names[s]}\n{text}" for s, text in result.outputs.items())


def _call_result(entry: _Entry, result: RunResult) -> mcp_types.CallToolResult:
    data = json.loads(result.to_json())
    if result.ok:
        text = _outputs(result) if entry.agent is None else result.agent(entry.agent).output
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=text or "")], structured_content=data
        )
    text = f"the run failed: {result.failure or 'no reason given'}"
    if result.outputs and entry.agent is None:
        text += "\n\nOutputs of the agents that finished:\n\n" + _outputs(result)
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)],
        structured_content=data,
        is_error=True,
    )


def _failure(text: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)], is_error=True
    )


def _version() -> str:
    try:
        return version("axo")
    except PackageNotFoundError:
        return "0"


class AxoMcpServer(Server[Any]):
    """The SDK's low-level ``Server`` answering with a workflow file's agents and workflows.

    Args:
        file: the whole file (``load_file``).
        runtime: ``local`` or ``multiproc`` for every run.
        timeout: seconds before a run is cancelled (default: the file's ``run.timeout``).
        options: passed to ``axo.run_async`` (``providers``, ``tools``, ``policy`` …).
    """

    def __init__(
        self,
        file: Workflow,
        *,
        runtime: Mode = "local",
        timeout: float | None = None,
        **options: Any,
    ) -> None:
        self._axo_entries = _entries(file)
        self._axo_run = {"runtime": runtime, "timeout": timeout, **options}
        self._axo_opening = asyncio.Lock()  # two first calls must not start one model twice
        self._axo_stats = {
            "calls": 0,
            "runs_active": 0,
            "runs_done": 0,
            "runs_cancelled": 0,
            "providers_started": 0,
        }
        self._axo_idle = anyio.Event()
        self._axo_idle.set()
        about = f"axo workflow file {os.path.basename(file.file)}"
        if file.config.description:
            about += f": {file.config.description}"
        super().__init__(
            file.redact(file.config.name or "axo"),
            version=_version(),
            instructions=file.redact(about),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            lifespan=_shared_providers(file, options),
        )

    def statistics(self) -> dict[str, int]:
        """Calls received, runs in progress, finished and cancelled, providers started."""
        return dict(self._axo_stats)

    async def drained(self) -> None:
        """Return once no run is in progress (a cancelled run included)."""
        await self._axo_idle.wait()

    @property
    def tool_names(self) -> list[str]:
        return list(self._axo_entries)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[e.tool for e in self._axo_entries.values()])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        self._axo_stats["calls"] += 1
        entry = self._axo_entries.get(params.name)
        if entry is None:
            raise MCPError(
                mcp_types.INVALID_PARAMS,
                f"no tool named '{params.name}'; this server has: {', '.join(self._axo_entries)}",
            )
        text = _argument(params.name, entry, params.arguments)
        try:
            result = await self._run(entry.workflow, text, ctx)
        except Exception as exc:  # set-up errors (ConfigError, UsageError …) reach the client
            return _failure(entry.workflow.redact(f"{params.name} could not run: {exc}"))
        return _call_result(entry, result)

    async def _run(
        self, workflow: Workflow, text: str, ctx: ServerRequestContext[Any]
    ) -> RunResult:
        """Run in a task of its own; report agents finishing; cancel it if we are cancelled."""
        total = len(workflow.agents)
        # the providers first: when one cannot start, there is nothing else to close
        options = {**self._axo_run, "providers": await self._providers(workflow, ctx)}
        send, receive = anyio.create_memory_object_stream[tuple[int, str]](math.inf)
        finished = 0

        def on_event(event: RunEvent, tracker: RunTracker) -> None:
            nonlocal finished
            if isinstance(event, AgentDone | AgentSkipped):
                finished += 1
                status = event.status if isinstance(event, AgentDone) else "skipped"
                send.send_nowait((finished, f"{event.agent}: {status}"))

        task = asyncio.create_task(run_async(workflow, text, on_event=on_event, **options))
        task.add_done_callback(lambda _: send.close())
        stats = self._axo_stats
        stats["runs_active"] += 1
        if self._axo_idle.is_set():
            self._axo_idle = anyio.Event()
        try:
            async with receive:
                async for done, message in receive:
                    with contextlib.suppress(Exception):  # a lost note must not fail the run
                        await ctx.session.report_progress(done, total, message)
            return await task
        except anyio.get_cancelled_exc_class():
            task.cancel()
            stats["runs_cancelled"] += 1
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_SECONDS):
                await asyncio.wait([task])
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a run that failed while stopping is not news
            raise
        finally:
            stats["runs_active"] -= 1
            if task.done() and not task.cancelled():
                stats["runs_done"] += 1
            if not stats["runs_active"]:
                self._axo_idle.set()

    async def _providers(
        self, workflow: Workflow, ctx: ServerRequestContext[Any]
    ) -> dict[str, Provider]:
        """The providers a run uses: the caller's, and those the session keeps open across its
        runs (started by the first run that needs them — a local model loads once)."""
        providers = dict(self._axo_run.get("providers") or {})
        shared = ctx.lifespan_context
        if isinstance(shared, ProviderSet):
            async with self._axo_opening:
                before = shared.started
                await shared.open(workflow.remote_providers)
                self._axo_stats["providers_started"] += shared.started - before
            providers.update({n: shared.get(n) for n in workflow.remote_providers})
        return providers


def _shared_providers(
    file: Workflow, options: dict[str, Any]
) -> Callable[[Any], AbstractAsyncContextManager[ProviderSet]]:
    """The server's lifespan: one set of providers for all the runs of a session (of the whole
    app over HTTP), closed — local model servers stopped — when it ends."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[ProviderSet]:
        shared = ProviderSet(file, options.get("providers"), state_dir=options.get("state_dir"))
        try:
            yield shared
        finally:
            await shared.aclose()

    return lifespan


def build_server(
    path: str | os.PathLike[str],
    *,
    runtime: Mode = "local",
    timeout: float | None = None,
    **options: Any,
) -> AxoMcpServer:
    """Load a workflow file and build the MCP server offering its agents and workflows.

    Raises:
        ConfigError: the file has problems (all of them, at once).
    """
    return AxoMcpServer(load_file(path), runtime=runtime, timeout=timeout, **options)


Source = str | os.PathLike[str] | AxoMcpServer


def _server(source: Source, runtime: Mode, options: dict[str, Any]) -> AxoMcpServer:
    if isinstance(source, AxoMcpServer):
        return source
    return build_server(source, runtime=runtime, **options)


async def serve_stdio(path: Source, *, runtime: Mode = "local", **options: Any) -> None:
    """Serve a file's tools (or a built server's) over stdin and stdout until stdin closes."""
    server = _server(path, runtime, options)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class _BearerGate:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self._expected = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            got = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            scheme, _, token = got.strip().partition(b" ")
            # the scheme's name in any case (RFC 9110); the token compared in constant time
            if not (
                scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._expected)
            ):
                body = b'{"error": "unauthorized: send Authorization: Bearer <token>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="axo"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, made with an explicit ``IPPROTO_TCP``.

    asyncio turns on TCP_NODELAY only for sockets whose ``proto`` says TCP; accepted sockets
    inherit it from this one, and ``socket.create_server`` leaves it 0 — then every response
    waits ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def http_app(server: AxoMcpServer, *, host: str = "127.0.0.1", token: str | None = None) -> ASGIApp:
    """The streamable HTTP ASGI app at ``/mcp`` (behind the bearer check when ``token``)."""
    app = server.streamable_http_app(host=host)  # DNS-rebinding protection on loopback
    return _BearerGate(app, token) if token else app


async def serve_http(
    path: Source,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    *,
    runtime: Mode = "local",
    on_ready: Callable[[str], None] | None = None,
    **options: Any,
) -> None:
    """Serve a file's tools (or a built server's) over streamable HTTP until cancelled.

    Args:
        host: the address to bind; anything but loopback needs ``token``.
        port: the port (0: a free one — ``on_ready`` gets the URL).
        token: when set, requests without ``Authorization: Bearer <token>`` get 401.
        on_ready: called with the endpoint URL once the socket listens.

    Raises:
        UsageError: a non-loopback ``host`` without a token.
        ConfigError: the file has problems.
    """
    if not is_loopback(host) and not token:
        raise UsageError(
            f"refusing to serve MCP on {host}: binding an address other than "
            f"loopback needs a bearer token (--token, or AXO_MCP_TOKEN)"
        )
    server = _server(path, runtime, options)
    app = http_app(server, host=host, token=token)
    bare = host.strip("[]")
    try:
        sock = _listen(bare, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    shown = f"[{bare}]" if sock.family == socket.AF_INET6 else host
    web = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", log_config=None, lifespan="on", timeout_graceful_shutdown=5
        )
    )
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    try:
        if on_ready is not None:
            on_ready(f"http://{shown}:{sock.getsockname()[1]}/mcp")
        await asyncio.wait([serving])
        serving.result()
    finally:
        if not serving.done():  # we were cancelled: stop uvicorn the way it expects
            web.should_exit = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_SECONDS):
                await asyncio.wait([serving])
        sock.close()
