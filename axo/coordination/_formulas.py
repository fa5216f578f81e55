"""Formulas: the facts and ground tasks a schema mentions, as arithmetic on its bindings.

A fact ``on(?x, ?y)`` of a method's bindings has the id ``offset + pos(x) * s0 + pos(y) * s1``
(see ``_numbering``): a linear function of the positions of the bound objects. So all the facts
and subtasks of a method, for all its rows, are one matrix product: the positions of the
variables they use, times a small matrix of strides, plus a row of offsets.

The strides and offsets depend on the problem (how many objects each type has), the layout
does not: it is compiled once per domain, with every formula of every schema in one flat table,
so that a problem numbers all of them with a handful of numpy calls (``Layout.number``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from axo.coordination._numbering import ONE, IntArray, Space

Term = tuple[int, int]  # (variable, -1) or (-1, constant's object id)
FACTS, TASKS, RANKS, PAD = 0, 1, 2, 3  # the spaces a formula numbers in; PAD is always -1


@dataclass(frozen=True)
class Formula:
    """``name(terms)`` in the FACTS or TASKS space; in RANKS, a number that orders a method's
    bindings like nested loops over its parameters (``name`` is the method)."""

    space: int
    name: str
    terms: tuple[Term, ...]
    types: tuple[int, ...]  # the type each term is numbered in


PADDING = Formula(PAD, "", (), ())  # fills a table's unused columns with -1


@dataclass(frozen=True, eq=False)
class Formulas:
    """Formulas evaluated together: the positions of ``variables`` (each in its type, kept by
    the layout: ``Layout.spans``) times W, plus base — W and base come from ``Layout.number``.
    When there are variables, the last (variable, ONE) pair reads 1, and W's last row is base."""

    index: int  # in the layout
    formulas: tuple[Formula, ...]
    variables: IntArray


class Layout:
    """Every formula of a domain in one flat table: the W of each ``Formulas`` (see there)
    side by side, with which stride goes to which cell, which offset to which base cell, and
    what constant arguments add. Built by ``add``, then ``seal``-ed; ``number`` fills it in for
    a problem and ``block`` cuts one ``Formulas``' W out of it."""

    def __init__(
        self,
        relations: Sequence[dict[str, tuple[int, ...]]],
        constant_pos: dict[tuple[int, int], int],
    ) -> None:
        self.relations = relations  # per space: relation -> argument types
        self.constant_pos = constant_pos  # (constant, type) -> its position among the type
        self.first: dict[tuple[int, str], int] = {}  # (space, relation) -> index of 1st stride
        self.offset_of: dict[tuple[int, str], int] = {}  # (space, relation) -> index of offset
        strides = 0
        for space, named in enumerate(relations):
            for name, types in named.items():
                self.first[(space, name)] = strides
                self.offset_of[(space, name)] = len(self.offset_of)
                strides += len(types)
        self.offset_of[(PAD, "")] = len(self.offset_of)
        self.blocks: list[tuple[int, int, int]] = []  # per Formulas: start, rows, columns
        self.size = 0
        self.cells: dict[str, list[int]] = {
            k: [] for k in ("stride", "stride_ref", "base", "base_ref", "const", "const_ref")
        }
        self.const_pos: list[int] = []
        self.types: list[int] = []  # every Formulas' ``types``, one after the other ...
        self.spans: list[tuple[int, int]] = []  # ... each at [start, stop)
        self.sealed: dict[str, IntArray] = {}
        self.repeated = True

    def add(self, formulas: Sequence[Formula]) -> Formulas:
        """Lay out formulas that are evaluated together."""
        pairs = {
            (v, t): None
            for f in formulas
            for (v, _), t in zip(f.terms, f.types, strict=True)
            if v >= 0
        }
        row = {p: i for i, p in enumerate(pairs)}
        start, width, cells = self.size, len(formulas), self.cells
        for o, f in enumerate(formulas):
            base = start + len(pairs) * width + o  # the last row
            cells["base"].append(base)
            cells["base_ref"].append(self.offset_of[(f.space, f.name)])
            for j, ((v, c), t) in enumerate(zip(f.terms, f.types, strict=True)):
                ref = self.first[(f.space, f.name)] + j
                if v >= 0:
                    cells["stride"].append(start + row[(v, t)] * width + o)
                    cells["stride_ref"].append(ref)
                else:
                    cells["const"].append(base)
                    cells["const_ref"].append(ref)
                    self.const_pos.append(self.constant_pos[(c, t)])
        self.blocks.append((start, len(pairs) + 1, width))
        self.size += (len(pairs) + 1) * width
        ones = [(next(iter(pairs))[0], ONE)] if pairs else []
        grid = np.array([*pairs, *ones], np.intp).reshape(len(pairs) + len(ones), 2)
        self.spans.append((len(self.types), len(self.types) + len(grid)))
        self.types += grid[:, 1].tolist()
        return Formulas(len(self.blocks) - 1, tuple(formulas), grid[:, 0])

    def seal(self) -> None:
        """Turn the tables into arrays, once every formula is laid out."""
        self.sealed = {k: np.array(v, np.intp) for k, v in self.cells.items()}
        self.sealed["const_pos"] = np.array(self.const_pos, np.int64)
        self.sealed["types"] = np.array(self.types, np.int64)
        # a formula such as p(?x, ?x) adds two strides to one cell; else assigning them is
        # enough, and several times cheaper than ``np.add.at``
        self.repeated = len(set(self.cells["stride"])) < len(self.cells["stride"])

    def number(self, spaces: Sequence[Space]) -> IntArray:
        """The problem's numbers for every formula, flat (``block`` cuts them)."""
        cells = self.sealed
        strides = [s for space in spaces for rel in space.types for s in space.strides[rel]]
        offsets = [space.offset[rel] for space in spaces[:RANKS] for rel in space.types]
        offsets += [0] * len(spaces[RANKS].types) + [-1]  # ranks start at 0; PAD is -1
        stride = np.array([*strides, 0], np.int64)
        out = np.zeros(self.size, np.int64)
        if self.repeated:
            np.add.at(out, cells["stride"], stride[cells["stride_ref"]])
        else:
            out[cells["stride"]] = stride[cells["stride_ref"]]
        out[cells["base"]] = np.array(offsets, np.int64)[cells["base_ref"]]
        if len(cells["const"]):
            np.add.at(out, cells["const"], cells["const_pos"] * stride[cells["const_ref"]])
        return out

    def block(self, f: Formulas, numbers: IntArray) -> IntArray:
        """The W of ``f``: [variables, formulas], its last row the base; just the base when
        ``f`` has no variables."""
        start, rows, width = self.blocks[f.index]
        w = numbers[start : start + rows * width].reshape(rows, width)
        return w if len(f.variables) else w[-1]
