"""Benchmark subjects keep working: each runs in quick mode (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "lattice",
        "auction",
        "htn",
        "turn",
        "context",
        "orchestration",
        "concurrency",
        "durability",
        "mcp",
        pytest.param("local", marks=pytest.mark.llm),
    ],
)
def test_a_benchmark_subject_runs_in_quick_mode_and_reports_ratios(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"benches.bench_{name}", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rows and any(r["baseline"] for r in rows)
    assert all(r["value"] >= 0 for r in rows)


def test_axo_bench_lists_every_subject() -> None:
    from benches.runner import subjects

    assert {
        "orchestration",
        "concurrency",
        "local",
        "durability",
        "context",
        "htn",
        "auction",
        "lattice",
        "mcp",
        "turn",
    } <= set(subjects())


@pytest.mark.parametrize("stdout", ["", "no json here\n", '{"not": "a list"}\n', "[1, 2]\n"])
def test_a_subject_without_result_rows_is_a_failure_not_a_crash(stdout: str) -> None:
    from benches.runner import parse_rows

    rows, error = parse_rows(stdout)
    assert rows == [] and error.startswith("no result rows on stdout")
