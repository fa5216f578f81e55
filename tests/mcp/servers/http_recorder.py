"""A streamable HTTP MCP server on 127.0.0.1 that records every request's Authorization header.

``RecordingHttpServer`` runs it in its own thread and event loop (like ``axo.testing.FakeLLM``)
so a test can read ``authorizations`` — what really arrived on the server side.
``serve_forever`` runs any ``MCPServer`` the same way in the foreground, for a subprocess.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

Scope = dict[str, Any]


def default_server() -> MCPServer:
    server = MCPServer("recorder")

    @server.tool(description="Answer with the text.")
    def echo(text: str) -> str:
        return text

    return server


class _Recorder:
    """ASGI middleware: note the Authorization header (or None) of each HTTP request."""

    def __init__(self, app: Any, seen: list[str | None]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            value = headers.get(b"authorization")
            self.seen.append(value.decode("latin-1") if value is not None else None)
        await self.app(scope, receive, send)


def _listening_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only when the socket's proto says TCP
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _uvicorn(server: MCPServer, seen: list[str | None]) -> uvicorn.Server:
    app = _Recorder(server.streamable_http_app(host="127.0.0.1"), seen)
    config = uvicorn.Config(
        app, log_level="warning", log_config=None, lifespan="on", timeout_graceful_shutdown=2
    )
    return uvicorn.Server(config)


class RecordingHttpServer:
    """Serve ``server`` (default: a one-tool ``echo`` server) over streamable HTTP.

    Use as a context manager; ``url`` is the MCP endpoint, ``authorizations`` the header of
    every request received, in order.
    """

    def __init__(self, server: MCPServer | None = None) -> None:
        self.authorizations: list[str | None] = []
        self._sock = _listening_socket()
        self._server = _uvicorn(server or default_server(), self.authorizations)
        self._thread = threading.Thread(target=self._run, daemon=True, name="mcp-http")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/mcp"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def __enter__(self) -> RecordingHttpServer:
        self._thread.start()  # the socket already listens: early connections wait in its backlog
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the MCP HTTP test server did not stop within 10 s")


def serve_forever(server: MCPServer) -> None:
    """Serve ``server`` on a free loopback port; print ``ready <url>`` once listening."""
    sock = _listening_socket()
    seen: list[str | None] = []
    http = _uvicorn(server, seen)
    print(f"ready http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    try:
        asyncio.run(http.serve(sockets=[sock]))
    finally:
        sock.close()


if __name__ == "__main__":
    serve_forever(default_server())
    sys.exit(0)
