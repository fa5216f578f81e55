"""axo's exceptions, split by who must act.

::

    AxoError
    ├── UserError                 the user must fix something; the CLI prints it and exits 2
    │   ├── ConfigError           one or more problems in an input file (workflow, domain, …)
    │   └── UsageError            a bad command line or API argument
    └── RuntimeFault              something went wrong while running; becomes an event + status
        ├── ProviderError         an LLM call failed (after retries, where retrying made sense)
        ├── BudgetExceeded        a token budget refused a request before it was sent
        ├── ToolDenied            a tool call was refused (allow-list, policy, hook)
        └── ToolFailed            a tool raised or its server died

Errors never log or print in their constructors; whoever catches them decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AxoError(Exception):
    """Root of every error axo raises on purpose."""


class UserError(AxoError):
    """A mistake the user must fix; printed as one message, exit code 2, no traceback."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in an input file.

    Attributes:
        file: the file's path as the user gave it.
        line: 1-based line number, or None when the problem has no place (missing file).
        path: JSON-path-like location, e.g. ``$.agents[2].depends_on[0]``.
        message: what is wrong.
        fix: how to fix it.
    """

    file: str
    line: int | None
    path: str
    message: str
    fix: str = ""

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.path}: {self.message}"
        return f"{text} — {self.fix}" if self.fix else text


class ConfigError(UserError):
    """One or more problems in an input file, all reported at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.problems) == 1:
            return "error: " + self.problems[0].render()
        lines = [f"{len(self.problems)} errors:"]
        lines += ["  " + p.render() for p in self.problems]
        return "\n".join(lines)


class UsageError(UserError):
    """A bad command-line or API argument."""


class RuntimeFault(AxoError):
    """A fault met while running; the runtime turns it into an event and a status."""


class ProviderError(RuntimeFault):
    """An LLM call failed.

    Attributes:
        retryable: whether trying again might succeed (connection error, 429, 5xx, timeout).
        status: the HTTP status, when there was one.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class BudgetExceeded(RuntimeFault):
    """A token budget refused a request before it was sent."""

    def __init__(self, budget: str, estimate: int, limit: int) -> None:
        self.budget = budget
        self.estimate = estimate
        self.limit = limit
        super().__init__(
            f"{budget} budget exceeded: request needs ~{estimate} tokens, limit is {limit}"
        )


class OutputInvalid(RuntimeFault):
    """An agent's final answer did not follow its ``output_schema``, even when asked again."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"the final answer does not follow output_schema: {problem}")


class NoAnswer(RuntimeFault):
    """A model gave no final answer: it kept calling tools where none were offered."""


class ToolDenied(RuntimeFault):
    """A tool call was refused by the allow-list, a policy or a hook."""


class ToolFailed(RuntimeFault):
    """A tool raised, timed out or its server died."""
