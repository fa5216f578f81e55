"""Run benchmark subjects, each in its own process, and print their tables.

Every subject ``benches/bench_<name>.py`` is started as ``python -m benches.bench_<name>
--json`` so one subject's imports, caches and garbage cannot colour another's figures; ratios
are computed inside each subject, from figures taken in the same process.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import msgspec

from benches._harness import Measurement, format_table

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = (
    "axo",
    "thespian",
    "msgspec",
    "numpy",
    "numba",
    "networkx",
    "pydantic",
    "uvloop",
    "mcp",
    "langgraph",
    "langgraph-checkpoint-sqlite",
    "gtpyhop",
    "llama_cpp_python",
)


def subjects() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benches").glob("bench_*.py"))


def machine() -> dict[str, object]:
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
        "versions": versions,
    }


def run_subject(
    name: str, *, quick: bool, timeout: float = 1800
) -> tuple[list[Measurement], str, float]:
    """Rows of one subject (empty on failure), its error text, and its wall time."""
    cmd = [sys.executable, "-m", f"benches.bench_{name}", "--json"]
    if quick:
        cmd.append("--quick")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:g}s", time.perf_counter() - start
    took = time.perf_counter() - start
    if proc.returncode != 0:
        return [], (proc.stderr.strip().splitlines() or ["failed"])[-1], took
    rows, error = parse_rows(proc.stdout)
    return rows, error, took


def parse_rows(stdout: str) -> tuple[list[Measurement], str]:
    """A subject's rows from its output (the last line, JSON), or why there are none."""
    try:
        line = stdout.strip().splitlines()[-1]
        return [Measurement(**r) for r in json.loads(line)], ""
    except (IndexError, ValueError, TypeError) as exc:
        return [], f"no result rows on stdout ({type(exc).__name__}: {exc})"


def main(names: list[str], *, as_json: bool = False, quick: bool = False) -> int:
    known = subjects()
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.stderr.write(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(known)}\n")
        return 2
    chosen = names or known
    info = machine()
    report: dict[str, object] = {"machine": info, "subjects": {}}
    if not as_json:
        print(
            f"python {info['python']} on {info['platform']}, {info['cpus']} CPUs, "
            f"load {info['load']}"
        )
        print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    failed = 0
    for name in chosen:
        rows, error, took = run_subject(name, quick=quick)
        report["subjects"][name] = {  # type: ignore[index]
            "seconds": round(took, 2),
            "error": error or None,
            "rows": [msgspec.to_builtins(r) for r in rows],
        }
        failed += bool(error)
        if as_json:
            continue
        print()
        if error:
            print(f"== {name}: FAILED ({error})")
        else:
            print(format_table(name, rows))
            print(f"({took:.1f}s)")
    if as_json:
        print(json.dumps(report))
    return 1 if failed else 0
