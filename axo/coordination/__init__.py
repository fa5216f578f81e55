"""Coordination primitives: an HTN planner and a capability auction, both vectorized with numpy.

- ``Planner`` decomposes tasks of a ``Domain`` (read from YAML with ``load_domain``) into a
  ``Plan``, or says why it cannot (``PlanFailure``, with ``Frontier`` tasks a coordinator can
  give new methods with ``Planner.add_method``).
- ``Auctioneer`` gives ``Task``s to ``Agent``s by capability, spare load and remaining budget.
"""

from axo.coordination.auction import (
    Agent,
    Auctioneer,
    AuctionResult,
    AuctionStatistics,
    Award,
    Task,
    Unassigned,
)
from axo.coordination.domain import (
    Atom,
    Call,
    CompoundTask,
    Domain,
    Method,
    Operator,
    Parameter,
    PlanningProblem,
    load_domain,
    load_problem,
    make_domain,
    make_problem,
    parse_domain,
    parse_method,
    parse_problem,
)
from axo.coordination.htn import (
    FailureReason,
    Frontier,
    Plan,
    PlanFailure,
    Planner,
    PlannerStatistics,
)

__all__ = [
    "Agent",
    "Atom",
    "AuctionResult",
    "AuctionStatistics",
    "Auctioneer",
    "Award",
    "Call",
    "CompoundTask",
    "Domain",
    "FailureReason",
    "Frontier",
    "Method",
    "Operator",
    "Parameter",
    "Plan",
    "PlanFailure",
    "Planner",
    "PlannerStatistics",
    "PlanningProblem",
    "Task",
    "Unassigned",
    "load_domain",
    "load_problem",
    "make_domain",
    "make_problem",
    "parse_domain",
    "parse_method",
    "parse_problem",
]
