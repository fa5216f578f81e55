"""Hooks and approvals around tool and LLM calls — and they fail closed.

Hooks are callables (sync or async) the embedding application gives ``axo.run``:

- ``pre_tool(call) -> True | False | dict | Decision``: allow, deny, or allow with new
  arguments; ``post_tool(call, outcome) -> ToolOutcome | None`` may rewrite a result;
- ``pre_llm(agent, request) -> True | False | ChatRequest | Decision`` and
  ``post_llm(agent, response) -> ChatResponse | None`` do the same for model calls.

Anything else a pre-hook returns (``None`` included), an exception, or no answer within the
hook timeout **denies** (the Rust runtime axo learns from allowed in those cases). A post-hook
that fails withholds the result.

Approvals: tools listed in ``require_approval`` run only under a grant. Grants are kept in an
``ApprovalStore`` on disk — ``once``, ``for N minutes``, ``for this run``, ``until revoked`` —
and when none applies the ``approver`` callable is asked; its failure or silence denies.
Every decision is returned with its reason so the host can record it as an event.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

Action = Literal["allow", "deny", "modify"]
Scope = Literal["once", "minutes", "run", "forever"]


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    reason: str = ""
    value: Any = None  # new arguments (tools) or a new request (LLM) when action == modify

    @classmethod
    def allow(cls, reason: str = "") -> Decision:
        return cls(action="allow", reason=reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(action="deny", reason=reason)

    @classmethod
    def modify(cls, value: Any, reason: str = "") -> Decision:
        return cls(action="modify", value=value, reason=reason)


@dataclass(frozen=True)
class CallInfo:
    """What a tool hook or approver sees of a call."""

    run_id: str
    agent: str
    tool: str
    arguments: dict[str, Any]


class Grant(msgspec.Struct, kw_only=True):
    tool: str
    agent: str = "*"
    scope: Scope = "once"
    expires_at: float | None = None
    run_id: str | None = None
    granted_at: float = 0.0

    def covers(self, tool: str, agent: str, run_id: str, now: float) -> bool:
        if self.tool != tool or self.agent not in ("*", agent):
            return False
        if self.scope == "minutes":
            return self.expires_at is not None and now < self.expires_at
        if self.scope == "run":
            return self.run_id == run_id
        return True


@dataclass(frozen=True)
class Approve:
    """What an approver returns to allow a call: ``Approve.once()``, ``Approve.minutes(30)``,
    ``Approve.run()``, ``Approve.forever()``."""

    scope: Scope
    minutes: float = 0.0

    @classmethod
    def once(cls) -> Approve:
        return cls("once")

    @classmethod
    def for_minutes(cls, minutes: float) -> Approve:
        return cls("minutes", minutes)

    @classmethod
    def run(cls) -> Approve:
        return cls("run")

    @classmethod
    def forever(cls) -> Approve:
        return cls("forever")


_grants = msgspec.json.Encoder()
_decode_grants = msgspec.json.Decoder(list[Grant])


class ApprovalStore:
    """Grants on disk (JSON, replaced atomically), so they survive restarts.

    A ``once`` grant is consumed by the call it allows.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self.grants: list[Grant] = self._load()

    def _load(self) -> list[Grant]:
        if self.path is None or not self.path.exists():
            return []
        try:
            return _decode_grants.decode(self.path.read_bytes())
        except (OSError, msgspec.DecodeError):
            return []  # an unreadable store grants nothing: fail closed

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_grants.encode(self.grants))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def grant(
        self, tool: str, approval: Approve, *, agent: str = "*", run_id: str | None = None
    ) -> Grant:
        now = self._clock()
        g = Grant(
            tool=tool,
            agent=agent,
            scope=approval.scope,
            granted_at=now,
            run_id=run_id if approval.scope == "run" else None,
            expires_at=now + approval.minutes * 60 if approval.scope == "minutes" else None,
        )
        self.grants.append(g)
        self._save()
        return g

    def revoke(self, tool: str, agent: str = "*") -> int:
        before = len(self.grants)
        self.grants = [g for g in self.grants if not (g.tool == tool and agent in ("*", g.agent))]
        self._save()
        return before - len(self.grants)

    def use(self, tool: str, agent: str, run_id: str) -> Grant | None:
        """The grant covering this call, consuming it when it is ``once``."""
        now = self._clock()
        for g in self.grants:
            if g.covers(tool, agent, run_id, now):
                if g.scope == "once":
                    self.grants.remove(g)
                    self._save()
                return g
        return None

    def statistics(self) -> dict[str, int]:
        return {"grants": len(self.grants)}


