from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from axo.llm.base import ChatMessage
from axo.memory.base import MemoryPort
from axo.memory.checkpoint import frame
from axo.memory.facts import FactStore, distill_prompt, parse_distilled

DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def facts(tmp_path: Path, clock: Clock | None = None, **kw: object) -> FactStore:
    return FactStore(tmp_path / "facts.axf", clock=clock or Clock(), sync=False, **kw)  # type: ignore[arg-type]


def test_it_is_a_memory_port(tmp_path: Path) -> None:
    port: MemoryPort = facts(tmp_path)
    fact = port.remember(
        "The API is rate limited to 10 requests per second", ("api",), agent="scout"
    )
    assert (fact.text, fact.tags, fact.agent) == (
        "The API is rate limited to 10 requests per second",
        ("api",),
        "scout",
    )
    assert port.recall("rate limit of the api") == [fact]


def test_the_same_text_modulo_case_and_punctuation_is_merged(tmp_path: Path) -> None:
    clock = Clock()
    s = facts(tmp_path, clock)
    s.remember("Deploys happen on Fridays.", ("ops",))
    clock.now += 60
    merged = s.remember("deploys happen on fridays", ("calendar", "ops"))
    assert merged.text == "Deploys happen on Fridays." and merged.tags == ("ops", "calendar")
    assert merged.at == clock.now
    assert s.statistics()["facts"] == 1 and s.statistics()["merged"] == 1


def test_near_duplicates_merge_and_different_facts_do_not(tmp_path: Path) -> None:
    s = facts(tmp_path)
    s.remember("the billing service stores invoices in postgres database tables")
    # 9 of 10 words shared: Jaccard 0.9 ≥ 0.8
    s.remember("the billing service stores invoices in postgres database")
    assert len(s.facts()) == 1
    # 5 shared of 12: a different fact
    s.remember("the billing service sends invoices by email every month")
    assert len(s.facts()) == 2


def test_recall_ranks_by_relevance_and_ignores_facts_without_a_match(tmp_path: Path) -> None:
    s = facts(tmp_path)
    s.remember("Python 3.11 is the minimum supported version")
    s.remember("The staging database is reset every night")
    s.remember("The production database runs PostgreSQL 16 with a read replica")
    s.remember("Use the staging database for load tests")
    got = [f.text for f in s.recall("production database replica", k=5)]
    assert got[0] == "The production database runs PostgreSQL 16 with a read replica"
    assert "Python 3.11 is the minimum supported version" not in got
    assert s.recall("kubernetes") == [] and s.recall("") == []


def test_a_query_word_that_is_a_tag_counts(tmp_path: Path) -> None:
    s = facts(tmp_path)
    s.remember("Retries use exponential backoff", ("networking",))
    s.remember("Networking code lives in the transport module")
    s.remember("Timeouts default to thirty seconds", ("networking", "http"))
    got = [f.text for f in s.recall("http networking")]
    assert got[0] == "Timeouts default to thirty seconds"
    assert set(got) == {
        "Retries use exponential backoff",
        "Networking code lives in the transport module",
        "Timeouts default to thirty seconds",
    }


def test_between_equally_relevant_facts_the_recent_and_the_often_seen_win(tmp_path: Path) -> None:
    clock = Clock()
    s = facts(tmp_path, clock)
    s.remember("cache keys use the tenant id")
    clock.now += 90 * DAY
    s.remember("cache entries expire after an hour")
    assert s.recall("cache")[0].text == "cache entries expire after an hour"
    for _ in range(30):
        s.remember("cache keys use the tenant id")  # seen again and again
    assert s.recall("cache")[0].text == "cache keys use the tenant id"


def test_the_fact_with_the_lowest_decayed_hits_is_evicted(tmp_path: Path) -> None:
    clock = Clock()
    s = facts(tmp_path, clock, capacity=3)
    s.remember("alpha fact about queues")
    s.remember("alpha fact about queues")  # hits 2
    s.remember("beta fact about caches")
    clock.now += 10 * DAY
    s.remember("gamma fact about logs")
    s.remember("delta fact about metrics")  # full: the old single-hit beta goes
    assert {f.text for f in s.facts()} == {
        "alpha fact about queues",
        "gamma fact about logs",
        "delta fact about metrics",
    }
    assert s.statistics()["evicted"] == 1


