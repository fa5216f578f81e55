"""Hooks and approvals fail closed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from axo.tools.policy import (
    ApprovalStore,
    Approve,
    CallInfo,
    Decision,
    Policy,
    check_tool,
)

CALL = CallInfo(run_id="run1", agent="a", tool="write_file", arguments={"path": "x"})


def decide(policy: Policy, call: CallInfo = CALL) -> Decision:
    return asyncio.run(check_tool(policy, call))


def test_a_hook_that_times_out_denies() -> None:
    async def never(call: CallInfo) -> bool:
        await asyncio.Event().wait()  # never set: the hook never answers
        return True

    d = decide(Policy(pre_tool=never, hook_timeout=0.2))
    assert d.action == "deny" and "did not answer within 0.2s" in d.reason


def test_a_hook_that_raises_denies() -> None:
    def boom(call: CallInfo) -> bool:
        raise RuntimeError("broken hook")

    d = decide(Policy(pre_tool=boom))
    assert d.action == "deny" and "broken hook" in d.reason


def test_a_hook_that_cannot_decide_denies() -> None:
    d = decide(Policy(pre_tool=lambda call: None))
    assert d.action == "deny" and "neither an allow nor a deny" in d.reason


def test_a_hook_can_allow_deny_or_modify() -> None:
    assert decide(Policy(pre_tool=lambda c: True)).action == "allow"
    assert decide(Policy(pre_tool=lambda c: False)).action == "deny"
    d = decide(Policy(pre_tool=lambda c: {"path": "safe.txt"}))
    assert d.action == "modify" and d.value == {"path": "safe.txt"}


def test_a_tool_needing_approval_without_an_approver_is_denied() -> None:
    d = decide(Policy(require_approval=frozenset({"write_file"})))
    assert d.action == "deny" and "no approver" in d.reason


def test_approval_once_is_asked_every_time(tmp_path: Path) -> None:
    asked: list[CallInfo] = []

    def approver(call: CallInfo) -> Any:
        asked.append(call)
        return Approve.once()

    policy = Policy(
        require_approval=frozenset({"write_file"}),
        approver=approver,
        approvals=ApprovalStore(tmp_path / "grants.json"),
    )
    assert decide(policy).action == "allow" and decide(policy).action == "allow"
    assert len(asked) == 2


def test_approval_for_this_run_covers_the_run_only(tmp_path: Path) -> None:
    asked: list[str] = []

    def approver(call: CallInfo) -> Any:
        asked.append(call.run_id)
        return Approve.run()

    policy = Policy(
        require_approval=frozenset({"write_file"}),
        approver=approver,
        approvals=ApprovalStore(tmp_path / "g.json"),
    )
    decide(policy)
    decide(policy)
    decide(policy, CallInfo(run_id="run2", agent="a", tool="write_file", arguments={}))
    assert asked == ["run1", "run2"]


def test_approval_for_minutes_expires_on_the_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    store = ApprovalStore(tmp_path / "g.json", clock=lambda: now[0])
    asked: list[int] = []

    def approver(call: CallInfo) -> Any:
        asked.append(1)
        return Approve.for_minutes(10)

    policy = Policy(require_approval=frozenset({"write_file"}), approver=approver, approvals=store)
    decide(policy)
    now[0] += 9 * 60
    decide(policy)
    now[0] += 2 * 60
    decide(policy)
    assert len(asked) == 2


def test_grants_until_revoked_survive_a_restart_and_can_be_revoked(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    ApprovalStore(path).grant("write_file", Approve.forever(), agent="a")
    policy = Policy(require_approval=frozenset({"write_file"}), approvals=ApprovalStore(path))
    assert decide(policy).action == "allow"
    assert ApprovalStore(path).revoke("write_file", "a") == 1
    policy = Policy(require_approval=frozenset({"write_file"}), approvals=ApprovalStore(path))
    assert decide(policy).action == "deny"


def test_an_approver_that_times_out_denies(tmp_path: Path) -> None:
    async def slow(call: CallInfo) -> Any:
        await asyncio.Event().wait()

    policy = Policy(require_approval=frozenset({"write_file"}), approver=slow, approval_timeout=0.2)
    d = decide(policy)
    assert d.action == "deny" and "approver" in d.reason


def test_a_corrupt_grant_store_grants_nothing(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    path.write_text("{not json")
    policy = Policy(require_approval=frozenset({"write_file"}), approvals=ApprovalStore(path))
    assert decide(policy).action == "deny"


def test_an_mcp_server_listed_for_approval_covers_each_of_its_tools() -> None:
    policy = Policy(require_approval=frozenset({"mcp__files"}))
    for tool in ("mcp__files__write", "mcp__files__a__b"):
        call = CallInfo(run_id="r", agent="a", tool=tool, arguments={})
        d = decide(policy, call)
        assert d.action == "deny" and "needs approval" in d.reason, tool
    other = CallInfo(run_id="r", agent="a", tool="mcp__filesystem__write", arguments={})
    assert decide(policy, other).action == "allow"


def test_an_approval_entry_that_names_no_tool_stops_the_run(tmp_path: Path) -> None:
    import axo
    from axo.errors import UsageError
    from axo.testing import FakeLLM
    from tests.helpers import fake_workflow

    policy = Policy(require_approval=frozenset({"write_fiel", "mcp__nowhere"}))
    with FakeLLM(script=[]) as fake, pytest.raises(UsageError) as info:
        axo.run(fake_workflow(fake, "  - {id: a}\n"), "x", policy=policy)
    assert str(info.value) == "require_approval names no tool: mcp__nowhere, write_fiel"
