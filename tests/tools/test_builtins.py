"""Built-in tools run through the registry, as the host runs them."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from axo.memory.base import InMemoryFacts
from axo.tools.builtins import builtin_tools
from axo.tools.registry import ToolContext, ToolOutcome, ToolRegistry


def call(tmp_path: Path, name: str, **args: object) -> ToolOutcome:
    registry = ToolRegistry(builtin_tools())
    ctx = ToolContext(
        run_id="r",
        agent="a",
        workspace=str(tmp_path),
        memory=InMemoryFacts(),
        extra={"python_timeout": 2.0, "python_memory_mb": 128},
    )
    return asyncio.run(registry.execute(name, "c1", json.dumps(args), ctx))


def test_write_then_read_a_file(tmp_path: Path) -> None:
    assert not call(tmp_path, "write_file", path="d/x.txt", content="hello").is_error
    assert call(tmp_path, "read_file", path="d/x.txt").content == "hello"
    assert "d/x.txt" in call(tmp_path, "list_files").content


def test_reading_through_an_escaping_symlink_is_an_error_result(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret").write_text("s3cret")
    os.symlink(tmp_path / "secret", ws / "s")
    out = call(ws, "read_file", path="s")
    assert out.is_error and "symlink" in out.content and "s3cret" not in out.content


def test_run_python_prints_from_the_workspace(tmp_path: Path) -> None:
    out = call(tmp_path, "run_python", code="import os; print(os.getcwd())")
    assert not out.is_error
    assert str(tmp_path.resolve()) in out.content and "exit code 0" in out.content


def test_run_python_is_killed_at_its_time_limit(tmp_path: Path) -> None:
    out = call(tmp_path, "run_python", code="while True: pass", timeout=1)
    assert "killed: the time limit was reached" in out.content


def test_run_python_is_stopped_at_its_memory_limit(tmp_path: Path) -> None:
    out = call(tmp_path, "run_python", code="x = bytearray(1024 * 1024 * 1024)")
    assert "killed: the memory limit was reached" in out.content


def test_run_python_inherits_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    out = call(tmp_path, "run_python", code="import os; print(sorted(os.environ))")
    assert "OPENAI_API_KEY" not in out.content and "sk-do-not-leak" not in out.content


def test_remember_and_recall(tmp_path: Path) -> None:
    registry = ToolRegistry(builtin_tools())
    ctx = ToolContext(run_id="r", agent="a", workspace=str(tmp_path), memory=InMemoryFacts())

    async def go() -> str:
        await registry.execute(
            "remember",
            "1",
            json.dumps({"text": "the deploy key rotates on Mondays", "tags": ["deploy"]}),
            ctx,
        )
        out = await registry.execute("recall", "2", json.dumps({"query": "when deploy"}), ctx)
        return out.content

    assert "rotates on Mondays" in asyncio.run(go())


def test_bad_arguments_and_unknown_tools_are_error_results(tmp_path: Path) -> None:
    assert "invalid arguments" in call(tmp_path, "read_file", path=3).content
    assert "no tool named" in call(tmp_path, "nope").content
