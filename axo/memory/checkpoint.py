"""Per-agent checkpoints: an agent's state after each turn, newest few kept, crash-safe.

Boundary: this module writes and reads opaque states (a msgspec Struct or a dict) for named
agents; it does not know what a state contains or when the runtime takes one. It also owns
the checksummed file frame and the atomic write that the other on-disk memory tiers reuse.

Layout: ``<dir>/<agent, percent-quoted>/<turn:012d>.ckpt``. A save writes a temp file, fsyncs
it, renames it into place and fsyncs the directory, so a crash leaves the old file or the new
one, never half of one. Then all but the newest ``keep`` (3) checkpoints of that agent are
deleted: storage per agent is bounded by ``keep`` states, whatever the run's length.

Frame: ``b"AXO1"``, CRC32 of the body (4 bytes, little endian), body length (8 bytes), body
(msgpack). ``latest()`` reads newest first and falls back to an older checkpoint when a newer
one is truncated, fails its checksum or does not decode as the requested type; each file it
skipped is recorded in ``warnings`` (and returned by ``load_latest``) with the reason.
"""

from __future__ import annotations

import os
import struct
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
    with open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
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
        self._turn: dict[str, int] = {}
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
        d = self._agent_dir(agent)
        d.mkdir(parents=True, exist_ok=True)
        files = self._files(agent)
        turn = max(self._turn.get(agent, 0), files[-1][0] if files else 0) + 1
        data = frame(msgspec.msgpack.encode(state))
        path = d / f"{turn:012d}{_SUFFIX}"
        atomic_write(path, data, sync=self.sync)
        self._turn[agent] = turn
        self._stats["saves"] += 1
        self._stats["bytes_written"] += len(data)
        for _, old in files[: max(0, len(files) + 1 - self.keep)]:
            old.unlink(missing_ok=True)
            self._stats["deleted"] += 1
        for tmp in d.glob(".tmp-*"):  # left by a crash during an earlier save
            tmp.unlink(missing_ok=True)
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