@dataclass
class Policy:
    """Hooks, approvals and the time each may take before it counts as a denial."""

    pre_tool: Callable[..., Any] | None = None
    post_tool: Callable[..., Any] | None = None
    pre_llm: Callable[..., Any] | None = None
    post_llm: Callable[..., Any] | None = None
    require_approval: frozenset[str] = frozenset()
    approver: Callable[..., Any] | None = None
    approvals: ApprovalStore = field(default_factory=ApprovalStore)
    hook_timeout: float = 5.0
    approval_timeout: float = 300.0


async def call_hook(fn: Callable[..., Any], *args: Any, timeout: float) -> tuple[Any, str]:
    """Run a hook with a bound; return (value, "") or (None, why it failed)."""
    try:
        if inspect.iscoroutinefunction(fn):
            value = await asyncio.wait_for(fn(*args), timeout)
        else:
            value = await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, timeout)
    except TimeoutError:
        return None, f"hook {_name(fn)} did not answer within {timeout:g}s"
    except Exception as exc:
        return None, f"hook {_name(fn)} failed: {type(exc).__name__}: {exc}"
    return value, ""


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def as_decision(value: Any, failure: str, *, modify_type: type | tuple[type, ...]) -> Decision:
    """Interpret a pre-hook's answer; anything unclear denies."""
    if failure:
        return Decision.deny(failure)
    if isinstance(value, Decision):
        return value
    if value is True:
        return Decision.allow()
    if value is False:
        return Decision.deny("denied by hook")
    if isinstance(value, modify_type):
        return Decision.modify(value)
    return Decision.deny(
        f"hook returned {type(value).__name__}, which is neither an allow nor a deny"
    )


async def check_tool(policy: Policy, call: CallInfo) -> Decision:
    """Pre-hook, then approval; the first that does not allow decides."""
    decision = Decision.allow()
    if policy.pre_tool is not None:
        value, failure = await call_hook(policy.pre_tool, call, timeout=policy.hook_timeout)
        decision = as_decision(value, failure, modify_type=dict)
        if decision.action == "deny":
            return decision
    if needs_approval(policy.require_approval, call.tool):
        approval = await _approve(policy, call)
        if approval.action == "deny":
            return approval
    return decision


def needs_approval(entries: frozenset[str], tool: str) -> bool:
    """Whether ``tool`` is listed: by its name, or as ``mcp__<server>`` for each tool of that
    MCP server (as in an allow-list)."""
    if tool in entries:
        return True
    # a server's name has no '__' in it; a tool's may
    return tool.startswith("mcp__") and "mcp__" + tool[5:].split("__", 1)[0] in entries


def unknown_approvals(entries: frozenset[str], tools: set[str], servers: set[str]) -> list[str]:
    """The entries of ``require_approval`` that name neither a tool nor an MCP server: a
    misspelt entry would otherwise require nothing."""
    return sorted(
        e for e in entries if e not in tools and not (e.startswith("mcp__") and e[5:] in servers)
    )


async def _approve(policy: Policy, call: CallInfo) -> Decision:
    grant = policy.approvals.use(call.tool, call.agent, call.run_id)
    if grant is not None:
        return Decision.allow(f"approved ({grant.scope})")
    if policy.approver is None:
        return Decision.deny(f"'{call.tool}' needs approval and no approver is configured")
    value, failure = await call_hook(policy.approver, call, timeout=policy.approval_timeout)
    if failure:
        return Decision.deny(failure.replace("hook", "approver", 1))
    if isinstance(value, Approve):
        if value.scope != "once":
            policy.approvals.grant(call.tool, value, agent=call.agent, run_id=call.run_id)
        return Decision.allow(f"approved ({value.scope})")
    if value is True:
        return Decision.allow("approved (once)")
    return Decision.deny(
        "approval refused"
        if value is False
        else f"approver returned {type(value).__name__}; only Approve/True allow"
    )
