"""Numbering for grounding: object ids, dense fact ids, ground-task keys, id sets — and the
two small array helpers grounding uses on them.

Private to ``axo.coordination``. Every fact ``p(a, b)`` gets a dense id (the predicate's offset
plus a mixed-radix number over the positions of its arguments within their declared types), and
every ground task a key built the same way from its parameter types. Sets and maps over those
ids are plain numpy tables when the id space is small enough, sorted arrays otherwise.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from axo.coordination.domain import ROOT_TYPE, Atom, Call, Domain, Parameter, PlanningProblem
from axo.errors import UsageError

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

EMPTY: IntArray = np.zeros(0, np.int64)
DENSE_LIMIT = 1 << 24  # id spaces up to this size get lookup tables
_KEY_LIMIT = 1 << 62


class Objects:
    """Object ids (domain constants, then the problem's objects) and each type's members."""

    def __init__(self, domain: Domain, problem: PlanningProblem) -> None:
        pairs = [*domain.constants, *problem.objects]
        self.names = [n for n, _ in pairs]
        self.index = {n: i for i, n in enumerate(self.names)}
        kinds = [t for _, t in pairs]
        self.members: dict[str, IntArray] = {}
        self.is_member: dict[str, BoolArray] = {}
        self.pos: dict[str, IntArray] = {}
        for t in (ROOT_TYPE, *domain.types):
            below = {k for k in set(kinds) if domain.is_subtype(k, t)}
            mask = np.array([k in below for k in kinds], dtype=bool)
            members = np.flatnonzero(mask).astype(np.int64)
            pos = np.full(len(kinds), -1, np.int64)
            pos[members] = np.arange(len(members))
            self.members[t], self.is_member[t], self.pos[t] = members, mask, pos

    def space(self, types: Sequence[str]) -> tuple[list[int], int]:
        """Strides and size of the mixed-radix space over arguments of these types."""
        strides, size = [], 1
        for t in reversed(types):
            strides.append(size)
            size *= len(self.members[t])
        return strides[::-1], size

    def key(
        self, types: Sequence[str], strides: Sequence[int], cols: Sequence[IntArray | int], n: int
    ) -> IntArray:
        out = np.zeros(n, np.int64)
        for col, t, stride in zip(cols, types, strides, strict=True):
            out += self.pos[t][col] * stride
        return out


class Facts:
    """Dense ids of typed facts."""

    def __init__(self, domain: Domain, objects: Objects) -> None:
        self.objects = objects
        self.types = dict(domain.predicates)
        self.offset: dict[str, int] = {}
        self.strides: dict[str, list[int]] = {}
        total = 0
        for pred, types in self.types.items():
            self.strides[pred], size = objects.space(types)
            self.offset[pred] = total
            total += size
        if total >= _KEY_LIMIT:
            raise UsageError("this problem has too many possible facts to number (over 2**62)")
        self.total = total
        self._starts = sorted((off, pred) for pred, off in self.offset.items())

    def ids(self, pred: str, cols: Sequence[IntArray | int], n: int) -> IntArray:
        return self.offset[pred] + self.objects.key(self.types[pred], self.strides[pred], cols, n)

    def atom_id(self, atom: Atom) -> int:
        return int(self.ids(atom.predicate, [self.objects.index[a] for a in atom.args], 1)[0])

    def decode(self, dense: int) -> Atom:
        i = bisect.bisect_right(self._starts, (dense, "\U0010ffff")) - 1
        offset, pred = self._starts[i]
        rest, args = dense - offset, []
        for t, stride in zip(self.types[pred], self.strides[pred], strict=True):
            idx, rest = divmod(rest, stride)
            args.append(self.objects.names[int(self.objects.members[t][idx])])
        return Atom(pred, tuple(args))


class IdSet:
    """A growing set of ids below ``size``: a boolean table, or a sorted array when huge."""

    def __init__(self, size: int) -> None:
        self.table: BoolArray | None = np.zeros(size, bool) if size <= DENSE_LIMIT else None
        self.sorted = EMPTY

    def add(self, ids: IntArray) -> None:
        if self.table is not None:
            self.table[ids] = True
        else:
            self.sorted = np.union1d(self.sorted, ids)

    def contains(self, ids: IntArray) -> BoolArray:
        if self.table is not None:
            return self.table[ids]
        return np.isin(ids, self.sorted)

    def members(self) -> IntArray:
        return np.flatnonzero(self.table) if self.table is not None else self.sorted


class IdMap:
    """Maps ids below ``size`` to values; ids never put map to -1."""

    def __init__(self, size: int) -> None:
        self.dense = size <= DENSE_LIMIT
        self.table = np.full(size if self.dense else 0, -1, np.int64)
        self.keys, self.values = EMPTY, EMPTY

    def get(self, keys: IntArray) -> IntArray:
        if self.dense:
            return self.table[keys]
        if not len(self.keys):
            return np.full(len(keys), -1, np.int64)
        pos = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, self.values[pos], -1)

    def put(self, keys: IntArray, values: IntArray) -> None:
        """Add new ``keys`` (not yet present, no repeats)."""
        if self.dense:
            self.table[keys] = values
            return
        merged = np.concatenate([self.keys, keys])
        order = np.argsort(merged, kind="stable")
        self.keys, self.values = merged[order], np.concatenate([self.values, values])[order]


class TaskKeys:
    """Ground-task ids: each schema's keys in the space of its parameter types."""

    def __init__(self, objects: Objects, schemas: dict[str, tuple[Parameter, ...]]) -> None:
        self.objects = objects
        self.types = {s: [p.type for p in params] for s, params in schemas.items()}
        self.strides: dict[str, list[int]] = {}
        self.maps: dict[str, IdMap] = {}
        for s, types in self.types.items():
            strides, size = objects.space(types)
            if size >= _KEY_LIMIT:
                raise UsageError(f"task '{s}' has too many possible groundings to number")
            self.strides[s], self.maps[s] = strides, IdMap(size)
        self.count = 0
        self.chunks: list[tuple[int, str, IntArray]] = []  # (first id, schema, args of new tasks)

    def intern(self, name: str, args: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """Ids of ``name(args[i])``; also the ids and args of the tasks that are new."""
        n = len(args)
        cols = [args[:, j] for j in range(args.shape[1])]
        keys = self.objects.key(self.types[name], self.strides[name], cols, n)
        ids = self.maps[name].get(keys)
        missing = ids < 0
        if not missing.any():
            return ids, EMPTY, EMPTY.reshape(0, args.shape[1])
        uniq, first = np.unique(keys[missing], return_index=True)
        new_ids = np.arange(self.count, self.count + len(uniq), dtype=np.int64)
        new_args = args[np.flatnonzero(missing)[first]]
        self.maps[name].put(uniq, new_ids)
        self.chunks.append((self.count, name, new_args))
        self.count += len(uniq)
        return self.maps[name].get(keys), new_ids, new_args

    def describe(self, gid: int) -> tuple[str, list[str]]:
        i = bisect.bisect_right(self.chunks, gid, key=lambda c: c[0]) - 1
        start, name, args = self.chunks[i]
        return name, [self.objects.names[int(o)] for o in args[gid - start]]


@dataclass
class Describer:
    """Turns ids back into names, for plans, frontiers and failure messages."""

    facts: Facts
    slot_ids: IntArray  # dense fact id of each fact slot
    static: frozenset[Atom]
    keys: TaskKeys

    def task(self, gid: int) -> Call:
        name, args = self.keys.describe(gid)
        return Call(name, tuple(args))

    def state(self, state: BoolArray) -> frozenset[Atom]:
        on = np.flatnonzero(state[: len(self.slot_ids)])
        return self.static | {self.facts.decode(int(self.slot_ids[s])) for s in on}

    def condition(self, index: int) -> str:
        """A requirement (an index into the doubled state) as text."""
        n, size = len(self.slot_ids), len(self.slot_ids) + 3
        slot, negated = (index - size, True) if index >= size else (index, False)
        text = str(self.facts.decode(int(self.slot_ids[slot]))) if slot < n else "a static fact"
        return f"not {text}" if negated else text


# -- array helpers shared by grounding -----------------------------------------------------


def all_columns(m: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Row-wise AND of a narrow boolean matrix (column by column: numpy's axis-1 reduction
    is slow when rows are short)."""
    out = np.ones(len(m), bool)
    for j in range(m.shape[1]):
        out &= m[:, j]
    return out


def stack_padded(parts: list[NDArray[np.int64]], pad: int) -> NDArray[np.int64]:
    """Stack 2-D blocks of different widths, padding on the right with ``pad``."""
    width = max([p.shape[1] for p in parts] + [0])
    out = np.full((sum(len(p) for p in parts), width), pad, np.int64)
    row = 0
    for p in parts:
        out[row : row + len(p), : p.shape[1]] = p
        row += len(p)
    return out
