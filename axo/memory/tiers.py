"""Open the memory a workflow's agents share, from their ``memory:`` settings.

Long-term facts live in ``<state_dir>/memory/<workflow>/facts.msgpack`` (shared by every run
of that workflow); with ``vector: true`` they are also embedded into a vector index beside it
(a 64-d static model by default, all-MiniLM-L6-v2 with ``embedder: minilm`` — both shipped in
packages, never a cloud key). The index follows the fact store (``Combined``): the same
redacted texts, the same duplicate merging, the same capacity and evictions. Without a state
directory, facts live in memory for the run.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from axo.memory.base import Fact, InMemoryFacts
from axo.workflow import Workflow

if TYPE_CHECKING:
    from axo.memory.facts import FactStore
    from axo.memory.vector import VectorMemory


class Combined:
    """Facts store plus vector index: the fact store decides, the vector index follows.

    ``remember`` goes to the fact store first — it redacts secrets, merges duplicates and
    evicts past its capacity — and the vector index then holds exactly the fact store's facts:
    the stored (redacted) text of the new or merged fact is embedded, evicted facts leave.
    Each vector save also reconciles the index, under its lock, with the facts file as saved,
    so runs sharing the folder leave both tiers with the same facts. ``recall`` merges both
    rankings.
    """

    def __init__(self, facts: FactStore, vectors: VectorMemory) -> None:
        self.facts, self.vectors = facts, vectors
        vectors.follow = facts.saved_facts
        vectors.index.capacity = facts.capacity
        # an index written before it followed the facts (or by a run without vectors)
        if (vectors.sync(facts.facts()) or vectors.cleaned) and vectors.autosave:
            vectors.save()

    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact:
        fact = self.facts.remember(text, tags, agent=agent)
        self.vectors.index.capacity = self.facts.capacity
        self.vectors.sync(self.facts.facts(), add_missing=False)  # evictions, merges
        self.vectors.store(fact)
        if self.vectors.autosave:
            if not self.facts.autosave:
                self.facts.save()  # the vector index follows the facts file
            self.vectors.save()
        return fact

    def recall(self, query: str, k: int = 5) -> list[Fact]:
        seen: set[str] = set()
        out: list[Fact] = []
        by_vector, by_words = self.vectors.recall(query, k), self.facts.recall(query, k)
        for pair in zip(by_vector, by_words, strict=False):
            for f in pair:
                if f.text not in seen:
                    seen.add(f.text)
                    out.append(f)
        for f in [*by_vector, *by_words]:
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
    from axo.memory.embedders import MiniLMEmbedder, StaticModelEmbedder
    from axo.memory.vector import VectorIndex, VectorMemory

    minilm = any(a.memory.embedder == "minilm" for a in workflow.agents if a.memory.vector)
    embedder: Any = MiniLMEmbedder() if minilm else StaticModelEmbedder()
    index = VectorIndex(
        os.path.join(folder, "vectors"),
        dim=embedder.dim,
        model=embedder.name,
        capacity=facts.capacity,
    )
    vectors = VectorMemory(index, embedder, autosave=True, redact=workflow.redact)
    return Combined(facts, vectors)
