"""A durable, append-only event log of runs, in SQLite (WAL), with group commit.

Boundary: this module stores and verifies records; it does not know what an event means, how
a run is replayed, or when the runtime needs durability — the runtime decides, by awaiting
``durable(run_id, seq)`` (or ``append_durable``) before it acts on an event.

Layout — one database per state directory, ``<state_dir>/events.db``, holding every run:

- one WAL and one writer, so appends from several runs in flight at once share one
  transaction and one fsync (a database per run would cost an fsync per run per batch);
- ``runs()`` and ``prune()`` are single queries instead of a directory walk over files;
- the price is one write lock per state directory: a second process writing the same
  directory waits on SQLite's busy timeout. Runs of one host share it; that is the common case.

Records: ``(run_id, seq)`` is the key; ``seq`` is per run, gapless, from 1. Each row carries its
time, kind, agent, an encoding flag, the payload (msgpack of a dict, or caller bytes) and a
CRC32 over all of them. A run's record count is stored when it finishes (or resumes), so a
lost tail is detected; before that, the log is exactly what was committed (a torn WAL write
is rolled back by SQLite, never half-read). Reading verifies the sequence, the checksums, the
decoding and that count, and stops at the first bad record: ``scan()`` returns the good
prefix and the problem, ``events()`` raises ``CorruptLog`` (carrying the good prefix),
``resume_run()`` drops the bad tail.

Group commit: ``append`` assigns the sequence number, computes the checksum and queues the row
(microseconds, no I/O). One writer thread (``axo.eventwriter``) owns the write connection; it
takes *everything* queued, writes it in one transaction and commits, then wakes whoever waits
on those records. While one commit's fsync runs, the next batch accumulates, so the cost of
an fsync is shared by every agent that finished meanwhile. ``linger_s`` lets the writer wait
(bounded) for more records before committing; the default is not to wait.

Durability by ``sync``: ``"full"`` — a record waited for with ``durable`` (so do
``append_durable``, ``flush``, the run operations and ``close``) survives power loss once the
wait returns; ``"normal"`` — survives a crash of the process, not of the machine (WAL not
fsynced per commit); ``"off"`` — nothing is promised (tests, benchmarks). ``"full"`` commits
as ``"normal"`` does and fsyncs the WAL itself when a waiter needs it — once for the whole
WAL, so records nobody waits for (bookkeeping) never cost an fsync of their own: they survive
a crash of the process once committed (``committed`` waits for that), and power loss once any
later record is made durable.

Secrets: ``redact`` (per log, or per run in ``start_run``) is applied to every string stored —
kind, agent, workflow names, meta, and every string and key inside ``data`` dicts. Run ids
are keys and are refused if redaction would change them. ``bytes`` payloads are stored as
given: the caller encodes and redacts them.

If a commit fails (disk full, I/O error, a second process writing the same run) the log
fails: waiters get ``EventLogFailed``, and so does every later call that writes.

Blocking: ``append`` never waits for I/O; ``start_run``, ``resume_run``, ``finish_run`` and
``prune`` return after their own commit (once per run: an event loop may call them directly
or through ``asyncio.to_thread``). ``close()`` commits what is queued; a log never closed
loses what was still queued when the process exits. One process writes a given run.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from axo.errors import UsageError
from axo.eventrecords import (
    _LAST,
    _MSGPACK,
    _RAW,
    _SCHEMA,
    CorruptLog,
    EventLogFailed,
    Record,
    Redact,
    Replay,
    RunInfo,
    Sync,
    _identity,
    _redact_tree,
    checksum,
)
from axo.eventwriter import Writer

__all__ = ["CorruptLog", "EventLog", "EventLogFailed", "Record", "Replay", "RunInfo", "checksum"]


class EventLog(Writer):
    """Durable per-run event records in ``<state_dir>/events.db``; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        sync: Sync,
        clock: Callable[[], float],
        redact: Redact,
        linger_s: float,
        max_batch: int,
    ) -> None:
        self._clock, self._redact = clock, redact
        self._next_seq: dict[str, int] = {}
        self._run_redact: dict[str, Redact] = {}
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._read_lock = threading.Lock()
        super().__init__(path, sync, linger_s=linger_s, max_batch=max_batch)

    @classmethod
    def open(
        cls,
        state_dir: str | os.PathLike[str],
        *,
        sync: Sync = "full",
        clock: Callable[[], float] = time.time,
        redact: Redact | None = None,
        linger_s: float = 0.0,
        max_batch: int = 10_000,
    ) -> EventLog:
        """Open (creating if needed) the event log of ``state_dir``.

        Args:
            sync: what a commit promises; see the module docstring.
            redact: applied to every string stored, for runs that do not bring their own
                (None: nothing to hide, data is stored as given).
            linger_s: how long the writer may wait for more records before a commit (bounded).
            max_batch: the most records in one transaction.
        """
        if sync not in ("full", "normal", "off"):
            raise UsageError(f"sync must be 'full', 'normal' or 'off', not {sync!r}")
        path = Path(state_dir).absolute() / "events.db"  # the WAL is found by it after a chdir
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only effective on a new file
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise EventLogFailed(f"{path}: not a readable event log: {exc}") from exc
        finally:
            conn.close()
        return cls(
            path,
            sync=sync,
            clock=clock,
            redact=redact or _identity,
            linger_s=linger_s,
            max_batch=max_batch,
        )

    # ------------------------------------------------------------------ writing

    def start_run(
        self,
        run_id: str,
        workflow_file: str,
        workflow_id: str | None,
        input_hash: str,
        meta: dict[str, Any],
        *,
        redact: Redact | None = None,
    ) -> None:
        """Record a new run (durably, before returning); its events then number from 1."""
        red = redact or self._redact
        if red(run_id) != run_id:
            raise UsageError("a run id must not contain a secret")
        row = (
            run_id,
            red(workflow_file),
            None if workflow_id is None else red(workflow_id),
            red(input_hash),
            msgspec.msgpack.encode(_redact_tree(meta, red)),
            self._clock(),
        )

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO runs (run_id, workflow_file, workflow_id, input_hash, "
                "meta, started, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                row,
            )

        with self._cond:
            if run_id in self._next_seq:
                raise UsageError(f"run '{run_id}' is already open in this log")
        try:
            self._run_op(insert)
        except sqlite3.IntegrityError:
            raise UsageError(f"run '{run_id}' already exists in {self.path}") from None
        with self._cond:
            self._next_seq[run_id] = 1
            self._committed_seq[run_id] = self._synced_seq[run_id] = 0
            self._run_redact[run_id] = red

    def resume_run(self, run_id: str, *, redact: Redact | None = None) -> Replay:
        """Reopen a run for appending after its last good record; drop a bad tail, if any."""
        records, problem = self.scan(run_id)
        last = records[-1].seq if records else 0

        def reopen(conn: sqlite3.Connection) -> int:
            n = conn.execute(
                "DELETE FROM events WHERE run_id = ? AND seq > ?", (run_id, last)
            ).rowcount
            conn.execute(
                "UPDATE runs SET status = 'running', finished = NULL, events = ? WHERE run_id = ?",
                (last, run_id),
            )
            return int(n)

        with self._cond:
            if run_id in self._next_seq:
                raise UsageError(f"run '{run_id}' is already open in this log")
        dropped = self._run_op(reopen)
        with self._cond:
            self._next_seq[run_id] = last + 1
            self._committed_seq[run_id] = self._synced_seq[run_id] = last
            self._run_redact[run_id] = redact or self._redact
        return Replay(records=records, problem=problem, dropped=dropped)

    def append(
        self, run_id: str, kind: str, agent: str | None, data: dict[str, Any] | bytes
    ) -> int:
        """Queue one record and return its sequence number; durable once committed."""
        return self._queue(run_id, kind, agent, data, urgent=False)

    def _queue(
        self,
        run_id: str,
        kind: str,
        agent: str | None,
        data: dict[str, Any] | bytes,
        *,
        urgent: bool,
    ) -> int:
        red = self._run_redact.get(run_id)
        if red is None:
            raise UsageError(f"run '{run_id}' is not open in this log (start or resume it)")
        if isinstance(data, bytes):
            enc, payload = _RAW, data
        else:
            enc = _MSGPACK
            try:
                payload = msgspec.msgpack.encode(
                    data if red is _identity else _redact_tree(msgspec.to_builtins(data), red)
                )
            except (TypeError, OverflowError, msgspec.EncodeError) as exc:
                raise UsageError(f"event data for run '{run_id}' can't be stored: {exc}") from None
        kind, agent = red(kind), None if agent is None else red(agent)
        at = self._clock()
        with self._cond:
            self._check()
            seq = self._next_seq.get(run_id)
            if seq is None:
                raise UsageError(f"run '{run_id}' is not open in this log (start or resume it)")
            self._next_seq[run_id] = seq + 1
            crc = checksum(run_id, seq, at, kind, agent, enc, payload)
            self._pending.append((run_id, seq, at, kind, agent, enc, payload, crc))
            self._queued += 1
            self._urgent = self._urgent or urgent
            self._cond.notify()
        return seq

    async def append_durable(
        self, run_id: str, kind: str, agent: str | None, data: dict[str, Any] | bytes
    ) -> int:
        """Append one record and return its sequence number once it is committed."""
        seq = self._queue(run_id, kind, agent, data, urgent=True)
        await self.durable(run_id, seq)
        return seq

    async def durable(self, run_id: str, seq: int) -> None:
        """Return once record ``seq`` of ``run_id`` (and all before it) is committed."""
        with self._cond:
            if self._synced_seq.get(run_id, 0) >= seq:
                return
            self._check()
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[int] = loop.create_future()
            self._waiters.append((run_id, seq, loop, fut, True))
            self._urgent = True
            self._cond.notify()
        await fut

    async def committed(self, run_id: str) -> None:
        """Return once every record of ``run_id`` appended so far is committed: readable by
        anyone, and kept through a crash of the process (through power loss: ``durable``)."""
        with self._cond:
            seq = self._next_seq.get(run_id, 1) - 1
            if self._committed_seq.get(run_id, 0) >= seq:
                return
            self._check()
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[int] = loop.create_future()
            self._waiters.append((run_id, seq, loop, fut, False))
            self._cond.notify()
        await fut

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything appended so far is committed.

        Raises:
            TimeoutError: not committed within ``timeout`` seconds.
            EventLogFailed: the log failed before committing it.
        """
        with self._cond:
            ticket = self._queued
            if self._synced < ticket:
                self._urgent = True
                self._cond.notify()
            if not self._cond.wait_for(lambda: self._synced >= ticket or self._failure, timeout):
                raise TimeoutError(f"event log not flushed within {timeout} s")
            self._check()

    def finish_run(self, run_id: str, status: str) -> None:
        """Record the run's final status (after all its records), durably."""
        red = self._run_redact.get(run_id, self._redact)
        at, status = self._clock(), red(status)

        def finish(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET status = ?, finished = ?, events = COALESCE("
                + _LAST.format("seq")
                + ", 0) WHERE run_id = ?",
                (status, at, run_id),
            )

        self._run_op(finish)
        with self._cond:
            self._next_seq.pop(run_id, None)
            self._run_redact.pop(run_id, None)

    def prune(
        self,
        keep_last: int | None = None,
        older_than_s: float | None = None,
        *,
        workflow: tuple[str, str | None] | None = None,
    ) -> int:
        """Delete runs beyond the newest ``keep_last`` (not those still marked running), or
        idle for ``older_than_s``; with ``workflow`` (file, name as given to ``start_run``),
        only runs of that workflow are counted and deleted.

        Runs open in this log are never pruned. Returns the number of runs deleted.
        """
        cutoff = None if older_than_s is None else self._clock() - older_than_s
        with self._cond:
            open_runs = set(self._next_seq)
        where = ""
        params: tuple[str | None, ...] = ()
        if workflow is not None:  # stored redacted: compare the same way
            file, name = workflow
            where = "WHERE workflow_file = ? AND workflow_id IS ? "
            params = (self._redact(file), None if name is None else self._redact(name))

        def prune(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT run_id, COALESCE({_LAST.format('at')}, started), status FROM runs "
                f"{where}ORDER BY started DESC, run_id DESC",
                params,
            ).fetchall()
            # a run still marked running may belong to another process (or was killed and
            # awaits --resume): only age removes it, never the count
            doomed = [
                rid
                for i, (rid, last, status) in enumerate(rows)
                if rid not in open_runs
                and (
                    (keep_last is not None and i >= keep_last and status != "running")
                    or (cutoff is not None and last < cutoff)
                )
            ]
            for rid in doomed:
                conn.execute("DELETE FROM events WHERE run_id = ?", (rid,))
                conn.execute("DELETE FROM runs WHERE run_id = ?", (rid,))
            if doomed:
                conn.execute("PRAGMA incremental_vacuum")  # give the freed pages back
            return len(doomed)

        return int(self._run_op(prune))

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the database."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._writer.join()
        with self._read_lock:
            self._reader.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def scan(self, run_id: str, *, after: int = 0) -> tuple[list[Record], str | None]:
        """Return the good records after ``after`` and the first problem met (or None)."""
        if run_id in self._next_seq:
            self.flush()
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT seq, at, kind, agent, enc, payload, crc FROM events "
                "WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            ).fetchall()
            info = self._reader.execute(
                "SELECT events FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        out: list[Record] = []
        expected = after + 1
        for seq, at, kind, agent, enc, payload, crc in rows:
            if seq != expected:
                return out, f"record {expected} is missing (next is {seq})"
            if checksum(run_id, seq, at, kind, agent, enc, payload) != crc:
                return out, f"record {seq}: checksum mismatch"
            try:
                data = payload if enc == _RAW else msgspec.msgpack.decode(payload, type=dict)
            except msgspec.DecodeError as exc:
                return out, f"record {seq}: undecodable payload ({exc})"
            out.append(Record(run_id=run_id, seq=seq, at=at, kind=kind, agent=agent, data=data))
            expected += 1
        if info is not None and info[0] >= expected:  # set when the run finished or resumed
            return out, f"log ends at record {expected - 1}; the run recorded {info[0]}"
        return out, None

    def events(self, run_id: str, *, after: int = 0) -> list[Record]:
        """Return the run's records after ``after``, verified.

        Raises:
            CorruptLog: at the first missing, corrupt or undecodable record (with the good prefix).
        """
        records, problem = self.scan(run_id, after=after)
        if problem is not None:
            seq = records[-1].seq + 1 if records else after + 1
            raise CorruptLog(run_id, seq, problem, records)
        return records

    def runs(self) -> list[RunInfo]:
        """Every run in the log, newest first."""
        self.flush()
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT run_id, workflow_file, workflow_id, input_hash, meta, started, status, "
                f"finished, {_LAST.format('at')}, COALESCE({_LAST.format('seq')}, 0) FROM runs "
                "ORDER BY started DESC, run_id DESC"
            ).fetchall()
        return [
            RunInfo(
                run_id=r[0],
                workflow_file=r[1],
                workflow_id=r[2],
                input_hash=r[3],
                meta=msgspec.msgpack.decode(r[4], type=dict),
                started=r[5],
                status=r[6],
                finished=r[7],
                last_event_at=r[8],
                events=r[9],
            )
            for r in rows
        ]

    def statistics(self) -> dict[str, Any]:
        """Appends, commits, records per commit, largest batch, bytes, queue depth, open runs."""
        with self._cond:
            s: dict[str, Any] = dict(self._stats)
            s["queued"] = self._queued - self._committed
            s["open_runs"] = len(self._next_seq)
        s["records_per_commit"] = s["appends"] / s["commits"] if s["commits"] else 0.0
        s["sync"] = self.sync
        return s
