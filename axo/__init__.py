"""axo — an actor-model runtime for multi-agent LLM workflows."""

from typing import Any

from axo.errors import (
    AxoError,
    BudgetExceeded,
    ConfigError,
    ProviderError,
    RuntimeFault,
    ToolDenied,
    ToolFailed,
    UsageError,
    UserError,
)
from axo.result import AgentResult, RunResult
from axo.workflow import Workflow, load_file, load_workflow

__all__ = [
    "AgentResult",
    "AxoError",
    "BudgetExceeded",
    "ConfigError",
    "ProviderError",
    "RunResult",
    "RuntimeFault",
    "ToolDenied",
    "ToolFailed",
    "UsageError",
    "UserError",
    "Workflow",
    "load_file",
    "load_workflow",
    "run",
    "run_async",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # the runtime (Thespian, httpx, SQLite…) is imported when a run is asked for, so that
    # commands that only read a workflow start fast
    if name in ("run", "run_async"):
        from axo import api

        return getattr(api, name)
    raise AttributeError(f"module 'axo' has no attribute {name!r}")
