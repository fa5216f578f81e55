"""The ``axo mcp`` commands.

- ``axo mcp tools FILE [--json]``: connect every MCP server the file configures and list its
  tools and their arguments (exit 1 when a server fails to start);
- ``axo mcp serve FILE [--http HOST:PORT] [--token TOKEN] [--runtime local|multiproc]``: offer
  the file's agents and workflows as MCP tools, over stdio or streamable HTTP. The token may
  also come from ``AXO_MCP_TOKEN`` (a command line is visible to every user of the machine).

``add_commands`` adds them to axo's parser and ``run_command`` runs them (exit codes as for
``axo``: 0 ok, 1 failed, 2 a usage or configuration error, 130 interrupted).
``python -m axo.mcp.cli tools FILE`` runs them on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from axo.errors import UsageError, UserError
from axo.workflow import load_file

TOKEN_ENV = "AXO_MCP_TOKEN"


def add_commands(subparsers: Any) -> None:
    """Add ``mcp tools`` and ``mcp serve`` to an ``argparse`` subparsers object."""
    m = subparsers.add_parser("mcp", help="list MCP servers' tools; serve axo over MCP")
    sub = m.add_subparsers(dest="mcp_command", required=True)
    t = sub.add_parser("tools", help="list the tools of every MCP server a file configures")
    t.add_argument("file")
    t.add_argument("--json", action="store_true", help="print the listing as JSON")
    s = sub.add_parser("serve", help="serve a file's agents and workflows as MCP tools")
    s.add_argument("file")
    s.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp (default: stdio)",
    )
    s.add_argument(
        "--token",
        help=f"bearer token HTTP clients must send (or ${TOKEN_ENV}); "
        "required to bind an address other than loopback",
    )
    s.add_argument("--runtime", choices=["local", "multiproc"], default="local")
    s.add_argument(
        "--state-dir",
        default=".axo",
        help="where served runs keep their event log, checkpoints and long-term memory "
        "(as `axo run`)",
    )


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed ``axo mcp …`` command; return the exit code."""
    try:
        if args.mcp_command == "tools":
            return _tools(args)
        if args.mcp_command == "serve":
            return _serve(args)
    except UserError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    raise AssertionError(args.mcp_command)


def _tools(args: argparse.Namespace) -> int:
    from axo.mcp.client import list_server_tools
    from axo.tools.builtins import builtin_tools

    wf = load_file(args.file, known_tools=[t.name for t in builtin_tools()])
    servers = wf.config.mcp_servers
    failed: dict[str, str] = {}

    def record(kind: str, server: str, detail: dict[str, Any]) -> None:
        if kind == "mcp_server_failed":
            failed[server] = wf.redact(str(detail.get("reason")))

    listing = asyncio.run(list_server_tools(servers, record=record)) if servers else {}
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.file,
                    "servers": {
                        name: {
                            "transport": servers[name].transport,
                            "ok": name not in failed,
                            "error": failed.get(name),
                            "tools": tools,
                        }
                        for name, tools in listing.items()
                    },
                },
                ensure_ascii=False,
            )
        )
    elif not servers:
        print(f"{args.file}: no mcp_servers configured")
    else:
        for name, tools in listing.items():
            head = f"{name}  ({servers[name].transport})"
            if name in failed:
                print(f"{head}  failed: {failed[name]}")
                continue
            print(f"{head}  {len(tools)} tool{'s' if len(tools) != 1 else ''}")
            for t in tools:
                print(f"  {t['name']}" + ("  [read-only]" if t["read_only"] else ""))
                if t["description"]:
                    print(f"      {' '.join(t['description'].split())}")
                print(*_arguments(t["input_schema"]), sep="\n", end="")
    return 1 if failed else 0


def _arguments(schema: dict[str, Any]) -> list[str]:
    """One line per argument: ``name: type, required — description``."""
    required = set(schema.get("required") or ())
    lines = []
    for name, prop in (schema.get("properties") or {}).items():
        kind = (
            prop.get("type")
            or "|".join(str(p.get("type", "?")) for p in prop.get("anyOf", []))
            or "any"
        )
        line = f"      {name}: {kind}" + (", required" if name in required else "")
        if prop.get("description"):
            line += f" — {' '.join(str(prop['description']).split())}"
        lines.append(line + "\n")
    return lines


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--http {text}: write it as HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


def _serve(args: argparse.Namespace) -> int:
    from axo.mcp.server import serve_http, serve_stdio

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.http is None and args.token:
        raise UsageError("--token protects the HTTP transport: use it with --http HOST:PORT")
    if args.http is None:
        asyncio.run(serve_stdio(args.file, runtime=args.runtime, state_dir=args.state_dir))
        return 0
    host, port = _host_port(args.http)

    def ready(url: str) -> None:
        note = " (clients must send the bearer token)" if token else ""
        sys.stderr.write(f"axo mcp: serving {url}{note}\n")
        sys.stderr.flush()

    asyncio.run(
        serve_http(
            args.file,
            host,
            port,
            token,
            runtime=args.runtime,
            on_ready=ready,
            state_dir=args.state_dir,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m axo.mcp.cli tools FILE`` / ``… serve FILE``."""
    parser = argparse.ArgumentParser(prog="axo")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["mcp", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
