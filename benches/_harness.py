"""The small interface every benchmark subject implements, and the table it prints.

A subject is a module ``benches/bench_<name>.py`` with:

- ``DESCRIPTION: str`` — one line;
- ``def run(quick: bool) -> list[Measurement]`` — measures every implementation of every case
  in this one process, so ratios compare figures taken under the same conditions.

``quick=True`` must finish in a few seconds (the test suite runs every subject that way to keep
them from rotting); ``quick=False`` is the real measurement. Ratios are computed per case against
the measurement marked ``baseline=True``: ``ratio = impl value / baseline value``, so for a cost
(time per thing) a ratio below 1 means cheaper than the baseline.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import msgspec


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    """One figure: a case measured for one implementation."""

    case: str
    impl: str
    value: float
    unit: str
    baseline: bool = False
    lower_is_better: bool = True
    note: str = ""


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Return the best wall time in seconds of ``number`` calls of ``fn`` over ``repeat`` rounds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def with_ratios(rows: list[Measurement]) -> list[tuple[Measurement, float | None]]:
    """Pair each measurement with its ratio to its case's baseline (None when there is none)."""
    base = {m.case: m.value for m in rows if m.baseline}
    out: list[tuple[Measurement, float | None]] = []
    for m in rows:
        b = base.get(m.case)
        out.append((m, m.value / b if b else None))
    return out


def format_table(subject: str, rows: list[Measurement]) -> str:
    """Render measurements as a fixed-width text table with ratios to the baseline."""
    lines = [f"== {subject}"]
    header = f"{'case':<34} {'impl':<28} {'value':>14} {'unit':<10} {'× baseline':>11}"
    lines.append(header)
    lines.append("-" * len(header))
    for m, ratio in with_ratios(rows):
        r = "baseline" if m.baseline else (f"{ratio:.3g}" if ratio is not None else "")
        lines.append(f"{m.case:<34} {m.impl:<28} {m.value:>14.4g} {m.unit:<10} {r:>11}")
        if m.note:
            lines.append(f"{'':<34}   ↳ {m.note}")
    return "\n".join(lines)


def main(subject: str, run: Callable[[bool], list[Measurement]]) -> None:
    """Entry point for ``python -m benches.bench_<name> [--quick] [--json]``."""
    quick = "--quick" in sys.argv
    rows = run(quick)
    if "--json" in sys.argv:
        sys.stdout.write(json.dumps([msgspec.to_builtins(m) for m in rows]) + "\n")
    else:
        print(format_table(subject, rows))
