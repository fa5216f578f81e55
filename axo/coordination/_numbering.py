"""Numbering for grounding: object ids, type positions, dense ids of facts and ground tasks.

Private to ``axo.coordination``. Objects are numbered domain constants first, then the problem's
objects in declaration order; that order is the order of bindings. Every fact ``p(a, b)`` gets a
dense id: the predicate's offset plus a mixed-radix number over the positions of its arguments
within their declared types. Ground tasks are numbered the same way in a space of their own, from
their parameter types, so a task's id is arithmetic on its arguments and needs no table.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from axo.errors import UsageError

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

EMPTY: IntArray = np.zeros(0, np.int64)
DENSE_LIMIT = 1 << 18  # id spaces up to this size get lookup tables of numbers
SET_LIMIT = 1 << 23  # id sets up to this size are boolean tables (zeroed lazily, by the OS)
KEY_LIMIT = 1 << 62
_TYPE = itemgetter(1)


class Objects:
    """Object ids and, per type (by index), its members and each object's position among them.

    ``pos[t, o]`` is the rank of object ``o`` among the members of type ``t`` (-1 when it is not
    one); ranks follow object ids, so sorting by position sorts by object. The extra last row,
    ``pos[ONE]``, is all ones: formulas read their constant term from it.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        type_index: Mapping[str, int],
        subtype: BoolArray,
        kernel: Any = None,
    ) -> None:
        """``kernel``: ``_grounding_kernel``, to make the tables in one call."""
        self.names = [n for n, _ in pairs]
        self.index = dict(zip(self.names, range(len(pairs)), strict=True))
        if kernel is not None:
            kinds = np.fromiter(map(type_index.__getitem__, map(_TYPE, pairs)), np.int64)
            self.is_member, self.pos, ranked = kernel.objects(kinds, subtype)
        else:
            kinds = np.array([type_index[t] for _, t in pairs], np.intp)
            self.is_member = np.ascontiguousarray(subtype[kinds].T)  # [types, objects]
            pos = np.ones((len(self.is_member) + 1, len(pairs)), np.int64)
            pos[:-1] = np.cumsum(self.is_member, axis=1) - 1
            pos[:-1][~self.is_member] = -1
            self.pos = pos
        self.sizes: list[int] = self.is_member.sum(axis=1).tolist()
        # per type its objects by rank (then -1), when the kernel made it
        self.ranked: IntArray | None = ranked if kernel is not None else None
        self._members: dict[int, IntArray] = {}

    @cached_property
    def named(self) -> NDArray[np.object_]:
        """The names by id as an object array, then None (what id -1 reads)."""
        return np.array([*self.names, None], object)

    def members(self, t: int) -> IntArray:
        """The objects of type ``t`` (and its subtypes), in id order."""
        found = self._members.get(t)
        if found is None:
            if self.ranked is not None:
                found = self._members[t] = self.ranked[t, : self.sizes[t]]
            else:
                found = self._members[t] = np.flatnonzero(self.is_member[t])
        return found

    def ids(self, names: Iterable[str]) -> list[int]:
        return [self.index[n] for n in names]


ONE = -1  # the row of ``Objects.pos`` that is all ones


