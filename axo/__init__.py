"""axo — an actor-model runtime for multi-agent LLM workflows."""

from axo.api import run, run_async
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
