"""Small MCP servers of our own, each a script run as its own process by the tests.

- ``counter.py``: stateful (a counter and the process id) over stdio, or over streamable HTTP
  with ``--http`` (then it records every request's ``Authorization`` header, see
  ``http_recorder``); ``refuse`` answers a JSON-RPC error with the code it is given,
  ``garble`` a line that is not JSON-RPC; with ``CLASH`` in its environment, ``peek.count``
  and ``peek_count`` (the same axo name); over stdio, ``BANNER`` in its environment is
  printed on stdout first;
- ``crasher.py``: ``crash`` ends the process with ``os._exit`` in the middle of the call;
- ``silent.py``: ``wait`` never answers;
- ``http_recorder.py``: an in-process streamable HTTP server (its own thread) that records the
  ``Authorization`` header of every request it receives.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def command(name: str, *args: str) -> dict[str, object]:
    """The ``mcp_servers:`` entry (as a dict) that starts ``<name>.py`` over stdio."""
    return {
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(HERE / f"{name}.py"), *args],
    }
