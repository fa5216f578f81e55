"""Embed axo in an application: a workflow built in code, a custom tool, progress callbacks.

    python examples/custom_tools.py                       # the embedded local model
    python examples/custom_tools.py --base-url URL --model NAME   # any OpenAI-compatible server

Two agents: a `measurer` that must call the app's `word_stats` tool on the text it is given,
and a `writer` that turns those figures into one sentence.
"""

from __future__ import annotations

import argparse
import json
import sys

import axo
from axo.messages import AgentDone, AgentStarted
from axo.result import RunTracker


def word_stats(text: str) -> str:
    """Count the words and sentences of a text and find its longest word.

    Args:
        text: the text to measure.
    """
    words = [w.strip(".,;:!?\"'()") for w in text.split()]
    sentences = max(1, sum(text.count(p) for p in ".!?"))
    longest = max(words, key=len) if words else ""
    return json.dumps({"words": len(words), "sentences": sentences, "longest_word": longest})


def workflow_text(base_url: str | None, model: str | None) -> str:
    if base_url:
        provider = f"{{type: openai, base_url: '{base_url}', model: '{model or 'default'}'}}"
    else:
        provider = "{type: local, model: smollm2, n_ctx: 2048}"
    return f"""
providers:
  llm: {provider}
agents:
  - id: measurer
    system_prompt: Measure the text with the word_stats tool, then report the figures.
    tools: [word_stats]
    tool_choice: word_stats
    max_iterations: 1
    sampling: {{max_tokens: 60}}
  - id: writer
    depends_on: [measurer]
    system_prompt: Write one sentence describing the text's length from the figures.
    sampling: {{max_tokens: 60}}
"""


def show(event: object, tracker: RunTracker) -> None:
    if isinstance(event, AgentStarted):
        print(f"… {event.agent} started", file=sys.stderr)
    elif isinstance(event, AgentDone):
        print(
            f"✓ {event.agent} {event.status} ({event.usage.total_tokens} tokens)", file=sys.stderr
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    parser.add_argument(
        "--text",
        default="Actors keep their state to themselves. They talk "
        "only by messages. That is why they scale.",
    )
    args = parser.parse_args(argv)
    wf = axo.load_workflow("custom_tools.yaml", text=workflow_text(args.base_url, args.model))
    result = axo.run(wf, args.text, tools=[word_stats], on_event=show)
    stats = [n for n in result.notes_of("tool_result") if n.detail["tool"] == "word_stats"]
    print(f"tool calls: {len(stats)}; status: {result.status}")
    for sink, output in result.outputs.items():
        print(f"{sink}: {output}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
