"""Regressions for the vector tier: secrets, concurrent runs, duplicates and the bound.

Real files under ``tmp_path``; the concurrency tests run real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import axo
from axo.memory.embedders import HashingEmbedder
from axo.memory.facts import FactStore
from axo.memory.tiers import Combined, open_memory
from axo.memory.vector import VecItem, VectorIndex, VectorMemory

SECRET = "sk-qa-SUPERSECRET-123456"
ROOT = Path(__file__).resolve().parents[2]


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    )


def combined(folder: Path, capacity: int = 1000) -> Combined:
    facts = FactStore(folder / "facts.msgpack", capacity=capacity, sync=False)
    index = VectorIndex(folder / "vectors", dim=256, capacity=capacity, sync=False)
    return Combined(facts, VectorMemory(index, HashingEmbedder(), autosave=True))


# ---------------------------------------------------------------- 1. secrets


def test_secrets_are_redacted_before_the_vector_tier_embeds_or_stores_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXO_QA_VECTOR_SECRET", SECRET)
    wf = axo.load_workflow(
        "sec.yaml",
        text=(
            "providers:\n"
            "  fake: {type: openai, base_url: 'http://127.0.0.1:9', "
            "api_key: '${AXO_QA_VECTOR_SECRET}'}\n"
            "agents:\n  - {id: a, memory: {long_term: true, vector: true}}\n"
        ),
    )
    folder = tmp_path / "memory" / "sec"
    legacy = VectorMemory(VectorIndex(folder / "vectors", dim=64), HashingEmbedder(64))
    legacy.remember(f"an older run stored {SECRET}")  # as the vector tier did before
    legacy.save()
    assert files_holding(folder, SECRET.encode()) == ["vectors/index.axv"]

    mem = open_memory(wf, str(tmp_path))
    assert files_holding(tmp_path, SECRET.encode()) == []  # cleaned when opened
    mem.remember(f"the api key is {SECRET}", (f"key:{SECRET}",), agent="a")
    mem.save()

    assert files_holding(tmp_path, SECRET.encode()) == []
    index = mem.vectors.index
    assert [(i.text, i.tags) for i in index.items] == [("the api key is ***", ("key:***",))]
    # the stored vector is the redacted text's: nothing derived from the secret is kept
    clean = mem.vectors.embedder.embed(["the api key is ***"])[0]
    assert np.allclose(index.vectors[0], clean, atol=1e-6)
    assert all(SECRET not in f.text for f in mem.recall("api key", 5))


def test_a_standalone_vector_memory_redacts_and_cleans_an_older_index(tmp_path: Path) -> None:
    old = VectorMemory(VectorIndex(tmp_path, dim=64, sync=False), HashingEmbedder(64))
    old.remember("the password is s3cr3t", ("s3cr3t",))  # saved before redaction applied
    old.save()
    assert files_holding(tmp_path, b"s3cr3t")

    redact = lambda t: t.replace("s3cr3t", "***")  # noqa: E731
    mem = VectorMemory(
        VectorIndex(tmp_path, dim=64, sync=False), HashingEmbedder(64), redact=redact
    )
    mem.remember("the token is s3cr3t too")
    mem.save()
    assert files_holding(tmp_path, b"s3cr3t") == []
    assert sorted(i.text for i in mem.index.items) == [
        "the password is ***",
        "the token is *** too",
    ]
    want = HashingEmbedder(64).embed([i.text for i in mem.index.items])
    assert np.allclose(mem.index.vectors, want, atol=1e-6)


# ---------------------------------------------------------------- 2. concurrent saves


def test_two_indexes_saving_one_folder_keep_each_others_items(tmp_path: Path) -> None:
    a = VectorIndex(tmp_path, dim=2, sync=False)
    b = VectorIndex(tmp_path, dim=2, sync=False)
    a.add(np.array([1.0, 0.0]), VecItem(text="a1"))
    a.save()
    b.add(np.array([0.0, 1.0]), VecItem(text="b1"))
    b.save()
    a.add(np.array([1.0, 1.0]), VecItem(text="a2"))
    a.remove(0)  # a1, removed here: merging b's save must not bring it back
    a.save()
    again = VectorIndex(tmp_path, dim=2)
    assert sorted(i.text for i in again.items) == ["a2", "b1"]
    assert not again.stale and again.warnings == []
    rows = {i.text: v for i, v in zip(again.items, again.vectors, strict=True)}
    assert np.allclose(rows["b1"], [0.0, 1.0]) and np.allclose(rows["a2"], [0.5**0.5] * 2)
    assert len(list(tmp_path.glob("vectors-*.npy"))) == 1


WRITER = textwrap.dedent(
    """
    import sys
    from axo.memory.embedders import HashingEmbedder
    from axo.memory.vector import VectorIndex, VectorMemory

    folder, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mem = VectorMemory(VectorIndex(folder, dim=64), HashingEmbedder(64), autosave=True)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every writer at once
    i = 0
    while n < 0 or i < n:
        mem.remember(f"writer {tag} noted fact {i} about zebra{tag}x{i}")
        print(i + 1, flush=True)
        i += 1
    """
)


def start_writer(folder: Path, tag: str, n: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), tag, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def assert_consistent(index: VectorIndex) -> None:
    assert not index.stale and index.warnings == []
    want = HashingEmbedder(64).embed([i.text for i in index.items])
    assert np.allclose(index.vectors, want, atol=1e-6)  # every row still belongs to its item


def test_concurrent_processes_lose_no_vector_entries(tmp_path: Path) -> None:
    each, tags = 25, ("a", "b", "c")
    procs = [start_writer(tmp_path, t, each) for t in tags]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    index = VectorIndex(tmp_path, dim=64, model="hashing-64")
    assert {i.text for i in index.items} == {
        f"writer {t} noted fact {i} about zebra{t}x{i}" for t in tags for i in range(each)
    }
    assert len(index) == len(tags) * each
    assert_consistent(index)
    assert [p.name for p in tmp_path.glob("vectors-*.npy")] == [index._seen]


def test_a_writer_killed_mid_save_leaves_a_readable_index(tmp_path: Path) -> None:
    with start_writer(tmp_path, "k", -1) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        while int(proc.stdout.readline()) < 20:
            pass
        os.kill(proc.pid, signal.SIGKILL)  # lands somewhere in a later remember/save
        proc.wait(timeout=60)
    index = VectorIndex(tmp_path, dim=64, model="hashing-64")
    assert len(index) >= 20
    assert_consistent(index)
    mem = VectorMemory(index, HashingEmbedder(64))
    mem.remember("after the crash")
    mem.save()  # leftovers of the killed save are cleared under the lock
    assert len(list(tmp_path.glob("vectors-*.npy"))) == 1
    assert list(tmp_path.glob(".tmp-*")) == []
    assert_consistent(VectorIndex(tmp_path, dim=64, model="hashing-64"))


# ---------------------------------------------------------------- 3. duplicates and bound


def test_near_duplicates_are_one_vector_item_as_they_are_one_fact(tmp_path: Path) -> None:
    mem = combined(tmp_path)
    mem.remember("The deploy window is Tuesday at 14:00", ("ops",))
    mem.remember("the deploy window is tuesday at 14:00.", ("ops",))
    mem.remember("The deploy window is on Tuesday at 14:00", ("release",))
    assert [f.text for f in mem.facts.facts()] == ["The deploy window is Tuesday at 14:00"]
    items = mem.vectors.index.items
    assert [(i.text, i.tags) for i in items] == [
        ("The deploy window is Tuesday at 14:00", ("ops", "release"))
    ]
    assert [f.text for f in mem.recall("deploy window", 5)] == [
        "The deploy window is Tuesday at 14:00"
    ]


def test_facts_evicted_by_the_store_leave_the_vector_index(tmp_path: Path) -> None:
    mem = combined(tmp_path, capacity=3)
    mem.remember("The deploy window is Tuesday at 14:00", ("ops",))
    mem.remember("the deploy window is Tuesday at 14:00", ("ops",))  # 2 hits: the store keeps it
    for i in range(5):
        mem.remember(f"unrelated fact number {i} about llamas{i}")
    kept = {f.text for f in mem.facts.facts()}
    assert len(kept) == 3 and "The deploy window is Tuesday at 14:00" in kept
    assert {i.text for i in mem.vectors.index.items} == kept
    assert all(f.text in kept for f in mem.recall("deploy window tuesday", 5))
    on_disk = VectorIndex(tmp_path / "vectors", dim=256)
    assert {i.text for i in on_disk.items} == kept and len(on_disk) == 3


def test_two_runs_leave_the_vector_index_holding_the_saved_facts(tmp_path: Path) -> None:
    a, b = combined(tmp_path, capacity=4), combined(tmp_path, capacity=4)
    for i in range(4):
        a.remember(f"run a learned lesson {i} about kiwis{i}")
        b.remember(f"run b learned lesson {i} about mangos{i}")
    b.remember("run b learned lesson 0 about mangos0!")  # a duplicate: a hit, no new fact
    saved = {f.text for f in FactStore(tmp_path / "facts.msgpack").facts()}
    assert len(saved) == 4
    on_disk = VectorIndex(tmp_path / "vectors", dim=256)
    assert sorted(i.text for i in on_disk.items) == sorted(saved)


def test_an_index_that_drifted_from_the_facts_is_brought_back_on_open(tmp_path: Path) -> None:
    facts = FactStore(tmp_path / "facts.msgpack", sync=False)
    facts.remember("The deploy window is Tuesday at 14:00")
    facts.remember("Invoices are emailed on the first of the month")
    old = VectorMemory(VectorIndex(tmp_path / "vectors", dim=256), HashingEmbedder())
    old.remember("The deploy window is Tuesday at 14:00")
    old.remember("the deploy window is tuesday at 14:00.")  # a duplicate the facts merged
    old.remember("a fact the store evicted long ago")
    old.save()
    mem = combined(tmp_path)
    want = {f.text for f in facts.facts()}
    assert {i.text for i in mem.vectors.index.items} == want
    assert {i.text for i in VectorIndex(tmp_path / "vectors", dim=256).items} == want
