"""The graphs the orchestration benchmarks run, as (id, depends_on) lists and YAML."""

from __future__ import annotations


def chain(n: int) -> list[tuple[str, list[str]]]:
    return [(f"a{i}", [f"a{i - 1}"] if i else []) for i in range(n)]


def all_to_all(width: int, depth: int) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for k in range(depth):
        prev = [f"l{k - 1}n{i}" for i in range(width)] if k else []
        out += [(f"l{k}n{i}", prev) for i in range(width)]
    return out


def independent(n: int) -> list[tuple[str, list[str]]]:
    return [(f"w{i}", []) for i in range(n)]


def to_yaml(graph: list[tuple[str, list[str]]], provider_yaml: str) -> str:
    lines = ["providers:", f"  p: {provider_yaml}", "agents:"]
    for aid, deps in graph:
        dep = f", depends_on: [{', '.join(deps)}]" if deps else ""
        lines.append(f"  - {{id: {aid}{dep}}}")
    return "\n".join(lines) + "\n"
