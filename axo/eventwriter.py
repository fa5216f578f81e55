"""The event log's writer: one thread that owns the write connection and commits in groups.

Boundary: this module turns queued rows and operations into SQLite transactions and tells
whoever waits when they are durable; what a row means, how it is made and read back is
``axo.eventlog``'s (whose docstring says what each ``sync`` promises and when a commit is
fsynced). ``Writer`` is the base of ``EventLog``: the state below is shared with it under
``_cond``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from axo.errors import UsageError
from axo.eventrecords import _INSERTS, EventLogFailed, Sync


class _Op:
    """A write other than an event, run in the writer's transaction, in queue order."""

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn, self.done = fn, threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


_Row = tuple[str, int, float, str, str | None, int, bytes, int]
# run, seq, the loop to wake, its future, and whether it waits for an fsync or a commit
_Waiter = tuple[str, int, asyncio.AbstractEventLoop, asyncio.Future[int], bool]


class Writer:
    """The queue, the tickets and the waiters of one log, and the thread that commits them."""

    def __init__(self, path: Path, sync: Sync, *, linger_s: float, max_batch: int) -> None:
        self.path, self.sync = path, sync
        self._linger, self._max_batch = linger_s, max_batch
        self._cond = threading.Condition()
        self._pending: list[_Row | _Op] = []
        self._committed_seq: dict[str, int] = {}
        self._synced_seq: dict[str, int] = {}  # committed and fsynced (as sync promises)
        self._queued = self._committed = self._synced = 0  # tickets: items so far
        self._urgent = False  # someone waits: the next commit (or a WAL sync) is fsynced
        self._unsynced = False  # a commit without fsync happened since the last fsync
        self._waiters: list[_Waiter] = []
        self._failure: BaseException | None = None
        self._closing = False
        self._stats = {"appends": 0, "commits": 0, "max_batch": 0, "bytes": 0}
        self._writer = threading.Thread(target=self._write_loop, name="axo-eventlog", daemon=True)
        self._writer.start()

    def _check(self) -> None:
        if self._failure is not None:
            raise EventLogFailed(f"event log {self.path} failed: {self._failure}")
        if self._closing:
            raise UsageError(f"event log {self.path} is closed")

    def _run_op(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        op = _Op(fn)
        with self._cond:
            self._check()
            self._pending.append(op)
            self._queued += 1
            self._urgent = True
            self._cond.notify()
        op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    def _write_loop(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            # "full" commits as "normal" and fsyncs the WAL itself when a waiter needs it
            conn.execute(f"PRAGMA synchronous={'NORMAL' if self.sync == 'full' else self.sync}")
            conn.execute("PRAGMA busy_timeout=10000")
        except (sqlite3.Error, OSError) as exc:  # no writer: everything queued fails, now
            with self._cond:
                self._failure = exc  # from here on nothing more is queued
                ops = [op for op in self._pending if isinstance(op, _Op)]
                self._pending.clear()
            self._fail(exc, ops)
            return
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._pending or self._closing or (self._urgent and self._unsynced)
                    )
                    if self._linger and not self._closing:
                        self._cond.wait_for(
                            lambda: len(self._pending) >= self._max_batch or self._closing,
                            self._linger,
                        )
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                    sync = self._urgent or self._closing
                    if not self._pending:
                        self._urgent = False
                    if not batch and self._closing and not self._unsynced:
                        return
                if batch:
                    self._commit(conn, batch, sync)
                else:
                    self._sync_wal()
        finally:
            conn.close()

    def _fsync_wal(self) -> None:
        """Make every commit so far survive power loss (in ``sync="full"``): fsync the WAL
        they were written to — what SQLite's own "full" does after each commit."""
        if self.sync != "full":
            return
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed into the database file, and a checkpoint fsyncs it
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_wal(self) -> None:
        """A waiter came for records already committed without an fsync: fsync them."""
        try:
            self._fsync_wal()
        except OSError as exc:
            self._fail(exc, ())
            return
        with self._cond:
            self._synced_all()
            ready = self._ready()
        _wake(ready, None)

    def _synced_all(self) -> None:
        """Mark everything committed as durable (lock held)."""
        self._synced, self._unsynced = self._committed, False
        self._synced_seq.update(self._committed_seq)

    def _ready(self) -> list[_Waiter]:
        """Take the waiters whose records are now as durable as they asked (lock held)."""
        ready, self._waiters = _split(self._waiters, self._committed_seq, self._synced_seq)
        self._cond.notify_all()
        return ready

    def _commit(self, conn: sqlite3.Connection, batch: list[_Row | _Op], sync: bool) -> None:
        rows: list[_Row] = []
        ops: list[_Op] = []
        last: dict[str, tuple[int, float]] = {}
        try:
            if self._failure is not None:
                raise EventLogFailed(f"event log {self.path} failed: {self._failure}")
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                if isinstance(item, _Op):
                    self._insert(conn, rows)
                    rows = []
                    ops.append(item)
                    conn.execute("SAVEPOINT op")
                    try:
                        item.result = item.fn(conn)
                        conn.execute("RELEASE op")
                    except sqlite3.Error as exc:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        item.error = exc
                else:
                    rows.append(item)
                    last[item[0]] = (item[1], item[2])
            self._insert(conn, rows)
            conn.execute("COMMIT")
            if sync:
                self._fsync_wal()
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._fail(exc, [i for i in batch if isinstance(i, _Op)])
            return
        self._committed_batch(batch, last, ops, sync or self.sync != "full")

    def _insert(self, conn: sqlite3.Connection, rows: list[_Row]) -> None:
        """Insert ``rows`` by statements of many rows each: a statement lets go of the GIL
        once, where ``executemany`` does per row — and while the event loop is busy, each
        taking it back waits a switch interval (5 ms)."""
        done = 0
        for size, sql in _INSERTS:
            while len(rows) - done >= size:
                conn.execute(sql, [v for row in rows[done : done + size] for v in row])
                done += size

    def _committed_batch(
        self,
        batch: list[_Row | _Op],
        last: dict[str, tuple[int, float]],
        ops: list[_Op],
        sync: bool,
    ) -> None:
        n_rows = len(batch) - len(ops)
        with self._cond:
            self._committed += len(batch)
            for rid, (seq, _) in last.items():
                self._committed_seq[rid] = seq
            st = self._stats
            st["appends"] += n_rows
            st["commits"] += 1
            st["max_batch"] = max(st["max_batch"], n_rows)
            st["bytes"] += sum(len(r[6]) for r in batch if not isinstance(r, _Op))
            if sync:
                self._synced_all()
            else:
                self._unsynced = True
            ready = self._ready()
        for op in ops:
            op.done.set()
        _wake(ready, None)

    def _fail(self, exc: BaseException, ops: Iterable[_Op]) -> None:
        err = EventLogFailed(f"event log {self.path}: commit failed: {exc}")
        with self._cond:
            self._failure = self._failure or exc
            waiters, self._waiters, self._unsynced = self._waiters, [], False
            self._cond.notify_all()
        for op in ops:
            op.error = err
            op.done.set()
        _wake(waiters, err)


def _split(
    waiters: list[_Waiter], committed: dict[str, int], synced: dict[str, int]
) -> tuple[list[_Waiter], list[_Waiter]]:
    ready, rest = [], []
    for w in waiters:
        (ready if (synced if w[4] else committed).get(w[0], 0) >= w[1] else rest).append(w)
    return ready, rest


def _wake(waiters: list[_Waiter], error: BaseException | None) -> None:
    """Resolve waiters with one call per event loop (not one wake-up per record)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    for _, seq, loop, fut, _ in waiters:
        by_loop.setdefault(loop, []).append((fut, seq))

    def resolve(items: list[tuple[asyncio.Future[int], int]]) -> None:
        for fut, seq in items:
            if not fut.done():
                if error is None:
                    fut.set_result(seq)
                else:
                    fut.set_exception(error)

    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(resolve, items)
