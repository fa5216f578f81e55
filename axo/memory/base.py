"""The interface the turn and the memory tools use, and a simple in-memory implementation.

``remember`` stores a fact with tags; ``recall`` returns the facts that best match a query.
The durable tiers (checkpoint, long-term facts, vector recall) implement the same protocol.
"""

from __future__ import annotations

import re
import time
from typing import Protocol

import msgspec


class Fact(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    tags: tuple[str, ...] = ()
    agent: str = ""
    at: float = 0.0


class MemoryPort(Protocol):
    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact: ...

    def recall(self, query: str, k: int = 5) -> list[Fact]: ...


_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class InMemoryFacts:
    """Facts in a list; recall ranks by shared words (and tags), newest first on ties."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []

    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact:
        for f in self.facts:
            if f.text == text:
                return f
        fact = Fact(text=text, tags=tuple(tags), agent=agent, at=time.time())
        self.facts.append(fact)
        return fact

    def recall(self, query: str, k: int = 5) -> list[Fact]:
        q = words(query)
        scored = []
        for i, f in enumerate(self.facts):
            score = len(q & words(f.text)) + 2 * len(q & set(f.tags))
            if score:
                scored.append((score, i, f))
        scored.sort(key=lambda t: (-t[0], -t[1]))
        return [f for _, _, f in scored[:k]]

    def statistics(self) -> dict[str, int]:
        return {"facts": len(self.facts)}
