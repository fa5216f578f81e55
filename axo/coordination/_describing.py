"""Turning a grounding's ids back into names: ground tasks, facts, states and conditions.

Only failure messages and frontiers read these (and plans, through ``Describer.objects``), so
nothing here is on the search's path: it decodes ids one at a time from ``Space`` and works a
fact's story out again from the domain when asked. It knows the id spaces and the layout of a
state (``_assembly``: bit ``i`` for slot ``i`` holding, ``n + i`` for it not holding, ``2n`` for
FALSE), not how a grounding is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from axo.coordination._numbering import IntArray, Objects, Space
from axo.coordination.domain import Atom, Call, Operator, PlanningProblem


@dataclass
class Describer:
    """Turns ids back into names, for plans, frontiers and failure messages."""

    objects: Objects
    facts: Space
    tasks: Space
    task_keys: IntArray  # the key of each ground task
    slot_ids: IntArray  # the fact id of each slot
    problem: PlanningProblem
    static_predicates: frozenset[str]
    operators: Mapping[str, Operator]

    @cached_property
    def _static(self) -> frozenset[Atom]:
        return frozenset(a for a in self.problem.init if a.predicate in self.static_predicates)

    def task(self, gid: int) -> Call:
        name, args = self.tasks.decode(int(self.task_keys[gid]))
        return Call(name, tuple(self.objects.names[a] for a in args))

    def fact(self, slot: int) -> Atom:
        name, args = self.facts.decode(int(self.slot_ids[slot]))
        return Atom(name, tuple(self.objects.names[a] for a in args))

    def state(self, state: int) -> frozenset[Atom]:
        n = len(self.slot_ids)
        return self._static | {self.fact(s) for s in bits(state & ((1 << n) - 1))}

    def never(self, call: Call) -> list[str]:
        """Why the operator grounding ``call`` can never apply (its mask needs FALSE): the
        static facts it needs or forbids that say no, and the facts it needs that can never
        hold. Worked out again from the domain: only a failure message pays for it."""
        op = self.operators[call.name]
        binding = {p.name: a for p, a in zip(op.parameters, call.args, strict=True)}

        def ground(atom: Atom) -> Atom:
            return Atom(atom.predicate, tuple(binding.get(a, a) for a in atom.args))

        static, init, out = self.static_predicates, self.problem.init, []
        for fact in map(ground, op.preconditions):
            if fact.predicate in static:
                if fact not in init:
                    out.append(f"{fact}, a static fact that never holds")
            elif not self._has_slot(fact):
                out.append(f"{fact}, a fact that can never hold")
        for fact in map(ground, op.negative_preconditions):
            if fact.predicate in static and fact in init:
                out.append(f"not {fact}, a static fact that always holds")
        return out

    def _has_slot(self, fact: Atom) -> bool:
        dense = self.facts.id_of(fact.predicate, self.objects.ids(fact.args))
        at = int(np.searchsorted(self.slot_ids, dense))
        return at < len(self.slot_ids) and int(self.slot_ids[at]) == dense

    def condition(self, bit: int) -> str:
        """A bit of a mask as text."""
        n = len(self.slot_ids)
        if bit >= 2 * n:
            return "a fact that can never hold"
        return f"not {self.fact(bit - n)}" if bit >= n else str(self.fact(bit))


def bits(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first."""
    raw = np.frombuffer(mask.to_bytes((mask.bit_length() + 7) // 8, "little"), np.uint8)
    return np.flatnonzero(np.unpackbits(raw, bitorder="little")).tolist()
