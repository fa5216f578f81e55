"""Packing an agent's first request inside its context budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from axo.agent.context import estimate_messages, pack
from axo.llm.base import ChatMessage
from axo.messages import AgentSpec, Upstream


@settings(deadline=None, max_examples=200)
@given(
    budget=st.integers(200, 4000),
    input_chars=st.integers(0, 30_000),
    outputs=st.lists(st.integers(0, 12_000), max_size=8),
    prompt_chars=st.integers(0, 600),
)
def test_a_packed_request_never_exceeds_the_context_budget(
    budget: int, input_chars: int, outputs: list[int], prompt_chars: int
) -> None:
    spec = AgentSpec(
        id="join", name="Join", system_prompt="p" * prompt_chars, context_tokens=budget
    )
    upstream = tuple(
        Upstream(agent=f"w{i}", name=f"w{i}", output="word " * (n // 5))
        for i, n in enumerate(outputs)
    )
    messages, report = pack(spec, "in " * (input_chars // 3), upstream)
    if report is None:  # everything fit whole
        assert estimate_messages(messages) <= budget
        return
    # the floor: the identity (never cut) and the shortest user message there is
    floor = estimate_messages((messages[0], ChatMessage(role="user", content="(no input)")))
    if floor <= report.budget:
        assert report.estimate == estimate_messages(messages) <= report.budget, report
