from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axo.errors import UsageError
from axo.eventlog import CorruptLog, EventLog, EventLogFailed, Record
from tests.helpers import outcome_within


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(tmp_path: Path, clock: Clock) -> Iterator[EventLog]:
    with EventLog.open(tmp_path, clock=clock) as log:
        yield log


def raw(tmp_path: Path) -> sqlite3.Connection:
    """A second, independent connection to the log's database (as another process would)."""
    return sqlite3.connect(tmp_path / "events.db", isolation_level=None)


def test_sequence_numbers_are_per_run_gapless_and_start_at_one(log: EventLog) -> None:
    log.start_run("r1", "wf.yaml", "w", "h1", {})
    log.start_run("r2", "wf.yaml", "w", "h2", {})
    seqs = [log.append(r, "tick", "a", {"i": i}) for i in range(5) for r in ("r1", "r2")]
    assert seqs == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [e.seq for e in log.events("r1")] == [1, 2, 3, 4, 5]
    assert [e.data for e in log.events("r2", after=3)] == [{"i": 3}, {"i": 4}]


def test_records_keep_kind_agent_time_and_dict_or_bytes_payloads(
    log: EventLog, clock: Clock
) -> None:
    log.start_run("r", "wf.yaml", None, "h", {"n": 1})
    log.append("r", "activated", "writer", {"nested": {"list": [1, "two", 3.0]}})
    clock.now = 1001.5
    log.append("r", "blob", None, b"\x00\x01binary")
    assert log.events("r") == [
        Record(
            run_id="r",
            seq=1,
            at=1000.0,
            kind="activated",
            agent="writer",
            data={"nested": {"list": [1, "two", 3.0]}},
        ),
        Record(run_id="r", seq=2, at=1001.5, kind="blob", agent=None, data=b"\x00\x01binary"),
    ]


def test_append_durable_returns_only_after_another_connection_can_read_it(
    log: EventLog, tmp_path: Path
) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})

    async def go() -> int:
        async with asyncio.timeout(5):
            return await log.append_durable("r", "done", "a", {"ok": True})

    seq = asyncio.run(go())
    with raw(tmp_path) as conn:
        assert conn.execute("SELECT seq FROM events WHERE run_id = 'r'").fetchall() == [(seq,)]


def test_many_agents_finishing_at_once_share_commits(log: EventLog) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    before = log.statistics()["commits"]

    async def agent(i: int) -> int:
        for kind in ("activated", "llm_request", "llm_result"):
            log.append("r", kind, f"a{i}", {"text": "x" * 200})
        return await log.append_durable("r", "completed", f"a{i}", {"output": "y" * 300})

    async def go() -> list[int]:
        async with asyncio.timeout(10):
            return await asyncio.gather(*(agent(i) for i in range(300)))

    seqs = asyncio.run(go())
    s = log.statistics()
    assert sorted(seqs) == list(range(4, 1201, 4))
    assert s["appends"] == 1200
    assert s["commits"] - before <= 600  # batched: far fewer commits than records
    assert s["max_batch"] > 4


def test_durable_waits_for_a_given_record_and_is_immediate_once_committed(log: EventLog) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    first = log.append("r", "a", None, {})
    second = log.append("r", "b", None, {})

    async def go() -> None:
        async with asyncio.timeout(5):
            await log.durable("r", second)
            await log.durable("r", first)  # already committed: returns at once

    asyncio.run(go())
    assert log.statistics()["queued"] == 0


