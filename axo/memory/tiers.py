"""Open the memory a workflow's agents share, from their ``memory:`` settings.

Long-term facts live in ``<state_dir>/memory/<workflow>/facts.msgpack`` (shared by every run
of that workflow); with ``vector: true`` they are also embedded into a vector index beside it
(a 64-d static model by default, all-MiniLM-L6-v2 with ``embedder: minilm`` — both shipped in
packages, never a cloud key). Without a state directory, facts live in memory for the run.
"""

from __future__ import annotations

import os
import re
from typing import Any

from axo.memory.base import Fact, InMemoryFacts, MemoryPort
from axo.workflow import Workflow


class Combined:
    """Facts store plus vector index: remember writes both, recall merges both rankings."""

    def __init__(self, facts: MemoryPort, vectors: MemoryPort) -> None:
        self.facts, self.vectors = facts, vectors

    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact:
        self.vectors.remember(text, tags, agent=agent)
        return self.facts.remember(text, tags, agent=agent)

    def recall(self, query: str, k: int = 5) -> list[Fact]:
        seen: set[str] = set()
        out: list[Fact] = []
        for pair in zip(self.vectors.recall(query, k), self.facts.recall(query, k), strict=False):
            for f in pair:
                if f.text not in seen:
                    seen.add(f.text)
                    out.append(f)
        for f in [*self.vectors.recall(query, k), *self.facts.recall(query, k)]:
            if f.text not in seen:
                seen.add(f.text)
                out.append(f)
        return out[:k]

    def save(self) -> None:
        for part in (self.facts, self.vectors):
            save = getattr(part, "save", None)
            if save is not None:
                save()


def memory_name(workflow: Workflow) -> str:
    base = workflow.config.name or os.path.splitext(os.path.basename(workflow.file))[0]
    if workflow.workflow_id:
        base = f"{base}-{workflow.workflow_id}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base) or "workflow"


def open_memory(workflow: Workflow, state_dir: str | None) -> Any:
    """The memory port for a run of ``workflow`` (in-memory when nothing asks for more)."""
    if state_dir is None:
        return InMemoryFacts()
    wants_facts = any(a.memory.long_term for a in workflow.agents)
    wants_vectors = any(a.memory.vector for a in workflow.agents)
    if not (wants_facts or wants_vectors):
        return InMemoryFacts()
    from axo.memory.facts import FactStore

    folder = os.path.join(state_dir, "memory", memory_name(workflow))
    os.makedirs(folder, exist_ok=True)
    facts = FactStore(os.path.join(folder, "facts.msgpack"), redact=workflow.redact)
    if not wants_vectors:
        return facts
    from axo.memory.vector import MiniLMEmbedder, StaticModelEmbedder, VectorIndex, VectorMemory

    minilm = any(a.memory.embedder == "minilm" for a in workflow.agents if a.memory.vector)
    embedder: Any = MiniLMEmbedder() if minilm else StaticModelEmbedder()
    index = VectorIndex(os.path.join(folder, "vectors"), dim=embedder.dim, model=embedder.name)
    return Combined(facts, VectorMemory(index, embedder, autosave=True))
