"""What happens around a run rather than inside it: distilling memories at its end, and
pruning old runs by the workflow's retention setting."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from axo.errors import AxoError
from axo.eventlog import EventLog
from axo.llm.base import ChatMessage, ChatRequest
from axo.llm.providers import ProviderSet
from axo.messages import AgentSpec
from axo.runtime.journal import stored_path
from axo.workflow import Workflow


async def distill(
    workflow: Workflow,
    specs: tuple[AgentSpec, ...],
    sessions: dict[str, list[ChatMessage]],
    providers: ProviderSet,
    memory: Any,
    record: Callable[[str, str, dict[str, Any]], None],
) -> None:
    """At the end of a run, agents with ``memory: {distill: true}`` turn their session into
    a few durable facts (one LLM call each; duplicates merge in the fact store)."""
    distillers = [a for a in workflow.distillers if sessions.get(a.id)]
    if not distillers:
        return
    from axo.memory.facts import distill_prompt, parse_distilled

    by_id = {s.id: s for s in specs}
    for agent in distillers:
        session = sessions[agent.id]
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
        try:
            if spec.function is not None:
                from axo.runtime.agent_actor import call_function

                response = call_function(spec.function, request)
            else:
                response = await providers.get(spec.provider).complete(request)
        except AxoError as exc:
            record("distill_failed", agent.id, {"reason": str(exc)})
            continue
        facts = parse_distilled(response.content or "")
        for fact in facts:
            memory.remember(fact, ("distilled",), agent=agent.id)
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
