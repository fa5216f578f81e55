"""The records of the event log: their types, errors, schema and integrity checks.

Data and pure functions only — the checksum every record carries, the redaction applied to
what is stored, the SQLite schema. ``axo.eventlog`` writes and reads them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from axo.errors import RuntimeFault

Sync = Literal["full", "normal", "off"]
Redact = Callable[[str], str]
_RAW, _MSGPACK = 0, 1
_HEADER = struct.Struct("<qdB")
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_INSERTS = [(n, "INSERT INTO events VALUES " + ", ".join([_ROW] * n)) for n in (64, 16, 4, 1)]
_LAST = "(SELECT {} FROM events e WHERE e.run_id = runs.run_id ORDER BY seq DESC LIMIT 1)"
# ``events`` is a rowid table (new logs; an older log's WITHOUT ROWID table reads the same):
# its rows are mostly an LLM reply or an agent's output, a kilobyte or more, and a WITHOUT
# ROWID row that big spills to an overflow page of its own — a commit wrote twice the pages.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, workflow_file TEXT NOT NULL, workflow_id TEXT,
    input_hash TEXT NOT NULL, meta BLOB NOT NULL, started REAL NOT NULL,
    status TEXT NOT NULL, finished REAL, events INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
    agent TEXT, enc INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq));
"""


class EventLogFailed(RuntimeFault):
    """The log could not commit; nothing appended after the failure is durable."""


class Record(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    seq: int
    at: float
    kind: str
    agent: str | None
    data: dict[str, Any] | bytes


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    workflow_file: str
    workflow_id: str | None
    input_hash: str
    meta: dict[str, Any]
    started: float
    status: str
    finished: float | None
    last_event_at: float | None
    events: int


class CorruptLog(RuntimeFault):
    """A run's log has a bad record; ``records`` holds the good prefix before it."""

    def __init__(self, run_id: str, seq: int, reason: str, records: list[Record]) -> None:
        self.run_id, self.seq, self.reason, self.records = run_id, seq, reason, records
        super().__init__(
            f"event log of run '{run_id}': record {seq}: {reason} "
            f"({len(records)} good records before it)"
        )


class Replay(msgspec.Struct, frozen=True, kw_only=True):
    """What ``resume_run`` found: the good records, and the bad tail it dropped (if any)."""

    records: list[Record]
    problem: str | None = None
    dropped: int = 0


def checksum(
    run_id: str, seq: int, at: float, kind: str, agent: str | None, enc: int, payload: bytes
) -> int:
    """CRC32 over a record's key, header fields and payload."""
    head = _HEADER.pack(seq, at, enc) + f"{run_id}\x1f{kind}\x1f{agent or ''}".encode()
    return zlib.crc32(payload, zlib.crc32(head))


def _identity(text: str) -> str:
    return text


def _redact_tree(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redact_tree(k, redact): _redact_tree(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, redact) for v in value]
    return value
