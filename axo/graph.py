"""Dependency-graph rules for a workflow file, and the DAG's layers and drawings.

This module knows agent ids and ``depends_on`` edges (with networkx); it reports unknown,
duplicate and self dependencies, cycles (named, e.g. ``a → b → c → a``), and workflows that
list unknown agents or leave a dependency outside. It knows nothing about providers or running.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Protocol

import networkx as nx

from axo.errors import Problem
from axo.yamlsource import Source


class _HasDeps(Protocol):
    id: str
    depends_on: list[str]


def build_graph(agents: Sequence[_HasDeps]) -> nx.DiGraph:
    """Edges run from a dependency to its dependent (the direction signals flow)."""
    g: nx.DiGraph = nx.DiGraph()
    ids = {a.id for a in agents}
    for a in agents:
        g.add_node(a.id)
    for a in agents:
        for d in a.depends_on:
            if d in ids and d != a.id:
                g.add_edge(d, a.id)
    return g


class _Node:
    """The id and dependencies of one agent, read defensively from raw YAML data."""

    __slots__ = ("depends_on", "id", "positions")

    def __init__(self, id: str, depends_on: list[str], positions: list[int]) -> None:
        self.id = id
        self.depends_on = depends_on
        self.positions = positions  # the index of each dependency in the YAML list


def _raw_agents(data: Any) -> list[_Node | None]:
    agents = data.get("agents") if isinstance(data, dict) else None
    out: list[_Node | None] = []
    for a in agents if isinstance(agents, list) else []:
        if not isinstance(a, dict) or not isinstance(a.get("id"), str):
            out.append(None)
            continue
        raw = a.get("depends_on", [])
        deps = (
            [(j, d) for j, d in enumerate(raw) if isinstance(d, str)]
            if isinstance(raw, list)
            else []
        )
        out.append(_Node(a["id"], [d for _, d in deps], [j for j, _ in deps]))
    return out


def check_graph(source: Source) -> list[Problem]:
    """Every graph problem in the file, each located; works even where the schema failed."""
    problems: list[Problem] = []
    agents = _raw_agents(source.data)
    first_index: dict[str, int] = {}
    for i, a in enumerate(agents):
        if a is None:
            continue
        if a.id in first_index:
            problems.append(
                source.problem(
                    ("agents", i, "id"),
                    f"duplicate agent id '{a.id}' (first at $.agents[{first_index[a.id]}])",
                    "give each agent a unique id",
                )
            )
        else:
            first_index[a.id] = i
    ids = list(first_index)
    for i, a in enumerate(agents):
        if a is None:
            continue
        seen: set[str] = set()
        for j, d in zip(a.positions, a.depends_on, strict=True):
            where = ("agents", i, "depends_on", j)
            if d == a.id:
                problems.append(
                    source.problem(
                        where,
                        f"agent '{a.id}' depends on itself",
                        "remove it from its own depends_on",
                    )
                )
            elif d not in first_index:
                near = difflib.get_close_matches(d, ids, n=1)
                fix = f"did you mean '{near[0]}'?" if near else "define that agent or remove it"
                problems.append(
                    source.problem(where, f"agent '{a.id}' depends on unknown agent '{d}'", fix)
                )
            elif d in seen:
                problems.append(
                    source.problem(
                        where, f"'{d}' is listed twice in depends_on", "list each dependency once"
                    )
                )
            seen.add(d)
    nodes = [a for a in agents if a is not None]
    problems += _cycles(nodes, source, first_index)
    problems += _workflows(source, nodes, first_index)
    return problems


def _cycles(agents: Sequence[_Node], source: Source, index: dict[str, int]) -> list[Problem]:
    g = build_graph(agents)
    if nx.is_directed_acyclic_graph(g):
        return []
    problems = []
    for comp in nx.strongly_connected_components(g):
        if len(comp) < 2:
            continue
        # follow "depends on" edges, starting at the agent declared first
        rev = g.subgraph(comp).reverse(copy=True)
        start = min(comp, key=index.__getitem__)
        edges = nx.find_cycle(rev, source=start)
        cycle = [u for u, _ in edges]
        first = min(cycle, key=index.__getitem__)
        k = cycle.index(first)
        cycle = [*cycle[k:], *cycle[:k], first]
        text = " → ".join(cycle)
        problems.append(
            source.problem(
                ("agents", index[first], "depends_on"),
                f"dependency cycle: {text}",
                "remove one of these depends_on entries; a workflow must be acyclic",
            )
        )
    return problems


def _workflows(source: Source, agents: Sequence[_Node], index: dict[str, int]) -> list[Problem]:
    data = source.data
    raw = data.get("workflows") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        return []
    by_id = {a.id: a for a in agents}
    problems: list[Problem] = []
    seen_ids: set[str] = set()
    for w_i, w in enumerate(raw):
        if not isinstance(w, dict):
            continue
        wid = w.get("id") if isinstance(w.get("id"), str) else f"#{w_i}"
        if wid in seen_ids:
            problems.append(
                source.problem(
                    ("workflows", w_i, "id"),
                    f"duplicate workflow id '{wid}'",
                    "give each workflow a unique id",
                )
            )
        seen_ids.add(wid)
        listed = w.get("agents")
        listed = listed if isinstance(listed, list) else []
        members = {m for m in listed if isinstance(m, str)}
        counted: set[str] = set()
        for a_i, aid in enumerate(listed):
            if not isinstance(aid, str):
                continue
            where = ("workflows", w_i, "agents", a_i)
            if aid in counted:
                problems.append(
                    source.problem(
                        where,
                        f"'{aid}' is listed twice in workflow '{wid}'",
                        "list each agent once",
                    )
                )
                continue
            counted.add(aid)
            if aid not in by_id:
                near = difflib.get_close_matches(aid, list(index), n=1)
                fix = f"did you mean '{near[0]}'?" if near else "define that agent under agents:"
                problems.append(
                    source.problem(where, f"workflow '{wid}' lists unknown agent '{aid}'", fix)
                )
                continue
            for dep in by_id[aid].depends_on:
                if dep in by_id and dep not in members:
                    problems.append(
                        source.problem(
                            where,
                            f"agent '{aid}' depends on '{dep}', which is not in workflow '{wid}'",
                            f"add '{dep}' to the workflow's agents",
                        )
                    )
        entry = w.get("entry")
        entries = [entry] if isinstance(entry, str) else (entry if isinstance(entry, list) else [])
        for e_i, e in enumerate(entries):
            if not isinstance(e, str):
                continue
            where = (
                ("workflows", w_i, "entry")
                if isinstance(entry, str)
                else ("workflows", w_i, "entry", e_i)
            )
            if e not in members:
                problems.append(
                    source.problem(
                        where,
                        f"entry '{e}' is not in workflow '{wid}'",
                        "name one of the workflow's agents",
                    )
                )
            elif e in by_id and by_id[e].depends_on:
                problems.append(
                    source.problem(
                        where,
                        f"entry '{e}' has dependencies, so the run's input cannot start it",
                        "name an agent with no depends_on",
                    )
                )
        # the run's input starts every agent without dependencies: entry names all of them
        named = {e for e in entries if isinstance(e, str)}
        valid = all(e in by_id and e in members and not by_id[e].depends_on for e in named)
        for aid in sorted(members) if named and valid else ():
            if aid in by_id and not by_id[aid].depends_on and aid not in named:
                problems.append(
                    source.problem(
                        ("workflows", w_i, "entry"),
                        f"agent '{aid}' has no dependencies, so the run's input starts it too, "
                        "but entry does not name it",
                        f"add '{aid}' to entry, or give it depends_on",
                    )
                )
    return problems


def layers(g: nx.DiGraph) -> list[list[str]]:
    """Agents grouped by topological generation (layer 0 are the entry agents)."""
    return [sorted(gen) for gen in nx.topological_generations(g)]


def to_mermaid(g: nx.DiGraph, names: dict[str, str]) -> str:
    lines = ["flowchart TD"]
    for n in g.nodes:
        label = names.get(n, n).replace('"', "'")
        lines.append(f'    {n}["{label}"]')
    for u, v in g.edges:
        lines.append(f"    {u} --> {v}")
    return "\n".join(lines)


def to_dot(g: nx.DiGraph, names: dict[str, str]) -> str:
    lines = ["digraph workflow {", "    rankdir=LR;"]
    for n in g.nodes:
        label = names.get(n, n).replace('"', '\\"')
        lines.append(f'    "{n}" [label="{label}"];')
    for u, v in g.edges:
        lines.append(f'    "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines)


def to_text(g: nx.DiGraph, names: dict[str, str]) -> str:
    lines = []
    for i, layer in enumerate(layers(g)):
        lines.append(f"layer {i}:")
        for n in layer:
            deps = sorted(g.predecessors(n))
            after = f"  ← {', '.join(deps)}" if deps else "  (entry)"
            label = f" ({names[n]})" if names.get(n, n) != n else ""
            lines.append(f"  {n}{label}{after}")
    return "\n".join(lines)