def test_committed_returns_once_another_connection_can_read_the_records(
    log: EventLog, tmp_path: Path
) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    for i in range(5):
        log.append("r", "tick", None, {"i": i})

    async def go() -> None:
        async with asyncio.timeout(5):
            await log.committed("r")
            await log.committed("r")  # nothing new: at once

    asyncio.run(go())
    with raw(tmp_path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (5,)


def test_a_waiter_gets_records_committed_before_it_came(tmp_path: Path) -> None:
    with EventLog.open(tmp_path) as log:
        log.start_run("r", "wf.yaml", None, "h", {})
        seqs = [log.append("r", "tick", None, {"i": i}) for i in range(20)]

        async def go() -> None:
            async with asyncio.timeout(5):
                for seq in seqs:
                    await log.durable("r", seq)

        asyncio.run(go())
        log.flush(timeout=5)
        assert log.statistics()["queued"] == 0


def test_a_batch_of_any_size_is_stored_whole_and_in_order(log: EventLog) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    for i in range(85):  # 64 + 16 + 4 + 1 rows: a statement of each size
        log.append("r", "tick", None, {"i": i})
    log.flush(timeout=5)
    assert [(e.seq, e.data) for e in log.events("r")] == [(i + 1, {"i": i}) for i in range(85)]


def test_a_log_made_with_a_without_rowid_table_still_works(tmp_path: Path) -> None:
    from axo.eventrecords import _SCHEMA

    older = _SCHEMA.replace(
        "PRIMARY KEY (run_id, seq));", "PRIMARY KEY (run_id, seq)) WITHOUT ROWID;"
    )
    with raw(tmp_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(older)
    with EventLog.open(tmp_path) as log:
        log.start_run("r", "wf.yaml", None, "h", {})
        for i in range(70):
            log.append("r", "tick", None, {"i": i})
        assert [e.data["i"] for e in log.events("r")] == list(range(70))  # type: ignore[index]
    with raw(tmp_path) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert sql.endswith("WITHOUT ROWID")


def test_flush_commits_everything_appended_so_far(log: EventLog, tmp_path: Path) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    for i in range(50):
        log.append("r", "tick", None, {"i": i})
    log.flush(timeout=5)
    with raw(tmp_path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (50,)


def test_a_corrupt_record_stops_reading_and_is_reported_with_the_good_prefix(
    log: EventLog, tmp_path: Path
) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    for i in range(6):
        log.append("r", "tick", None, {"i": i})
    log.flush()
    with raw(tmp_path) as conn:
        payload = conn.execute("SELECT payload FROM events WHERE seq = 4").fetchone()[0]
        flipped = bytes([payload[0] ^ 0x01]) + payload[1:]
        conn.execute("UPDATE events SET payload = ? WHERE seq = 4", (flipped,))
    with pytest.raises(CorruptLog, match="record 4: checksum mismatch") as err:
        log.events("r")
    assert err.value.seq == 4
    assert [e.seq for e in err.value.records] == [1, 2, 3]
    records, problem = log.scan("r")
    assert len(records) == 3 and problem is not None and "checksum" in problem


def test_a_missing_record_in_the_middle_is_a_gap(log: EventLog, tmp_path: Path) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    for i in range(5):
        log.append("r", "tick", None, {"i": i})
    log.flush()
    with raw(tmp_path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 3")
    with pytest.raises(CorruptLog, match="record 3 is missing"):
        log.events("r")


def test_a_lost_tail_of_a_finished_run_is_detected(log: EventLog, tmp_path: Path) -> None:
    log.start_run("r", "wf.yaml", None, "h", {})
    for i in range(5):
        log.append("r", "tick", None, {"i": i})
    log.finish_run("r", "succeeded")  # records the run's count with its status
    with raw(tmp_path) as conn:
        conn.execute("DELETE FROM events WHERE seq >= 4")
    with pytest.raises(CorruptLog, match="log ends at record 3; the run recorded 5"):
        log.events("r")


def test_a_torn_wal_tail_loses_only_whole_transactions(tmp_path: Path) -> None:
    live = tmp_path / "live"
    log = EventLog.open(live)
    log.start_run("r", "wf.yaml", None, "h", {})
    for batch in range(3):
        for i in range(4):
            log.append("r", "tick", None, {"batch": batch, "i": i, "pad": "p" * 500})
        log.flush()
    crashed = tmp_path / "crashed"  # the files as a crash would leave them: WAL not merged
    crashed.mkdir()
    for name in ("events.db", "events.db-wal"):
        shutil.copy(live / name, crashed / name)
    log.close()
    wal = crashed / "events.db-wal"
    wal.write_bytes(wal.read_bytes()[:-1000])  # the last write was torn
    with EventLog.open(crashed) as reopened:
        records = reopened.events("r")  # consistent: no CorruptLog
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert len(records) % 4 == 0 and len(records) < 12


def test_resume_drops_a_bad_tail_and_numbering_continues(tmp_path: Path) -> None:
    with EventLog.open(tmp_path) as log:
        log.start_run("r", "wf.yaml", None, "h", {})
        for i in range(5):
            log.append("r", "tick", None, {"i": i})
    with raw(tmp_path) as conn:
        conn.execute("UPDATE events SET crc = crc + 1 WHERE seq = 4")
    with EventLog.open(tmp_path) as log:
        replay = log.resume_run("r")
        assert [r.seq for r in replay.records] == [1, 2, 3]
        assert replay.dropped == 2 and replay.problem is not None
        assert log.append("r", "again", None, {}) == 4
        assert [r.kind for r in log.events("r")] == ["tick"] * 3 + ["again"]
        assert log.runs()[0].status == "running"


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    secret = "sk-live-0123456789"

    def redact(text: str) -> str:
        return text.replace(secret, "***")

    with EventLog.open(tmp_path, redact=redact, sync="off") as log:
        log.start_run("r", f"wf-{secret}.yaml", None, "h", {"token": secret})
        log.append(
            "r",
            f"kind {secret}",
            secret,
            {"prompt": f"key={secret}", secret: [secret, {"deep": secret}]},
        )
        record = log.events("r")[0]
    assert record.data == {"prompt": "key=***", "***": ["***", {"deep": "***"}]}
    assert record.agent == "***"
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes()


def test_a_run_id_that_contains_a_secret_is_refused(tmp_path: Path) -> None:
    with (
        EventLog.open(tmp_path, redact=lambda t: t.replace("hunter2", "***")) as log,
        pytest.raises(UsageError, match="secret"),
    ):
        log.start_run("run-hunter2", "wf.yaml", None, "h", {})


def test_runs_list_status_times_and_counts_newest_first(log: EventLog, clock: Clock) -> None:
    log.start_run("old", "a.yaml", "wa", "h1", {"k": 1})
    log.append("old", "tick", None, {})
    clock.now = 1010.0
    log.append("old", "tick", None, {})
    log.finish_run("old", "succeeded")
    clock.now = 1020.0
    log.start_run("new", "b.yaml", None, "h2", {})
    infos = log.runs()
    assert [i.run_id for i in infos] == ["new", "old"]
    old = infos[1]
    assert (old.workflow_file, old.workflow_id, old.input_hash, old.meta) == (
        "a.yaml",
        "wa",
        "h1",
        {"k": 1},
    )
    assert (old.started, old.status, old.finished, old.last_event_at, old.events) == (
        1000.0,
        "succeeded",
        1010.0,
        1010.0,
        2,
    )
    assert infos[0].status == "running" and infos[0].events == 0


def test_prune_keeps_the_newest_and_never_an_open_run(log: EventLog, clock: Clock) -> None:
    for i in range(5):
        clock.now = 1000.0 + i
        log.start_run(f"r{i}", "wf.yaml", None, "h", {})
        log.append(f"r{i}", "tick", None, {})
        if i != 0:
            log.finish_run(f"r{i}", "succeeded")
    assert log.prune(keep_last=2) == 2  # r1, r2; r0 is still open
    assert {i.run_id for i in log.runs()} == {"r0", "r3", "r4"}
    clock.now = 2000.0
    assert log.prune(older_than_s=500.0) == 2
    assert [i.run_id for i in log.runs()] == ["r0"]
    assert log.events("r0")[0].kind == "tick"


def test_misuse_is_reported(log: EventLog, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not open"):
        log.append("nope", "tick", None, {})
    log.start_run("r", "wf.yaml", None, "h", {})
    with pytest.raises(UsageError, match="already open"):
        log.start_run("r", "wf.yaml", None, "h", {})
    with pytest.raises(UsageError, match="can't be stored"):
        log.append("r", "tick", None, {"x": object()})
    assert log.append("r", "tick", None, {}) == 1  # the refused record took no number
    log.finish_run("r", "failed")
    with pytest.raises(UsageError, match="already exists"):
        log.start_run("r", "wf.yaml", None, "h", {})
    with pytest.raises(UsageError, match="not open"):
        log.append("r", "tick", None, {})
    with pytest.raises(UsageError, match="sync"):
        EventLog.open(tmp_path / "x", sync="sometimes")  # type: ignore[arg-type]


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    (tmp_path / "events.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EventLogFailed, match="not a readable event log"):
        EventLog.open(tmp_path)


def test_a_failed_commit_fails_the_log_and_its_waiters_loudly(tmp_path: Path) -> None:
    # two processes resuming the same run both number the next record 2: the second loses
    with EventLog.open(tmp_path, sync="off") as a, EventLog.open(tmp_path, sync="off") as b:
        a.start_run("r", "wf.yaml", None, "h", {})
        a.append("r", "tick", None, {})
        a.flush()
        b.resume_run("r")
        a.append("r", "from a", None, {})
        a.flush()

        async def go() -> None:
            async with asyncio.timeout(5):
                await b.append_durable("r", "from b", None, {})

        with pytest.raises(EventLogFailed, match="commit failed: UNIQUE constraint"):
            asyncio.run(go())
        with pytest.raises(EventLogFailed, match="failed"):
            b.append("r", "again", None, {})
        with pytest.raises(EventLogFailed):
            b.flush()
        assert [e.kind for e in a.events("r")] == ["tick", "from a"]


def test_appending_after_close_is_refused(tmp_path: Path) -> None:
    log = EventLog.open(tmp_path, sync="off")
    log.start_run("r", "wf.yaml", None, "h", {})
    log.append("r", "tick", None, {})
    log.close()
    with pytest.raises(UsageError, match="closed"):
        log.append("r", "tick", None, {})
    with EventLog.open(tmp_path, sync="off") as again:  # close committed what was queued
        assert len(again.events("r")) == 1


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["r1", "r2", "r3"]),
            st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text()),
        ),
        max_size=40,
    )
)
def test_any_interleaving_reads_back_in_order_per_run(
    appends: list[tuple[str, dict[str, object]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp, EventLog.open(tmp, sync="off") as log:
        for run in ("r1", "r2", "r3"):
            log.start_run(run, "wf.yaml", None, "h", {})
        for run, data in appends:
            log.append(run, "e", None, data)
        for run in ("r1", "r2", "r3"):
            expected = [d for r, d in appends if r == run]
            got = log.events(run)
            assert [e.data for e in got] == expected
            assert [e.seq for e in got] == list(range(1, len(expected) + 1))
        assert sum(i.events for i in log.runs()) == len(appends)


def test_sync_full_fsyncs_the_wal_even_after_the_working_directory_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def noting(fd: int) -> None:  # which file each fsync reaches
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", noting)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with EventLog.open(".axo") as log:  # `axo run`'s default state directory is relative
        log.start_run("r", "wf.yaml", None, "h", {})
        os.chdir(tmp_path / "elsewhere")  # a function tool, or the embedding app, moves
        synced.clear()
        asyncio.run(log.append_durable("r", "result", "a", {"n": 1}))
    assert str(tmp_path / ".axo" / "events.db-wal") in synced


def test_a_writer_that_cannot_connect_fails_the_log_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, opened = sqlite3.connect, []

    def connect(*args: Any, **kw: Any) -> sqlite3.Connection:
        opened.append(args[0])
        if len(opened) == 3:  # open's check, the reader, then the writer's thread: it fails
            raise sqlite3.OperationalError("unable to open database file")
        return real(*args, **kw)

    monkeypatch.setattr(sqlite3, "connect", connect)

    def start() -> None:
        with EventLog.open(tmp_path) as log:
            log.start_run("r", "wf.yaml", None, "h", {})

    exc = outcome_within(start, 30, "start_run waits forever for a writer that never started")
    assert isinstance(exc, EventLogFailed) and "unable to open database file" in str(exc)