def test_a_new_fact_is_never_its_own_eviction_victim(tmp_path: Path) -> None:
    clock = Clock()
    s = facts(tmp_path, clock, capacity=1)
    for _ in range(5):
        s.remember("old and popular")
    clock.now += 1000 * DAY
    s.remember("brand new")
    assert [f.text for f in s.facts()] == ["brand new"]


words = st.sampled_from(
    ["red", "green", "blue", "cat", "dog", "fish", "one", "two", "three", "four"]
)


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.lists(words, min_size=1, max_size=5).map(" ".join), max_size=40),
    capacity=st.integers(1, 8),
    query=st.lists(words, min_size=1, max_size=3),
)
def test_the_store_stays_bounded_and_recall_returns_only_stored_facts(
    texts: list[str], capacity: int, query: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        s = FactStore(Path(tmp) / "f.axf", capacity=capacity, clock=clock, autosave=False)
        for t in texts:
            clock.now += 3600
            s.remember(t)
            assert len(s.facts()) <= capacity
        held = {f.text for f in s.facts()}
        recalled = s.recall(" ".join(query), k=capacity)
        assert {f.text for f in recalled} <= held
        assert len({f.text for f in recalled}) == len(recalled)
        s.save()
        again = FactStore(Path(tmp) / "f.axf", capacity=capacity, clock=clock)
        assert {f.text for f in again.facts()} == held


def test_facts_survive_a_reopen(tmp_path: Path) -> None:
    s = facts(tmp_path)
    s.remember("The on-call rotation changes on Mondays", ("ops",), agent="lead")
    again = facts(tmp_path)
    assert again.facts() == s.facts()
    assert again.recall("on-call rotation")[0].agent == "lead"


def test_a_corrupt_file_is_set_aside_and_the_store_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "facts.axf"
    s = facts(tmp_path)
    s.remember("something worth keeping")
    path.write_bytes(path.read_bytes()[:-3])
    again = facts(tmp_path)
    assert again.facts() == []
    assert "truncated body" in again.warnings[0]
    assert (tmp_path / "facts.axf.corrupt").exists()
    path.write_bytes(frame(b"\xc1not msgpack"))
    assert "corrupt" in " ".join(facts(tmp_path).warnings).lower()


def test_two_runs_saving_the_same_file_keep_each_others_facts(tmp_path: Path) -> None:
    a, b = facts(tmp_path), facts(tmp_path)
    a.remember("fact from run a")
    b.remember("fact from run b")
    a.remember("run a also learned this")
    assert {f.text for f in facts(tmp_path).facts()} == {
        "fact from run a",
        "fact from run b",
        "run a also learned this",
    }


def test_redaction_applies_to_text_and_tags(tmp_path: Path) -> None:
    s = facts(tmp_path, redact=lambda t: t.replace("s3cr3t", "***"))
    f = s.remember("the password is s3cr3t", ("s3cr3t",))
    assert (f.text, f.tags) == ("the password is ***", ("***",))
    assert b"s3cr3t" not in (tmp_path / "facts.axf").read_bytes()


def test_the_distillation_prompt_holds_the_session_and_the_answer_format() -> None:
    msgs = [
        ChatMessage(role="system", content="You review code."),
        ChatMessage(role="user", content="Check   module\nfoo"),
        {"role": "assistant", "content": "Module foo has no tests."},
    ]
    prompt = distill_prompt(msgs, max_facts=3)
    assert "at most 3 facts" in prompt and 'starting with "- "' in prompt
    assert "user: Check module foo" in prompt
    assert "assistant: Module foo has no tests." in prompt
    long = distill_prompt([{"role": "user", "content": "old " * 5000 + "RECENT"}], max_chars=100)
    assert "RECENT" in long and len(long) < 1200


def test_parsing_keeps_bullets_and_drops_chatter_none_and_repeats() -> None:
    text = """Here are the facts:
- The build uses **make**.
* Tests run with pytest.
1. Deploys are manual.
2) The build uses make
• Logs go to /var/log/app.
- NONE
Thanks!"""
    assert parse_distilled(text) == [
        "The build uses **make**.",
        "Tests run with pytest.",
        "Deploys are manual.",
        "Logs go to /var/log/app.",
    ]
    assert parse_distilled("- NONE") == []
    assert parse_distilled("- " + "word " * 100, max_len=20) == ["word word word word…"]
    assert len(parse_distilled("\n".join(f"- fact {i}" for i in range(20)), max_facts=4)) == 4
