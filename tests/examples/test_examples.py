"""Every example runs (against the fake LLM server where it needs a model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from axo.testing import FakeLLM, Reply, ToolCalls

ROOT = Path(__file__).resolve().parents[2]


def test_custom_tools_example_calls_the_apps_tool_and_prints_the_answer() -> None:
    text = "One two three. Four five."
    with FakeLLM(
        scripts={
            "measurer": [ToolCalls([("word_stats", {"text": text})]), Reply("5 words")],
            "writer": [Reply("The text has five words.")],
        }
    ) as fake:
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "custom_tools.py"),
                "--base-url",
                fake.base_url,
                "--model",
                "m",
                "--text",
                text,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    assert proc.returncode == 0, proc.stderr
    assert "tool calls: 1; status: succeeded" in proc.stdout
    assert "writer: The text has five words." in proc.stdout
    tool_result = fake.requests_for("measurer")[1].messages[-2]["content"]  # then: answer now
    assert json.loads(tool_result) == {"words": 5, "sentences": 2, "longest_word": "three"}
    assert "✓ writer done" in proc.stderr
