"""What happens around a run rather than inside it: distilling memories at its end, and
pruning old runs by the workflow's retention setting."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from axo.errors import AxoError
from axo.eventlog import EventLog
from axo.llm.base import ChatMessage, ChatRequest, Usage
from axo.messages import AgentSpec, LLMCall
from axo.runtime.effects import EffectRunner
from axo.runtime.journal import stored_path
from axo.runtime.session import Session
from axo.workflow import Workflow


async def distill(
    workflow: Workflow,
    specs: tuple[AgentSpec, ...],
    sessions: dict[str, Session],
    effects: EffectRunner,
    count: Callable[[str, Usage], None],
) -> None:
    """At the end of a run, agents with ``memory: {distill: true}`` turn their session into
    a few durable facts (one LLM call each; duplicates merge in the fact store).

    The call is an LLM call of the run like any other: the policy's LLM hooks see it, the
    run's token budget applies, and ``count`` adds what it used to its agent's usage."""
    distillers = [a for a in workflow.distillers if a.id in sessions]
    if not distillers:
        return
    from axo.memory.facts import distill_prompt, parse_distilled

    by_id = {s.id: s for s in specs}
    record = effects.record
    for agent in distillers:
        session = sessions[agent.id].transcript()
        spec = by_id[agent.id]
        request = ChatRequest(
            model=spec.model,
            max_tokens=256,
            temperature=0.0,
            messages=(
                ChatMessage(role="system", content=f"You are {spec.name}."),
                ChatMessage(role="user", content=distill_prompt(session)),
            ),
        )
        if spec.function is not None:
            from axo.runtime.agent_actor import call_function

            try:
                response = call_function(spec.function, request)
            except AxoError as exc:
                record("distill_failed", agent.id, {"reason": str(exc)})
                continue
        else:
            call = LLMCall(
                corr=f"{agent.id}:distill",
                run_id=effects.run_id,
                agent=agent.id,
                provider=spec.provider,
                request=request,
                reply_to=None,
            )
            reply = await effects.llm(call)
            if reply.response is None:
                record("distill_failed", agent.id, {"reason": reply.error or reply.kind})
                continue
            response = reply.response
        count(agent.id, response.usage)
        facts = parse_distilled(response.content or "")
        for fact in facts:
            effects.memory.remember(fact, ("distilled",), agent=agent.id)
        record("distilled", agent.id, {"facts": len(facts), "tokens": response.usage.total_tokens})


def apply_retention(log: EventLog, state_dir: str, workflow: Workflow, *, keep: str) -> None:
    """Prune old runs (and their folders) by the workflow's ``run.retention`` setting: only
    runs of this workflow (its file's real path and its name) — a state directory may hold the
    runs of others, with settings of their own."""
    rule = workflow.config.run.retention
    if rule.keep_last is None and rule.older_than_days is None:
        return
    before = {r.run_id for r in log.runs()}
    log.prune(
        keep_last=rule.keep_last,
        older_than_s=(rule.older_than_days * 86_400 if rule.older_than_days else None),
        workflow=(stored_path(workflow.file), workflow.workflow_id),
    )
    for gone in before - {r.run_id for r in log.runs()} - {keep}:
        shutil.rmtree(os.path.join(state_dir, "runs", gone), ignore_errors=True)
