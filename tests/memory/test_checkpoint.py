from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axo.memory.checkpoint import CheckpointStore, CheckpointWriter, CorruptFile, frame, unframe


class TurnState(msgspec.Struct, frozen=True, kw_only=True):
    turn: int
    notes: list[str] = []
    tokens: int = 0


class OtherShape(msgspec.Struct, frozen=True, kw_only=True):
    name: str


def store(tmp_path: Path, **kw: object) -> CheckpointStore:
    return CheckpointStore(tmp_path / "ckpt", sync=False, **kw)  # type: ignore[arg-type]


def files(s: CheckpointStore, agent: str) -> list[Path]:
    return sorted((s.dir / agent).glob("*.ckpt"))


def test_the_newest_state_comes_back_as_the_type_asked_for(tmp_path: Path) -> None:
    s = CheckpointStore(tmp_path)  # fsync on: the default
    for turn in range(1, 4):
        s.save("writer", TurnState(turn=turn, notes=["n"] * turn))
    assert s.latest("writer", type=TurnState) == TurnState(turn=3, notes=["n"] * 3)
    assert s.latest("nobody", type=TurnState) is None


def test_dict_states_round_trip(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.save("a", {"messages": [{"role": "user", "content": "hi"}], "n": 1})
    assert s.latest("a") == {"messages": [{"role": "user", "content": "hi"}], "n": 1}


def test_only_the_newest_three_are_kept_however_long_the_run(tmp_path: Path) -> None:
    s = store(tmp_path)
    sizes = set()
    for turn in range(1, 201):
        s.save("a", TurnState(turn=turn, notes=["same size"]))
        sizes.add(s.statistics()["bytes_on_disk"])
        assert len(files(s, "a")) == min(turn, 3)
    assert [p.stem for p in files(s, "a")] == [f"{t:012d}" for t in (198, 199, 200)]
    stats = s.statistics()
    assert stats["files"] == 3 and stats["deleted"] == 197
    assert max(sizes) <= 3 * max(len(p.read_bytes()) for p in files(s, "a"))


@settings(max_examples=30, deadline=None)
@given(turns=st.integers(1, 25), keep=st.integers(1, 5))
def test_storage_is_bounded_by_keep_and_the_last_save_wins(turns: int, keep: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = CheckpointStore(tmp, keep=keep, sync=False)
        for t in range(turns):
            s.save("a", TurnState(turn=t))
        assert s.statistics()["files"] == min(turns, keep)
        assert s.latest("a", type=TurnState) == TurnState(turn=turns - 1)


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.save("a", TurnState(turn=1))
    newest = s.save("a", TurnState(turn=2, notes=["long enough to cut"]))
    body = len(newest.read_bytes()) - 16  # 16-byte header: magic, CRC32, length
    newest.write_bytes(newest.read_bytes()[:-5])
    loaded = s.load_latest("a", type=TurnState)
    assert loaded is not None and loaded.state == TurnState(turn=1) and loaded.turn == 1
    assert [(k.path, k.reason) for k in loaded.skipped] == [
        (str(newest), f"truncated body ({body - 5} of {body} bytes)")
    ]
    assert s.warnings == loaded.skipped
    assert s.statistics()["skipped"] == 1


def test_a_bit_flip_is_caught_by_the_checksum(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.save("a", TurnState(turn=1))
    newest = s.save("a", TurnState(turn=2))
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0x40
    newest.write_bytes(bytes(data))
    assert s.latest("a", type=TurnState) == TurnState(turn=1)
    assert "checksum mismatch" in s.warnings[0].reason


def test_a_checkpoint_cut_inside_its_header_is_skipped(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.save("a", TurnState(turn=1))
    s.save("a", TurnState(turn=2)).write_bytes(b"AXO")
    assert s.latest("a", type=TurnState) == TurnState(turn=1)
    assert "truncated header" in s.warnings[0].reason


def test_every_checkpoint_bad_gives_none_and_a_warning_for_each(tmp_path: Path) -> None:
    s = store(tmp_path)
    for t in range(3):
        s.save("a", TurnState(turn=t)).write_bytes(b"")
    assert s.latest("a", type=TurnState) is None
    assert len(s.warnings) == 3


def test_a_state_of_another_shape_is_skipped_with_the_decode_error(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.save("a", TurnState(turn=1))
    s.save("a", OtherShape(name="x"))
    assert s.latest("a", type=TurnState) == TurnState(turn=1)
    assert "Object missing required field `turn`" in s.warnings[0].reason


def test_a_checkpoint_the_disk_left_zeroed_is_skipped(tmp_path: Path) -> None:
    s = store(tmp_path)  # no fsync: after power loss the newest may be empty, short or zeroed
    s.save("a", TurnState(turn=1))
    newest = s.save("a", TurnState(turn=2))
    newest.write_bytes(bytes(len(newest.read_bytes())))
    assert s.latest("a", type=TurnState) == TurnState(turn=1)
    assert "bad magic" in s.warnings[0].reason


def test_a_temp_file_left_by_a_crash_is_ignored_then_cleaned_up(tmp_path: Path) -> None:
    store(tmp_path).save("a", TurnState(turn=1))
    leftover = tmp_path / "ckpt" / "a" / ".tmp-000000000002.ckpt-999"
    leftover.write_bytes(b"half a checkpoint")  # the crashed process's save of turn 2
    s = store(tmp_path)  # the process that resumes
    assert s.latest("a", type=TurnState) == TurnState(turn=1)
    s.save("a", TurnState(turn=2))
    assert not leftover.exists()


def test_numbering_continues_in_a_new_store_on_the_same_directory(tmp_path: Path) -> None:
    store(tmp_path).save("a", TurnState(turn=1))
    again = store(tmp_path)
    assert again.save("a", TurnState(turn=2)).stem == f"{2:012d}"
    assert again.latest("a", type=TurnState) == TurnState(turn=2)


def test_agent_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    s = store(tmp_path)
    path = s.save("../team/lead", {"x": 1})
    assert path.resolve().is_relative_to(s.dir.resolve())
    assert s.agents() == ["../team/lead"]
    assert s.latest("../team/lead") == {"x": 1}
    with pytest.raises(ValueError, match="non-empty"):
        s.save("", {})


def test_frame_detects_bad_magic_and_trailing_bytes() -> None:
    good = frame(b"body")
    assert unframe(good) == b"body"
    with pytest.raises(CorruptFile, match="bad magic"):
        unframe(b"XXXX" + good[4:])
    with pytest.raises(CorruptFile, match="trailing"):
        unframe(good + b"!")


class GatedStore(CheckpointStore):
    """A store whose saves wait for ``gate``: what is queued meanwhile stays queued."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, sync=False)
        self.entered, self.gate = threading.Event(), threading.Event()

    def save_encoded(self, agent: str, body: bytes) -> Path:
        self.entered.set()
        assert self.gate.wait(10)
        return super().save_encoded(agent, body)


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "axo-checkpoints"]


def test_a_writer_has_written_every_state_once_closed(tmp_path: Path) -> None:
    s = store(tmp_path)
    w = CheckpointWriter(s)
    for turn in range(50):
        for agent in ("a", "b"):
            w.save(agent, TurnState(turn=turn))
    w.close()
    assert s.latest("a", type=TurnState) == s.latest("b", type=TurnState) == TurnState(turn=49)
    assert len(files(s, "a")) <= 3 and w.failures == [] and writer_threads() == []


def test_a_state_queued_while_an_older_one_waits_replaces_it(tmp_path: Path) -> None:
    s = GatedStore(tmp_path / "ckpt")
    w = CheckpointWriter(s)
    w.save("a", TurnState(turn=1))
    assert s.entered.wait(10)  # the thread writes turn 1; the next ones queue behind it
    w.save("a", TurnState(turn=2))
    w.save("a", TurnState(turn=3))
    w.save("b", TurnState(turn=1))
    s.gate.set()
    w.close()
    assert s.statistics()["saves"] == 3  # turn 2 of a never written: turn 3 replaced it
    assert [s.latest(a, type=TurnState) for a in ("a", "b")] == [
        TurnState(turn=3),
        TurnState(turn=1),
    ]


def test_a_state_is_taken_when_queued_not_when_written(tmp_path: Path) -> None:
    s = GatedStore(tmp_path / "ckpt")
    w = CheckpointWriter(s)
    session = ["one"]
    w.save("a", {"session": session})
    session.append("two")
    s.gate.set()
    w.close()
    assert s.latest("a") == {"session": ["one"]}


def test_a_save_that_fails_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    w = CheckpointWriter(CheckpointStore(tmp_path / "file" / "ckpt", sync=False))
    w.save("a", TurnState(turn=1))
    w.close()
    assert len(w.failures) == 1 and w.failures[0].startswith("checkpoint of 'a': ")


def test_a_save_after_close_is_written_at_once(tmp_path: Path) -> None:
    s = store(tmp_path)
    w = CheckpointWriter(s)
    w.close()
    w.save("a", TurnState(turn=1))
    assert s.latest("a", type=TurnState) == TurnState(turn=1) and writer_threads() == []
