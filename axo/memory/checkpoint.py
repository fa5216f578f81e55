"""Per-agent checkpoints: an agent's state after each turn, newest few kept, crash-safe.

Boundary: this module writes and reads opaque states (a msgspec Struct or a dict) for named
agents; it does not know what a state contains or when the runtime takes one. It also owns
the checksummed file frame and the atomic write that the other on-disk memory tiers reuse.

Layout: ``<dir>/<agent, percent-quoted>/<turn:012d>.ckpt``. A save writes a temp file, fsyncs
it, renames it into place and fsyncs the directory, so a crash leaves the old file or the new
one, never half of one. Then all but the newest ``keep`` (3) checkpoints of that agent are
deleted: storage per agent is bounded by ``keep`` states, whatever the run's length.

Without ``sync`` (a run's store: the run's event log is its durable record, see
``axo.runtime.journal``) nothing is fsynced: a crash of the process still leaves whole files
(the rename is atomic, the data is in the page cache); after power loss the newest files may
be missing or torn, and a torn one (empty, short, zeroed) fails the frame's checks and is
skipped for an older one, as any corrupt checkpoint is.

Frame: ``b"AXO1"``, CRC32 of the body (4 bytes, little endian), body length (8 bytes), body
(msgpack). ``latest()`` reads newest first and falls back to an older checkpoint when a newer
one is truncated, fails its checksum or does not decode as the requested type; each file it
skipped is recorded in ``warnings`` (and returned by ``load_latest``) with the reason.

``CheckpointWriter`` saves into a store on a thread of its own, for callers on an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import msgspec

MAGIC = b"AXO1"
_HEAD = struct.Struct("<4sIQ")
_SUFFIX = ".ckpt"
T = TypeVar("T")


class CorruptFile(Exception):
    """A framed file is truncated, has a bad header or fails its checksum."""


def frame(body: bytes) -> bytes:
    """Prefix ``body`` with the magic, its CRC32 and its length."""
    return _HEAD.pack(MAGIC, zlib.crc32(body), len(body)) + body


def unframe(data: bytes) -> bytes:
    """Return the body of a framed file, verified.

    Raises:
        CorruptFile: with the reason (bad magic, truncated, checksum mismatch, trailing bytes).
    """
    if len(data) < _HEAD.size:
        raise CorruptFile(f"truncated header ({len(data)} of {_HEAD.size} bytes)")
    magic, crc, size = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CorruptFile(f"bad magic {magic!r}")
    body = data[_HEAD.size :]
    if len(body) < size:
        raise CorruptFile(f"truncated body ({len(body)} of {size} bytes)")
    if len(body) > size:
        raise CorruptFile(f"{len(body) - size} unexpected trailing bytes")
    if zlib.crc32(body) != crc:
        raise CorruptFile("checksum mismatch")
    return body


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new content."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """A checkpoint ``latest`` did not use, and why."""

    agent: str
    path: str
    reason: str


class Loaded(msgspec.Struct, frozen=True, kw_only=True):
    """The state ``load_latest`` found, where, and what it skipped to get there."""

    state: Any
    path: str
    turn: int
    skipped: list[Skipped] = []


class CheckpointStore:
    """The newest ``keep`` states of each agent under one directory (a run's, typically)."""

    def __init__(
        self, directory: str | os.PathLike[str], *, keep: int = 3, sync: bool = True
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.dir = Path(directory)
        self.keep, self.sync = keep, sync
        self.warnings: list[Skipped] = []
        self._saved: dict[str, tuple[Path, list[tuple[int, Path]]]] = {}  # folder, files
        self._stats = {"saves": 0, "bytes_written": 0, "deleted": 0, "loads": 0, "skipped": 0}

    def _agent_dir(self, agent: str) -> Path:
        if not agent:
            raise ValueError("agent must be a non-empty name")
        return self.dir / quote(agent, safe="")

    def _files(self, agent: str) -> list[tuple[int, Path]]:
        """The agent's checkpoint files, oldest first (temp files are not listed)."""
        d = self._agent_dir(agent)
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            if p.suffix == _SUFFIX and p.stem.isdigit():
                out.append((int(p.stem), p))
        return sorted(out)

    def save(self, agent: str, state: msgspec.Struct | dict[str, Any]) -> Path:
        """Write ``state`` as the agent's newest checkpoint; keep only the newest ``keep``."""
        return self.save_encoded(agent, msgspec.msgpack.encode(state))

    def save_encoded(self, agent: str, body: bytes) -> Path:
        """``save`` for a state already encoded as msgpack.

        The agent's folder is listed (and cleared of temp files a crash left) at its first save
        only, and only if it existed: one process writes a run's checkpoints, so later saves
        know the files."""
        known = self._saved.get(agent)
        if known is None:
            d = self._agent_dir(agent)
            try:
                d.mkdir(parents=True)
                known = (d, [])
            except FileExistsError:
                for tmp in d.glob(".tmp-*"):
                    tmp.unlink(missing_ok=True)
                known = (d, self._files(agent))
            self._saved[agent] = known
        d, files = known
        turn = (files[-1][0] if files else 0) + 1
        data = frame(body)
        path = d / f"{turn:012d}{_SUFFIX}"
        atomic_write(path, data, sync=self.sync)
        files.append((turn, path))
        self._stats["saves"] += 1
        self._stats["bytes_written"] += len(data)
        while len(files) > self.keep:
            files.pop(0)[1].unlink(missing_ok=True)
            self._stats["deleted"] += 1
        return path

    def load_latest(self, agent: str, type: type[T] | None = None) -> Loaded | None:
        """Return the newest good checkpoint of ``agent`` (decoded as ``type``), or None."""
        self._stats["loads"] += 1
        skipped: list[Skipped] = []
        for turn, path in reversed(self._files(agent)):
            try:
                body = unframe(path.read_bytes())
                state = (
                    msgspec.msgpack.decode(body)
                    if type is None
                    else msgspec.msgpack.decode(body, type=type)
                )
            except (OSError, CorruptFile, msgspec.DecodeError) as exc:
                skipped.append(Skipped(agent=agent, path=str(path), reason=str(exc)))
                continue
            self._record(skipped)
            return Loaded(state=state, path=str(path), turn=turn, skipped=skipped)
        self._record(skipped)
        return None

    def latest(self, agent: str, type: type[T] | None = None) -> Any:
        """Return the newest good state of ``agent``, or None; skipped files go to ``warnings``."""
        loaded = self.load_latest(agent, type)
        return None if loaded is None else loaded.state

    def agents(self) -> list[str]:
        """Agents with at least one checkpoint file."""
        if not self.dir.is_dir():
            return []
        return sorted(
            unquote(p.name) for p in self.dir.iterdir() if p.is_dir() and any(p.glob(f"*{_SUFFIX}"))
        )

    def _record(self, skipped: list[Skipped]) -> None:
        self.warnings.extend(skipped)
        self._stats["skipped"] += len(skipped)

    def statistics(self) -> dict[str, int]:
        """Saves, bytes written, files deleted by rotation, loads, files skipped, bytes on disk."""
        on_disk = files = 0
        if self.dir.is_dir():
            for p in self.dir.glob(f"*/*{_SUFFIX}"):
                files += 1
                on_disk += p.stat().st_size
        return {**self._stats, "files": files, "bytes_on_disk": on_disk}


class CheckpointWriter:
    """Saves into ``store`` on a thread of its own, so that a caller on an event loop does not
    wait for the disk (each save is a create, a write, a rename and an unlink).

    ``save`` encodes the state at once (later changes to the object are not saved) and queues
    it. A state queued while an older one of the same agent still waits replaces it: the older
    would only be rotated out behind it, and nothing reads an agent's states but its newest.
    A save that fails does not fail its caller (a checkpoint is a copy of what the event log
    holds): the reason is kept in ``failures``. ``written`` awaits what is queued so far;
    ``close`` writes what is queued, and a save after it is written at once, by the caller.
    """

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.failures: list[str] = []
        self._cond = threading.Condition()
        self._pending: dict[str, bytes] = {}
        self._queued = self._written = 0  # tickets: saves queued / written (or failed) so far
        self._waiting: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._thread: threading.Thread | None = None  # started by the first save

    def save(self, agent: str, state: msgspec.Struct | dict[str, Any]) -> None:
        """Queue ``state`` as the agent's newest checkpoint."""
        body = msgspec.msgpack.encode(state)
        with self._cond:
            if not self._closing:
                self._pending.pop(agent, None)
                self._pending[agent] = body
                self._queued += 1
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_loop, name="axo-checkpoints", daemon=True
                    )
                    self._thread.start()
                elif len(self._pending) == 1:  # the thread waits for a first state
                    self._cond.notify()
                return
        self._write(agent, body)

    async def written(self) -> None:
        """Return once every state queued so far is written (or its failure kept)."""
        with self._cond:
            if self._written >= self._queued:
                return
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            self._waiting.append((self._queued, loop, done))
        await done

    def close(self) -> None:
        """Write what is queued and stop the thread (a second call does nothing)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                batch, self._pending = self._pending, {}
                upto = self._queued
            if not batch:
                return
            for agent, body in batch.items():
                self._write(agent, body)
            with self._cond:
                self._written = upto
                ready = [w for w in self._waiting if w[0] <= upto]
                self._waiting = [w for w in self._waiting if w[0] > upto]
            for _, loop, done in ready:
                with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits
                    loop.call_soon_threadsafe(_settle, done)

    def _write(self, agent: str, body: bytes) -> None:
        try:
            self.store.save_encoded(agent, body)
        except Exception as exc:  # reported, never fatal: see the class docstring
            self.failures.append(f"checkpoint of '{agent}': {exc}")


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
