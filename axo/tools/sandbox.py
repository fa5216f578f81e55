"""Run untrusted Python in a subprocess: time limit, memory limit, workspace, no secrets.

The child runs ``python -I`` (isolated: no user site, no PYTHON* variables) in its own
session with the workspace as its working directory, an environment reduced to a safe few
variables (no API keys or tokens can leak in), ``RLIMIT_AS`` for memory and ``RLIMIT_CPU``
as a backstop; the wall-clock limit kills its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

SAFE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class PythonResult:
    stdout: str
    stderr: str
    exit_code: int | None
    killed: str | None = None  # "time" or "memory" when a limit stopped it

    def render(self) -> str:
        parts = []
        if self.killed == "time":
            parts.append("killed: the time limit was reached")
        elif self.killed == "memory":
            parts.append("killed: the memory limit was reached")
        else:
            parts.append(f"exit code {self.exit_code}")
        if self.stdout:
            parts.append(f"stdout:\n{self.stdout}")
        if self.stderr:
            parts.append(f"stderr:\n{self.stderr}")
        return "\n".join(parts)


def _limits(memory_bytes: int, cpu_seconds: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


async def run_python(
    code: str,
    *,
    workspace: str,
    timeout: float = 10.0,
    memory_mb: int = 256,
    output_limit: int = 20_000,
) -> PythonResult:
    """Run ``code`` and return what it printed; never raises for the code's own failures."""
    env = {k: os.environ[k] for k in SAFE_ENV if k in os.environ}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        code,
        cwd=workspace,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limits(memory_mb * 1024 * 1024, max(1, int(timeout) + 1)),
    )
    killed = None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        killed = "time"
        _kill_group(proc.pid)
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
    stderr = err.decode(errors="replace")
    if killed is None and proc.returncode != 0 and "MemoryError" in stderr:
        killed = "memory"
    return PythonResult(
        stdout=out.decode(errors="replace")[:output_limit],
        stderr=stderr[-output_limit:],
        exit_code=proc.returncode,
        killed=killed,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
