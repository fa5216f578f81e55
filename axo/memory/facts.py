"""Long-term facts shared by the runs of one workflow: a bounded, ranked store on disk.

Boundary: this module stores short texts with tags, merges duplicates, ranks them for a query,
evicts the least useful when full, and saves atomically. It does not call an LLM: it only builds
the distillation prompt (``distill_prompt``) and parses the answer (``parse_distilled``); the
agent that owns the conversation makes the call. Where the file lives is the caller's choice
(one per workflow, e.g. ``<state_dir>/facts/<workflow>.axf``).

Duplicates: a new text whose normalized form (lower-case words joined by spaces) equals a
stored fact's, or whose word set has Jaccard similarity ≥ 0.8 with it, is merged into that
fact: tags are united, ``hits`` is incremented and ``last_seen`` moves to now; the stored text
stays.

Ranking (``recall``): BM25 over the facts' words (k1 = 1.2, b = 0.75) plus, for each query word
that is a word of a tag, its IDF (a tag match counts as much as a rare word). A fact with no
match is never returned. That relevance is multiplied by ``1 + 0.1·ln(hits)`` (facts seen
often) and by ``0.5 + 0.5·2^(-age/half_life)`` (recent facts, age since ``last_seen``);
ties go to the most recently seen. ``recall`` does not change the store.

Eviction: at most ``capacity`` facts. Adding one more evicts the fact with the lowest
retention ``hits · 2^(-age/half_life)`` (ties: the least recently seen) — never the fact
being added.

Saving: the file is a checksummed frame (see ``checkpoint.frame``) written by ``atomic_write``.
If another process saved the file since this store read it, its facts are merged in first
(under an ``flock`` on ``<path>.lock``; hits take the larger count, so a merge never
over-counts). A corrupt file is renamed to ``<path>.corrupt`` and the store starts empty,
with a warning in ``warnings``. ``saved_facts`` reads the file as saved (the vector tier
follows it: see ``tiers.Combined``).
"""

from __future__ import annotations

import fcntl
import heapq
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from axo.memory.base import Fact
from axo.memory.checkpoint import CorruptFile, atomic_write, frame, unframe

_WORD = re.compile(r"[a-z0-9]+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+(.+?)\s*$")
K1, B, TAG_WEIGHT, NEAR_DUPLICATE = 1.2, 0.75, 1.0, 0.8


class StoredFact(msgspec.Struct, kw_only=True):
    text: str
    tags: tuple[str, ...] = ()
    agent: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    hits: int = 1


class _FactFile(msgspec.Struct, kw_only=True):
    version: int = 1
    facts: list[StoredFact] = []


