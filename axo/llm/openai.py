"""An OpenAI-compatible chat-completions client: llama.cpp server, vLLM, Ollama, LM Studio,
OpenRouter, OpenAI.

It knows the wire format, timeouts and retries (exponential backoff with jitter on connection
errors, timeouts, 429 and 5xx, honouring ``Retry-After``). It takes an injected httpx
transport for tests that need one, and never logs the API key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from axo.errors import ProviderError
from axo.llm.base import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ToolCall,
    Usage,
    valid_text,
)
from axo.llm.retry import pooled_client, with_retries

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def message_to_wire(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def request_to_wire(req: ChatRequest, *, schema_style: str = "openai") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": req.model,
        "messages": [message_to_wire(m) for m in req.messages],
    }
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in req.tools
        ]
    if req.tool_choice is not None:
        body["tool_choice"] = (
            req.tool_choice
            if req.tool_choice in ("auto", "none", "required")
            else {"type": "function", "function": {"name": req.tool_choice}}
        )
    for key in ("max_tokens", "temperature", "top_p", "seed"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.stop:
        body["stop"] = list(req.stop)
    if req.response_format is not None:
        if schema_style == "llama":  # llama.cpp's server: json_object with a schema
            body["response_format"] = {"type": "json_object", "schema": req.response_format}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": req.response_format, "strict": True},
            }
    return body


def response_from_wire(data: dict[str, Any]) -> ChatResponse:
    """The response in a chat-completions answer; ``ProviderError`` (malformed) when it is not
    one. Text is made valid (``valid_text``); content given as parts is their text, joined; a
    tool call id used twice gets a suffix, so that each call's result stays its own."""
    try:
        choice = data["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError(f"malformed response: no choices in {str(data)[:200]}") from None
    if not isinstance(msg, dict):
        raise ProviderError(f"malformed response: the message is {_kind(msg)}, not an object")
    calls: list[ToolCall] = []
    ids: set[str] = set()
    for i, c in enumerate(msg.get("tool_calls") or ()):
        call_id = valid_text(str(c.get("id") or f"call_{i}"))
        if call_id in ids:
            call_id = f"{call_id}_{i}"
        ids.add(call_id)
        arguments = c["function"].get("arguments") or "{}"
        if not isinstance(arguments, str):  # some servers send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        name = c["function"]["name"]
        if not isinstance(name, str):
            raise ProviderError(f"malformed response: a tool call's name is {_kind(name)}")
        calls.append(ToolCall(id=call_id, name=valid_text(name), arguments=valid_text(arguments)))
    usage = data.get("usage") or {}
    timings = data.get("timings") or {}
    server_ms = (timings.get("prompt_ms") or 0) + (timings.get("predicted_ms") or 0)
    return ChatResponse(
        content=_content(msg.get("content")),
        tool_calls=tuple(calls),
        usage=Usage(
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
        ),
        finish_reason=choice.get("finish_reason"),
        model=str(data.get("model") or ""),
        server_s=server_ms / 1000 if server_ms else None,
    )


def _content(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return None if content is None else valid_text(content)
    if isinstance(content, list):  # content parts: the text ones, joined
        return valid_text(
            "".join(
                str(p.get("text") or "")
                for p in content
                if isinstance(p, dict) and p.get("type", "text") == "text"
            )
        )
    raise ProviderError(f"malformed response: the message's content is {_kind(content)}, not text")


def _count(value: Any) -> int:
    """A token count: absent is 0; a negative or non-integer one is malformed."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ProviderError(f"malformed response: a token count of {value!r}")
    return int(value)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAICompatible:
    """Async client for one OpenAI-compatible endpoint.

    Args:
        name: the provider's name in the workflow (used in error messages).
        base_url: e.g. ``http://127.0.0.1:8080/v1``.
        api_key: sent as a bearer token; never logged.
        timeout: seconds for one whole request (read included).
        max_retries: retries after the first attempt for retryable failures.
        backoff: base delay in seconds; attempt k waits ``backoff · 2^k`` (± 25 % jitter),
            or what ``Retry-After`` says.
        transport: an httpx transport to use instead of the network (tests).
        prepare: a hook that rewrites a request for a quirky server (local models).
        postprocess: a hook that rewrites a response (e.g. tool calls sent as text).
        schema_style: how ``response_format`` is sent: ``openai`` (json_schema) or ``llama``
            (llama.cpp's json_object with a schema).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        default_model: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        prepare: Callable[[ChatRequest], ChatRequest] | None = None,
        postprocess: Callable[[ChatRequest, ChatResponse], ChatResponse] | None = None,
        schema_style: str = "openai",
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.default_model = default_model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._prepare = prepare
        self._postprocess = postprocess
        self._sleep = sleep
        self._schema_style = schema_style
        hdrs = dict(headers or {})
        self._secret = api_key or ""
        if api_key:
            hdrs["Authorization"] = f"Bearer {api_key}"
        self._client = pooled_client(
            self.base_url,
            hdrs,
            timeout=timeout,
            connect_timeout=connect_timeout,
            transport=transport,
        )
        self.calls = 0
        self.retries = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if not request.model and self.default_model:
            request = _with_model(request, self.default_model)
        if self._prepare is not None:
            request = self._prepare(request)
        body = json.dumps(request_to_wire(request, schema_style=self._schema_style)).encode()
        start = time.perf_counter()
        try:
            data, attempts = await with_retries(
                lambda: self._attempt(body),
                max_retries=self.max_retries,
                backoff=self.backoff,
                sleep=self._sleep,
                on_attempt=self._count_call,
                on_retry=self._count_retry,
            )
        except ProviderError as exc:  # a server or proxy may echo the key back in an error
            if self._secret and self._secret in str(exc):
                raise ProviderError(
                    str(exc).replace(self._secret, "[api key]"),
                    retryable=exc.retryable,
                    status=exc.status,
                ) from None
            raise
        try:
            answer = response_from_wire(data)
        except ProviderError as exc:
            raise ProviderError(f"{self.name}: {exc}") from None
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"{self.name}: malformed response ({type(exc).__name__}: {exc})"
            ) from None
        out = _timed(answer, time.perf_counter() - start, attempts)
        if self._postprocess is not None:
            out = self._postprocess(request, out)
        return out

    def _count_call(self) -> None:
        self.calls += 1

    def _count_retry(self) -> None:
        self.retries += 1

    async def _attempt(self, body: bytes) -> tuple[ProviderError | None, float | None, Any]:
        """One POST: (None, None, json) on success, else (failure, retry-after, None)."""
        try:
            resp = await self._client.post(
                "/chat/completions", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.TimeoutException:
            return (
                ProviderError(f"{self.name}: no answer within {self.timeout:g}s", retryable=True),
                None,
                None,
            )
        except httpx.TransportError as exc:  # a URL httpx cannot speak stays so: no retry
            return (
                ProviderError(
                    f"{self.name}: connection failed ({type(exc).__name__}: {exc})",
                    retryable=not isinstance(exc, httpx.UnsupportedProtocol),
                ),
                None,
                None,
            )
        if resp.status_code == 200:
            try:
                return None, None, resp.json()
            except ValueError:
                raise ProviderError(
                    f"{self.name}: answer is not JSON: {resp.text[:200]!r}"
                ) from None
        failure = ProviderError(
            f"{self.name}: HTTP {resp.status_code} {_error_detail(resp)}",
            retryable=resp.status_code in RETRY_STATUSES,
            status=resp.status_code,
        )
        return failure, retry_after(resp), None

    async def aclose(self) -> None:
        await self._client.aclose()

    def statistics(self) -> dict[str, Any]:
        return {"calls": self.calls, "retries": self.retries}


def _with_model(req: ChatRequest, model: str) -> ChatRequest:
    return msgspec.structs.replace(req, model=model)


def _timed(resp: ChatResponse, elapsed: float, attempts: int) -> ChatResponse:
    return msgspec.structs.replace(resp, elapsed_s=elapsed, attempts=attempts)


def _error_detail(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        if err:
            return str(err)[:300]
        return str(data)[:300]
    except ValueError:
        return resp.text[:300]
