"""Retrying an LLM request: the one policy every HTTP provider shares.

An attempt returns the parsed answer, or a ``ProviderError`` (its ``retryable`` flag decides)
and the delay the server asked for (``Retry-After``). Retryable failures are tried again up to
``max_retries`` times, waiting ``backoff · 2^(k-1)`` seconds (± 25 % jitter) unless the server
said how long; the final error says how many attempts were made.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from axo.errors import ProviderError


def pooled_client(
    base_url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    connect_timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The connection pool an HTTP provider sends its attempts through: one per provider,
    shared by every agent using it (the connect timeout never exceeds the whole one)."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
    )


Attempt = Callable[[], Awaitable[tuple[ProviderError | None, float | None, Any]]]


async def with_retries(
    attempt: Attempt,
    *,
    max_retries: int,
    backoff: float,
    sleep: Callable[[float], Awaitable[Any]],
    on_attempt: Callable[[], None] = lambda: None,
    on_retry: Callable[[], None] = lambda: None,
) -> tuple[Any, int]:
    """Run ``attempt`` until it succeeds or may not be retried; return (answer, attempts)."""
    count = 0
    while True:
        count += 1
        on_attempt()
        failure, delay, answer = await attempt()
        if failure is None:
            return answer, count
        if not failure.retryable or count > max_retries:
            if failure.retryable and max_retries:
                raise ProviderError(
                    f"{failure} — gave up after {count} attempts",
                    retryable=False,
                    status=failure.status,
                )
            raise failure
        on_retry()
        if delay is None:
            delay = backoff * (2 ** (count - 1)) * random.uniform(0.75, 1.25)
        await sleep(delay)
