"""An agent's turn as the host keeps it: for distilling at the end of a run, and for the
turn's checkpoints in a durable one — one record, kept once, read by both."""

from __future__ import annotations

from typing import Any

import msgspec

from axo.llm.base import ChatMessage, ChatRequest, ChatResponse
from axo.tools.registry import ToolOutcome


class Session:
    """Every message the turn's requests carried, once each and in order (a memory-first
    request carries only the latest round, so one request alone would miss the earlier
    ones), then its latest answer and the tool results that answer asked for."""

    def __init__(self) -> None:
        self.messages: list[Any] = []  # ChatMessage, or mappings (``restored``)
        self._seen: set[bytes] = set()
        self.answer: str | None = None
        self._latest: list[dict[str, Any]] = []  # the newest answer, then its tool results
        self._plain: list[Any] = []  # ``messages`` as plain data, converted as checkpoints ask

    @classmethod
    def restored(cls, messages: list[Any]) -> Session:
        """A session as a checkpoint kept it (mappings, secrets redacted, answer included)."""
        session = cls()
        session.messages = list(messages)
        return session

    def add(self, request: ChatRequest, response: ChatResponse) -> None:
        """A request of the turn and its answer."""
        for m in request.messages:
            key = msgspec.msgpack.encode(m)
            if key not in self._seen:
                self._seen.add(key)
                self.messages.append(m)
        self.answer = response.content
        self._latest = [
            {
                "role": "assistant",
                "content": response.content,
                "tool_calls": msgspec.to_builtins(response.tool_calls),
            }
        ]

    def tool_results(self, outcomes: tuple[ToolOutcome, ...]) -> None:
        """The results of the latest answer's tool calls (the next request carries them)."""
        self._latest.extend(
            {"role": "tool", "content": o.content, "name": o.name} for o in outcomes
        )

    def transcript(self) -> list[Any]:
        """What distilling reads: the messages, then the answer."""
        if not self.answer:
            return list(self.messages)
        return [*self.messages, ChatMessage(role="assistant", content=self.answer)]

    def saved(self) -> list[Any]:
        """What a checkpoint keeps, as plain data: the messages, the latest answer and its
        tool results."""
        self._plain.extend(msgspec.to_builtins(m) for m in self.messages[len(self._plain) :])
        return [*self._plain, *self._latest]
