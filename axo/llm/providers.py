"""Build the providers a workflow's agents use, start them together, close them together.

This module maps provider configs to provider objects (OpenAI-compatible, Anthropic, local
llama.cpp). In-process ``function`` providers have no object here: agent actors call them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from axo.config import AnthropicProvider, LocalProvider, OpenAIProvider
from axo.errors import UsageError
from axo.llm.base import Provider
from axo.llm.openai import OpenAICompatible
from axo.workflow import Workflow


class ProviderSet:
    """The providers of one host, by name; started on ``open`` and closed on ``aclose``.

    Args:
        workflow: where provider configs come from.
        overrides: provider objects to use instead of building them (tests, embedding apps).
    """

    def __init__(
        self,
        workflow: Workflow,
        overrides: Mapping[str, Provider] | None = None,
        *,
        state_dir: str | None = None,
    ) -> None:
        self.workflow = workflow
        self._providers: dict[str, Provider] = dict(overrides or {})
        self._owned: list[Any] = []
        self._state_dir = state_dir
        self.started = 0  # providers built so far (again after a local model's server died)

    async def open(self, names: Iterable[str] | None = None) -> None:
        """Create (and for local models, start) every provider in ``names`` — by default each one
        the workflow's agents call outside the process — in parallel.

        Cancelled (a stop, a timeout, a client gone) while some are still starting: those stop
        what they started, and those already built are kept, so ``aclose`` closes them — and a
        set that lives across runs need not build them again.
        """
        wanted = self.workflow.remote_providers if names is None else names
        await self._drop_dead()
        todo = [n for n in wanted if n not in self._providers]
        if not todo:
            return
        builds = {n: asyncio.ensure_future(self._build(n)) for n in todo}
        try:
            await asyncio.wait(builds.values())
        finally:
            pending = [t for t in builds.values() if not t.done()]
            for t in pending:
                t.cancel()  # a local model stops its server when cancelled (LocalServer.astart)
            if pending:
                await asyncio.wait(pending)
            errors = self._keep(builds)
        if errors:
            raise errors[0]

    def _keep(self, builds: Mapping[str, asyncio.Future[Provider]]) -> list[BaseException]:
        """Own every provider built; the errors of those that failed."""
        errors = []
        for name, build in builds.items():
            if build.cancelled():
                continue
            error = build.exception()
            if error is not None:
                errors.append(error)
                continue
            self._providers[name] = provider = build.result()
            self._owned.append(provider)
            self.started += 1
        return errors

    async def _drop_dead(self) -> None:
        """Forget (and close) the local models whose server has died: a set that lives across
        runs (``axo mcp serve``) starts them again on the next ``open``."""
        dead = [p for p in self._owned if not getattr(getattr(p, "server", None), "running", True)]
        for p in dead:
            self._owned.remove(p)
            self._providers = {n: q for n, q in self._providers.items() if q is not p}
        if dead:
            await asyncio.gather(*(p.aclose() for p in dead), return_exceptions=True)

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise UsageError(f"provider '{name}' was not opened") from None

    async def _build(self, name: str) -> Provider:
        cfg = self.workflow.provider_config(name)
        if isinstance(cfg, OpenAIProvider):
            return OpenAICompatible(
                name,
                cfg.base_url,
                api_key=cfg.api_key,
                default_model=cfg.model,
                timeout=cfg.timeout,
                connect_timeout=cfg.connect_timeout,
                max_retries=cfg.max_retries,
                backoff=cfg.backoff,
                headers=cfg.headers,
            )
        if isinstance(cfg, LocalProvider):
            from axo.llm.embedded import start_local

            return await start_local(name, cfg, state_dir=self._state_dir)
        if isinstance(cfg, AnthropicProvider):
            from axo.llm.anthropic import AnthropicMessages

            return AnthropicMessages(
                name,
                cfg.base_url,
                api_key=cfg.api_key,
                default_model=cfg.model,
                timeout=cfg.timeout,
                connect_timeout=cfg.connect_timeout,
                max_retries=cfg.max_retries,
                backoff=cfg.backoff,
                version=cfg.version,
            )
        raise UsageError(f"provider '{name}' of type {cfg.type} has no host-side client")

    async def aclose(self) -> None:
        owned, self._owned = self._owned, []
        if owned:
            await asyncio.gather(*(p.aclose() for p in owned), return_exceptions=True)
