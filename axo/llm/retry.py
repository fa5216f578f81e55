"""Retrying an LLM request: the one policy every HTTP provider shares.

An attempt returns the parsed answer, or a ``ProviderError`` (its ``retryable`` flag decides)
and the delay the server asked for (``Retry-After``). Retryable failures are tried again up to
``max_retries`` times, waiting ``backoff · 2^(k-1)`` seconds (± 25 % jitter) unless the server
said how long; the final error says how many attempts were made.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

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


class RetryWatch(NamedTuple):
    """What the owner of a call wants to know of its retries (see ``watch_retries``)."""

    stopping: Callable[[], bool]  # true: make no further attempt
    retrying: Callable[[ProviderError, float, int], None]  # (failure, delay, attempts so far)
    stopped: asyncio.Event | None = None  # set when ``stopping`` turns true: ends a wait


_WATCH: ContextVar[RetryWatch | None] = ContextVar("axo_retry_watch", default=None)


def watch_retries(
    stopping: Callable[[], bool],
    retrying: Callable[[ProviderError, float, int], None],
    stopped: asyncio.Event | None = None,
) -> None:
    """For the calls the current task makes from now on: ``retrying`` hears of each retry
    before its wait, and once ``stopping()`` is true a failed attempt is not tried again
    (``stopped``, set at the same time, cuts a wait short). A task's context is its own:
    this does not reach other tasks."""
    _WATCH.set(RetryWatch(stopping, retrying, stopped))


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
        watch = _WATCH.get()
        _unless_stopping(watch, failure)
        on_retry()
        if delay is None:
            delay = backoff * (2 ** (count - 1)) * random.uniform(0.75, 1.25)
        if watch is not None:
            watch.retrying(failure, delay, count)
        if watch is not None and watch.stopped is not None:
            await _wait_unless(sleep(delay), watch.stopped)
        else:
            await sleep(delay)
        _unless_stopping(watch, failure)  # the stop may have come while it waited


async def _wait_unless(wait: Awaitable[Any], stopped: asyncio.Event) -> None:
    """``wait``, cut short when ``stopped`` is set (a Retry-After can be long)."""
    if stopped.is_set():
        return
    waiting = asyncio.ensure_future(wait)
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (waiting, stop):
            t.cancel()
        await asyncio.gather(waiting, stop, return_exceptions=True)


def _unless_stopping(watch: RetryWatch | None, failure: ProviderError) -> None:
    if watch is not None and watch.stopping():
        raise ProviderError(
            f"{failure} — not tried again: the run is stopping",
            retryable=False,
            status=failure.status,
        )