class _Entry:
    __slots__ = ("fact", "length", "norm", "tag_words", "tf", "word_set")

    def __init__(self, fact: StoredFact) -> None:
        tokens = _WORD.findall(fact.text.lower())
        self.fact = fact
        self.norm = " ".join(tokens) or fact.text.strip().lower()
        self.tf = Counter(tokens)
        self.length = len(tokens)
        self.word_set = frozenset(self.tf)
        self.tag_words = frozenset(w for t in fact.tags for w in _WORD.findall(t.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class FactStore:
    """Facts of one workflow on disk; implements ``MemoryPort``. See the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        capacity: int = 1000,
        half_life_s: float = 30 * 86_400.0,
        clock: Callable[[], float] = time.time,
        autosave: bool = True,
        sync: bool = True,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path = Path(path)
        self.capacity, self.half_life = capacity, half_life_s
        self._clock, self.autosave, self.sync, self._redact = clock, autosave, sync, redact
        self.warnings: list[str] = []
        self._entries: dict[int, _Entry] = {}
        self._by_norm: dict[str, int] = {}
        self._postings: dict[str, set[int]] = {}
        self._tag_postings: dict[str, set[int]] = {}
        self._next_id = 0
        self._total_len = 0
        self._seen_file: tuple[int, int] | None = None
        self._stats = {"remembered": 0, "merged": 0, "evicted": 0, "saves": 0, "recalls": 0}
        self._load()

    # ------------------------------------------------------------------ MemoryPort

    def remember(self, text: str, tags: tuple[str, ...] = (), *, agent: str = "") -> Fact:
        """Store ``text`` (or merge it into its duplicate) and return the stored fact."""
        if self._redact is not None:
            text, tags = self._redact(text), tuple(self._redact(t) for t in tags)
        now = self._clock()
        new = StoredFact(
            text=text.strip(),
            tags=tuple(dict.fromkeys(tags)),
            agent=agent,
            first_seen=now,
            last_seen=now,
        )
        fid = self._absorb(new, count_hit=True)
        self._stats["remembered"] += 1
        self._evict(keep=fid)
        if self.autosave:
            self.save()
        return _public(self._entries[fid].fact)

    def recall(self, query: str, k: int = 5) -> list[Fact]:
        """Return up to ``k`` facts ranked for ``query`` (see the module docstring)."""
        self._stats["recalls"] += 1
        q = set(_WORD.findall(query.lower()))
        n = len(self._entries)
        if not q or not n or k <= 0:
            return []
        avg = self._total_len / n or 1.0
        now = self._clock()
        scores: dict[int, float] = {}
        for w in q:
            posting = self._postings.get(w, set())
            tagged = self._tag_postings.get(w, set())
            if not posting and not tagged:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for fid in posting:
                e = self._entries[fid]
                tf = e.tf[w]
                scores[fid] = scores.get(fid, 0.0) + idf * tf * (K1 + 1) / (
                    tf + K1 * (1 - B + B * e.length / avg)
                )
            for fid in tagged:
                scores[fid] = scores.get(fid, 0.0) + TAG_WEIGHT * idf
        ranked = sorted(
            (
                (
                    s * (1 + 0.1 * math.log(e.fact.hits)) * self._recency(e.fact, now),
                    e.fact.last_seen,
                    fid,
                )
                for fid, s in scores.items()
                for e in (self._entries[fid],)
            ),
            key=lambda t: (-t[0], -t[1], t[2]),
        )
        return [_public(self._entries[fid].fact) for _, _, fid in ranked[:k]]

    def facts(self) -> list[Fact]:
        """Every stored fact, oldest first."""
        return [_public(e.fact) for e in self._entries.values()]

    # ------------------------------------------------------------------ bookkeeping

    def _recency(self, fact: StoredFact, now: float) -> float:
        return 0.5 + 0.5 * 2.0 ** (-max(0.0, now - fact.last_seen) / self.half_life)

    def _find(self, entry: _Entry) -> int | None:
        fid = self._by_norm.get(entry.norm)
        if fid is not None:
            return fid
        a = entry.word_set
        if not a:
            return None
        candidates: set[int] = set()
        for w in a:
            candidates |= self._postings.get(w, set())
        best, best_j = None, NEAR_DUPLICATE
        for cid in candidates:
            other = self._entries[cid].word_set
            if min(len(a), len(other)) < NEAR_DUPLICATE * max(len(a), len(other)):
                continue  # sizes alone rule out Jaccard ≥ 0.8
            j = jaccard(a, other)
            if j >= best_j:
                best, best_j = cid, j
        return best

    def _absorb(self, fact: StoredFact, *, count_hit: bool) -> int:
        """Add ``fact`` or merge it into its duplicate; return the id that holds it."""
        entry = _Entry(fact)
        fid = self._find(entry)
        if fid is None:
            fid, self._next_id = self._next_id, self._next_id + 1
            self._entries[fid] = entry
            self._by_norm[entry.norm] = fid
            self._total_len += entry.length
            for w in entry.word_set:
                self._postings.setdefault(w, set()).add(fid)
            for w in entry.tag_words:
                self._tag_postings.setdefault(w, set()).add(fid)
            return fid
        old = self._entries[fid]
        f = old.fact
        f.tags = tuple(dict.fromkeys(f.tags + fact.tags))
        f.hits = f.hits + 1 if count_hit else max(f.hits, fact.hits)
        f.last_seen = max(f.last_seen, fact.last_seen)
        f.first_seen = min(f.first_seen, fact.first_seen)
        old.tag_words = _Entry(f).tag_words
        for w in old.tag_words:
            self._tag_postings.setdefault(w, set()).add(fid)
        self._stats["merged"] += 1
        return fid

    def _retention(self, fid: int, now: float) -> tuple[float, float, int]:
        f = self._entries[fid].fact
        age = max(0.0, now - f.last_seen)
        return (f.hits * 2.0 ** (-age / self.half_life), f.last_seen, fid)

    def _evict(self, keep: int | None = None) -> None:
        excess = len(self._entries) - self.capacity
        if excess <= 0:
            return
        now = self._clock()
        victims = heapq.nsmallest(
            excess,
            (fid for fid in self._entries if fid != keep),
            key=lambda fid: self._retention(fid, now),
        )
        for victim in victims:
            e = self._entries.pop(victim)
            del self._by_norm[e.norm]
            self._total_len -= e.length
            for index, ws in ((self._postings, e.word_set), (self._tag_postings, e.tag_words)):
                for w in ws:
                    index[w].discard(victim)
                    if not index[w]:
                        del index[w]
            self._stats["evicted"] += 1

    # ------------------------------------------------------------------ the file

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read(self) -> list[StoredFact]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return msgspec.msgpack.decode(unframe(data), type=_FactFile).facts
        except (CorruptFile, msgspec.DecodeError) as exc:
            bad = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, bad)
            self.warnings.append(f"{self.path}: {exc}; moved to {bad.name}, starting empty")
            return []

    def _load(self) -> None:
        for f in self._read():
            self._absorb(f, count_hit=False)
        self._evict()
        self._seen_file = self._file_id()

    def saved_facts(self) -> list[Fact] | None:
        """The facts in the file as it is now; None if it is missing or unreadable.

        Unlike loading, this never moves a corrupt file aside: other tiers (the vector index)
        read it to follow what the store last saved.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            stored = msgspec.msgpack.decode(unframe(data), type=_FactFile).facts
        except (CorruptFile, msgspec.DecodeError):
            return None
        return [_public(f) for f in stored]

    def save(self) -> None:
        """Write the store atomically, merging in facts another process saved meanwhile."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._file_id() != self._seen_file:
                for f in self._read():
                    self._absorb(f, count_hit=False)
                self._evict()
            body = msgspec.msgpack.encode(_FactFile(facts=[e.fact for e in self._entries.values()]))
            atomic_write(self.path, frame(body), sync=self.sync)
            self._seen_file = self._file_id()
        self._stats["saves"] += 1

    def statistics(self) -> dict[str, int]:
        """Facts held, capacity, and counts of remembers, merges, evictions, saves, recalls."""
        return {
            "facts": len(self._entries),
            "capacity": self.capacity,
            "words": len(self._postings),
            **self._stats,
        }


def _public(f: StoredFact) -> Fact:
    return Fact(text=f.text, tags=f.tags, agent=f.agent, at=f.last_seen)


def distill_prompt(messages: Sequence[Any], *, max_facts: int = 5, max_chars: int = 8000) -> str:
    """Build the prompt an agent sends at shutdown to distil its session into durable facts.

    Args:
        messages: the session, as ``ChatMessage`` structs or ``{"role", "content"}`` mappings;
            only the most recent ``max_chars`` characters of the transcript are kept.
    """
    lines = []
    for m in messages:
        role = m.get("role") if isinstance(m, Mapping) else getattr(m, "role", "?")
        content = m.get("content") if isinstance(m, Mapping) else getattr(m, "content", None)
        calls = () if isinstance(m, Mapping) else getattr(m, "tool_calls", ())
        if content:
            lines.append(f"{role}: {' '.join(str(content).split())}")
        for c in calls:
            lines.append(f"{role}: [called tool {getattr(c, 'name', '?')}]")
    transcript = "\n".join(lines)
    if len(transcript) > max_chars:
        transcript = "…" + transcript[-max_chars:]
    return (
        f"Below is a transcript of your work session. Write at most {max_facts} facts worth "
        "remembering for future runs of this workflow: lasting facts about the domain, the "
        "user's preferences, or what worked and what failed. Leave out anything that only "
        "concerns this run, anything you are unsure of, and any secret, key or password.\n"
        'Answer with one fact per line, each line starting with "- ", each fact one short '
        'self-contained sentence. If nothing is worth remembering, answer "- NONE".\n\n'
        f"Transcript:\n{transcript}\n"
    )


def parse_distilled(text: str, *, max_facts: int = 10, max_len: int = 300) -> list[str]:
    """Return the facts in an LLM's bulleted answer (``-``, ``*``, ``•`` or ``1.`` lines).

    Lines that are not bullets, "none" answers and repeats are dropped; a fact longer than
    ``max_len`` characters is cut at a word boundary.
    """
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        m = _BULLET.match(line)
        if not m:
            continue
        fact = m.group(1).strip().strip("*_`\"'").strip()
        norm = " ".join(_WORD.findall(fact.lower()))
        if not norm or norm in ("none", "n a", "nothing") or norm in seen:
            continue
        if len(fact) > max_len:
            fact = fact[:max_len].rsplit(" ", 1)[0] + "…"
        seen.add(norm)
        out.append(fact)
        if len(out) == max_facts:
            break
    return out
