"""Pack an agent's context — identity, run input, upstream outputs — inside a token budget.

This module knows how to build the messages of an agent's first request and how to estimate
tokens conservatively. It records what was included, truncated or dropped; it does no I/O.
"""

from __future__ import annotations

import math

import msgspec

from axo.llm.base import ChatMessage
from axo.messages import AgentSpec, Upstream

CHARS_PER_TOKEN = 3.0  # conservative: real tokenizers average ~4 characters per token
MESSAGE_OVERHEAD = 4  # role markers and separators per message


def estimate_tokens(text: str | None) -> int:
    """A conservative token count for ``text`` (over-estimates rather than under)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_messages(messages: tuple[ChatMessage, ...]) -> int:
    total = 0
    for m in messages:
        total += MESSAGE_OVERHEAD + estimate_tokens(m.content)
        for call in m.tool_calls:
            total += estimate_tokens(call.name) + estimate_tokens(call.arguments)
    return total


class PackReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the pack did: parts included whole, truncated (with kept/total tokens), dropped."""

    budget: int
    estimate: int
    included: tuple[str, ...] = ()
    truncated: tuple[tuple[str, int, int], ...] = ()
    dropped: tuple[str, ...] = ()


def identity(spec: AgentSpec) -> str:
    prompt = spec.system_prompt.strip()
    return f"You are {spec.name}.\n{prompt}" if prompt else f"You are {spec.name}."


_CUT_MARK = " […truncated]"
_JOIN = "\n\n"  # between the parts of the user message


def _cut(text: str, tokens: int) -> str:
    """``text`` cut to fit ``tokens``, the mark that says so included ("" when not even a
    word and the mark fit)."""
    room = int(tokens * CHARS_PER_TOKEN)
    if len(text) <= room:
        return text
    keep = room - len(_CUT_MARK)
    return text[:keep].rstrip() + _CUT_MARK if keep > 0 else ""


def pack(
    spec: AgentSpec, run_input: str, upstream: tuple[Upstream, ...], *, reserve: int = 0
) -> tuple[tuple[ChatMessage, ...], PackReport | None]:
    """Build the system and user messages for an agent's first request.

    The identity and the run's input are kept whole where they fit; upstream outputs share
    what remains equally (a short output gives its unused share to the others). ``reserve``
    tokens are kept free for the completion and tools. The report says what was cut; it is
    None when everything fit whole — the common case, which every activation pays for, so it
    builds nothing it does not need.
    """
    budget = max(64, spec.context_tokens - reserve)
    system = identity(spec)
    user = render_input(run_input, upstream)
    if estimate_tokens(system) + estimate_tokens(user) + 2 * MESSAGE_OVERHEAD <= budget:
        return (
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        ), None
    # the joins between the user message's parts (input, heading, one per upstream output)
    joins = estimate_tokens(_JOIN * (len(upstream) + 1)) if upstream else 0
    used = estimate_tokens(system) + 2 * MESSAGE_OVERHEAD + joins
    included: list[str] = ["identity"]
    truncated: list[tuple[str, int, int]] = []
    dropped: list[str] = []

    input_text = run_input
    header = "## Task input\n" if upstream else ""
    need = estimate_tokens(header + input_text)
    room = budget - used
    if need > room * (0.5 if upstream else 1.0):
        share = max(0, int(room * (0.5 if upstream else 1.0)) - estimate_tokens(header))
        truncated.append(("input", share, need))
        input_text = _cut(input_text, share)
    else:
        included.append("input")
    parts = [header + input_text] if input_text else []
    used += estimate_tokens(parts[0]) if parts else 0

    if upstream:
        heading = "## Outputs from the agents you depend on"  # shown with an output only
        outputs: list[str] = []
        used += estimate_tokens(heading)
        room = budget - used
        heads = [f"### {_label(u)}\n" for u in upstream]
        sizes = [estimate_tokens(u.output) for u in upstream]
        head_cost = sum(estimate_tokens(h) for h in heads)
        avail = max(0, room - head_cost)
        grants = _fair_shares(sizes, avail)
        left = room - sum(grants)  # for the headings: all of them, unless room is that short
        for u, h, size, grant in zip(upstream, heads, sizes, grants, strict=True):
            label = f"upstream:{u.agent}"
            if (grant <= 0 and size > 0) or estimate_tokens(h) > left:
                dropped.append(label)
                continue
            left -= estimate_tokens(h)
            if grant < size:
                kept = _cut(u.output, grant)
                if not kept:  # its share cannot hold even the mark
                    dropped.append(label)
                    continue
                truncated.append((label, grant, size))
                outputs.append(h + kept)
            else:
                included.append(label)
                outputs.append(h + u.output)
        if outputs:
            parts += [heading, *outputs]
    user = _JOIN.join(parts) if parts else "(no input)"
    messages = (ChatMessage(role="system", content=system), ChatMessage(role="user", content=user))
    report = PackReport(
        budget=budget,
        estimate=estimate_messages(messages),
        included=tuple(included),
        truncated=tuple(truncated),
        dropped=tuple(dropped),
    )
    return messages, report


def render_input(run_input: str, upstream: tuple[Upstream, ...]) -> str:
    """The run's input and the outputs of the agents depended on, as one prompt text."""
    if not upstream:
        return run_input or "(no input)"
    # _label inlined: this runs for every upstream output of every activation
    outputs = "\n\n".join(
        [
            f"### {u.name}\n{u.output}"
            if u.name == u.agent
            else f"### {u.name} ({u.agent})\n{u.output}"
            for u in upstream
        ]
    )
    return f"## Task input\n{run_input}\n\n## Outputs from the agents you depend on\n\n{outputs}"


def _label(u: Upstream) -> str:
    return u.name if u.name == u.agent else f"{u.name} ({u.agent})"


def _fair_shares(sizes: list[int], avail: int) -> list[int]:
    """Water-filling: each part gets min(size, equal share); leftovers go to the larger ones."""
    grants = [0] * len(sizes)
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    left = avail
    for k, i in enumerate(order):
        share = left // (len(sizes) - k)
        grants[i] = min(sizes[i], share)
        left -= grants[i]
    return grants
