"""The Python entry points: ``run`` and ``run_async``."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from typing import Any

import uvloop

from axo.errors import UsageError
from axo.llm.base import Provider
from axo.result import RunResult
from axo.runtime.host import EventHandler, Host
from axo.runtime.system import MODES, Mode
from axo.workflow import Workflow, load_workflow


async def run_async(
    workflow: Workflow | str | os.PathLike[str],
    input: str = "",
    *,
    runtime: Mode = "local",
    providers: dict[str, Provider] | None = None,
    on_event: EventHandler | None = None,
    timeout: float | None = None,
    workflow_id: str | None = None,
    admin_port: int | None = None,
    **options: Any,
) -> RunResult:
    """Run a workflow inside an already running event loop. See ``run``."""
    if not isinstance(workflow, Workflow):
        workflow = load_workflow(workflow, workflow_id)
    elif workflow_id is not None and workflow_id != workflow.workflow_id:
        workflow = workflow.select(workflow_id)  # another workflow of the same file
    if runtime not in MODES:
        raise UsageError(f"unknown runtime '{runtime}'; use one of: {', '.join(MODES)}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise UsageError(f"timeout must be a positive number of seconds, not {timeout!r}")
    timeout = timeout if timeout is not None else workflow.config.run.timeout
    handle_signals = bool(options.pop("handle_signals", False))
    signals = ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")) if handle_signals else ()
    with Host(runtime, admin_port=admin_port) as host:
        loop = asyncio.get_running_loop()
        for sig, name in signals:
            loop.add_signal_handler(sig, host.request_stop, f"{name} received")
        try:
            return await host.run(
                workflow, input, providers=providers, on_event=on_event, timeout=timeout, **options
            )
        finally:
            for sig, _ in signals:
                loop.remove_signal_handler(sig)


def run(
    workflow: Workflow | str | os.PathLike[str],
    input: str = "",
    *,
    runtime: Mode = "local",
    providers: dict[str, Provider] | None = None,
    on_event: EventHandler | None = None,
    timeout: float | None = None,
    workflow_id: str | None = None,
    admin_port: int | None = None,
    **options: Any,
) -> RunResult:
    """Run a workflow to the end and return its result.

    Args:
        workflow: a ``Workflow`` from ``load_workflow``, or a path to a workflow file.
        input: the run's input, given to the entry agents.
        runtime: ``local`` (one process) or ``multiproc`` (one process per agent).
        providers: provider objects by name, replacing those the file configures.
        on_event: called with each run event and the run's tracker (for progress views).
        timeout: seconds before the run is cancelled (its result says so).
        workflow_id: which named workflow of the file to run.
        options: ``tools`` (extra tools: ``@tool`` functions or plain typed functions),
            ``policy`` (hooks and approvals, ``axo.Policy``), ``workspace`` (the folder
            file tools and ``run_python`` are confined to), ``memory`` (a MemoryPort),
            ``state_dir`` (make the run durable: event log and checkpoints there),
            ``resume`` (a run id in that state directory to continue), ``handle_signals``
            (SIGINT/SIGTERM stop the run gracefully; it can be resumed).

    Returns:
        The ``RunResult``; an agent's failure is a status in it, not an exception.

    Raises:
        ConfigError, UsageError: bad input, before anything runs.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise UsageError(
            "axo.run() was called inside a running event loop; use 'await axo.run_async(...)' there"
        )
    return uvloop.run(
        run_async(
            workflow,
            input,
            runtime=runtime,
            providers=providers,
            on_event=on_event,
            timeout=timeout,
            workflow_id=workflow_id,
            admin_port=admin_port,
            **options,
        )
    )
