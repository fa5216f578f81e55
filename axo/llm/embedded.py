"""The ``local`` provider: an OpenAI-compatible client bound to a llama.cpp server axo owns.

Starting the provider starts the server (model resolved from a short name or a path);
closing it stops the server. The small model's quirks are handled here, not by the user:
messages are prepared so the chat template accepts them, and tool calls written as JSON
text are turned into real tool calls.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from axo.config import LocalProvider
from axo.llm.base import ChatRequest, ChatResponse
from axo.llm.local import LocalServer, ServerOptions
from axo.llm.models import resolve_model
from axo.llm.openai import OpenAICompatible
from axo.llm.quirks import parse_text_tool_calls, prepare_messages


def prepare(request: ChatRequest) -> ChatRequest:
    """Make a request acceptable to llama.cpp's server and visible to the model's template."""
    named = request.tool_choice not in (None, "auto", "none", "required")
    # a named tool is forced by a grammar; otherwise the template needs the tools described
    tools_in_prompt = (
        request.tools if (request.tools and not named and request.tool_choice != "none") else ()
    )
    messages = prepare_messages(request.messages, tools=tools_in_prompt)
    return msgspec.structs.replace(request, messages=messages)


def postprocess(request: ChatRequest, response: ChatResponse) -> ChatResponse:
    """Read tool calls the model wrote as text into real tool calls."""
    if response.tool_calls or not request.tools or request.tool_choice == "none":
        return response
    calls = parse_text_tool_calls(response.content, request.tools)
    if not calls:
        return response
    return msgspec.structs.replace(
        response, tool_calls=calls, content=None, finish_reason="tool_calls"
    )


class LocalModel(OpenAICompatible):
    """The OpenAI-compatible client for a server it started; ``aclose`` stops the server."""

    def __init__(self, name: str, server: LocalServer, cfg: LocalProvider) -> None:
        super().__init__(
            name,
            server.base_url,
            default_model=server.alias,
            timeout=cfg.timeout,
            max_retries=1,
            backoff=0.2,
            prepare=prepare,
            postprocess=postprocess,
            schema_style="llama",
        )
        self.server = server

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.server.aclose()

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "server": msgspec.to_builtins(self.server.statistics())}


async def start_local(
    name: str, cfg: LocalProvider, *, state_dir: str | None = None, verbose: bool = False
) -> LocalModel:
    """Resolve the model, start its server, wait until it answers, return the provider."""
    path = resolve_model(cfg.model, cfg.model_path)
    threads = cfg.n_threads or max(1, min(4, os.cpu_count() or 1))
    options = ServerOptions(n_ctx=cfg.n_ctx, n_threads=threads, seed=cfg.seed, verbose=verbose)
    log_dir = os.path.join(state_dir, "logs") if state_dir else None
    server = LocalServer(path, options, log_dir=log_dir, ready_timeout_s=cfg.startup_timeout)
    await server.astart()
    return LocalModel(name, server, cfg)