class Space:
    """Dense ids of tuples over several typed relations (predicates, task schemas, or methods'
    bindings).

    Relation ``r`` of argument types ``(t1, …, tk)`` owns ids ``offset[r]`` up to the next
    relation's offset (relations in order, so their ranges are consecutive); its tuple
    ``(a1, …, ak)`` is ``offset[r] + Σ pos[tj, aj] * strides[r][j]``.
    """

    def __init__(self, relations: Mapping[str, Sequence[int]], objects: Objects, what: str) -> None:
        self.objects = objects
        self.types = relations
        self.offset: dict[str, int] = {}
        self.strides: dict[str, list[int]] = {}
        self.sizes: dict[str, int] = {}
        total = 0
        for name, types in relations.items():
            strides, size = [], 1
            for t in reversed(types):
                strides.append(size)
                size *= objects.sizes[t]
            self.strides[name] = strides[::-1]
            self.offset[name], self.sizes[name] = total, size
            total += size
        if total >= KEY_LIMIT:
            raise UsageError(f"this problem has too many possible {what} to number (over 2**62)")
        self.total = total
        self.starts = [*self.offset.values(), total]  # relations' ranges are consecutive
        self.arities = [(name, len(types)) for name, types in relations.items()]

    @cached_property
    def padded(self) -> tuple[IntArray, IntArray, IntArray]:
        """Per relation: its argument types and strides [relations, widest arity], padded with
        0, and its offset."""
        width = max([len(t) for t in self.types.values()], default=0)
        types, strides = [], []
        for name, kinds in self.types.items():
            pad = [0] * (width - len(kinds))
            types.append([*kinds, *pad])
            strides.append(self.strides[name] + pad)
        shape = (len(types), width)
        return (
            np.array(types, np.int64).reshape(shape),
            np.array(strides, np.int64).reshape(shape),
            np.array(list(self.offset.values()), np.int64),
        )

    def tuples(self, relation: IntArray, args: IntArray) -> IntArray:
        """The ids of tuples given by relation (its index) and object ids [tuples, widest
        arity], padded with 0 — a few numpy calls for any number of relations."""
        types, strides, offsets = self.padded
        ids = offsets.take(relation)
        if not args.size:
            return ids
        rows = types.take(relation, axis=0) * len(self.objects.names)  # padding: stride 0
        pos = self._pos.take(args + rows)
        return (pos * strides.take(relation, axis=0)).sum(axis=1) + ids

    @cached_property
    def _pos(self) -> IntArray:
        """``objects.pos`` flat, then a 0: what padding reads (index 0) when there are no
        objects at all (its stride is 0)."""
        return np.append(self.objects.pos.ravel(), 0)

    def id_of(self, name: str, args: Sequence[int]) -> int:
        """The id of one tuple (object ids)."""
        pos = self.objects.pos
        return self.offset[name] + sum(
            int(pos[t, a]) * s
            for a, t, s in zip(args, self.types[name], self.strides[name], strict=True)
        )

    def decode_many(self, name: str, ids: IntArray) -> IntArray:
        """The object ids of many tuples of relation ``name``: [ids, arity]."""
        rest = ids - self.offset[name]
        out = np.empty((len(ids), len(self.types[name])), np.int64)
        for j, (t, stride) in enumerate(zip(self.types[name], self.strides[name], strict=True)):
            out[:, j] = self.objects.members(t)[rest // stride]
            rest = rest % stride
        return out

    def decode(self, dense: int) -> tuple[str, list[int]]:
        """The relation and object ids of an id."""
        starts = sorted((off, n) for n, off in self.offset.items() if self.sizes[n])
        offset, name = starts[bisect.bisect_right(starts, (dense, "\U0010ffff")) - 1]
        rest, args = dense - offset, []
        for t, stride in zip(self.types[name], self.strides[name], strict=True):
            idx, rest = divmod(rest, stride)
            args.append(int(self.objects.members(t)[idx]))
        return name, args


class IdSet:
    """A growing set of ids below ``size``: a boolean table, or a sorted array when huge.
    The padding id -1 is never in it (the table has one more cell, never set, that -1 reads)."""

    def __init__(self, size: int, ids: IntArray = EMPTY) -> None:
        self.table: BoolArray | None = np.zeros(size + 1, bool) if self.tabled(size) else None
        self.sorted = EMPTY
        self.add(ids)

    @staticmethod
    def tabled(size: int) -> bool:
        """Whether a set of ids below ``size`` is a table (else a sorted array)."""
        return size <= SET_LIMIT

    @classmethod
    def of_table(cls, table: BoolArray) -> IdSet:
        """The set a boolean table over its ids (and one more cell, for -1) holds."""
        found = cls.__new__(cls)
        found.table, found.sorted = table, EMPTY
        return found

    def add(self, ids: IntArray) -> None:
        if self.table is not None:
            self.table[ids] = True
        elif len(ids):
            self.sorted = unique(np.concatenate([self.sorted, ids]))

    def contains(self, ids: IntArray) -> BoolArray:
        if self.table is not None:
            return self.table.take(ids)
        return lookup(self.sorted, ids) >= 0


def lookup(keys: IntArray, ids: IntArray) -> IntArray:
    """Where each of ``ids`` is in the sorted array ``keys``; -1 where it is absent."""
    if not len(keys):
        return np.full(ids.shape, -1, np.int64)
    at = np.searchsorted(keys, ids).clip(max=len(keys) - 1)
    return np.where(keys[at] == ids, at, -1)


def ranges(counts: IntArray, total: int) -> IntArray:
    """``[0, 1, …, c0 - 1, 0, 1, …, c1 - 1, …]``: positions within consecutive runs (``total``
    is their sum)."""
    return np.arange(total) - (counts.cumsum() - counts).repeat(counts)


def unique(ids: IntArray) -> IntArray:
    """The distinct values of ``ids``, sorted (``np.unique`` costs several times more)."""
    if len(ids) < 2:
        return ids
    ids = ids.copy()
    ids.sort()
    keep = np.empty(len(ids), bool)
    keep[0] = True
    np.not_equal(ids[1:], ids[:-1], out=keep[1:])
    return ids.compress(keep)
