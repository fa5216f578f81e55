"""Agent memory tiers; the turn talks to them through ``MemoryPort``."""

from axo.memory.base import InMemoryFacts, MemoryPort

__all__ = ["InMemoryFacts", "MemoryPort"]
