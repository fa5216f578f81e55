"""The Thespian facade: the lean local dispatch keeps Thespian's behaviour."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from axo.runtime.system import Actor, ActorRuntime


class Echo(Actor):  # type: ignore[misc]
    """Answers ("echo", x) to a sender; ("wake", x) answers after a zero-length wakeup."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple) and msg[0] == "echo":
            self.send(sender, ("echoed", msg[1]))
        elif isinstance(msg, tuple) and msg[0] == "wake":
            self.asker = sender
            self.wakeupAfter(timedelta(0), payload=msg[1])
        elif type(msg).__name__ == "WakeupMessage":
            self.send(self.asker, ("woke", msg.payload))


def test_patched_names_still_exist_in_thespian() -> None:
    """A Thespian upgrade that renames what the lean dispatch replaces must fail here."""
    from thespian.system import simpleSystemBase as simple

    with ActorRuntime("local"):
        assert simple._axo_lean is True
        assert callable(simple.actor_base_receive)
        assert callable(simple.ActorSystemBase._realizeWakeups)


def test_messages_and_wakeups_are_delivered() -> None:
    with ActorRuntime("local") as rt:
        echo = rt.create(Echo)
        rt.tell(echo, ("echo", 1))
        assert rt.listen(1.0) == ("echoed", 1)
        rt.tell(echo, ("wake", "soon"))
        assert rt.listen(1.0) == ("woke", "soon")


def test_thespian_debug_line_is_kept_when_enabled() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("Thespian")
    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        with ActorRuntime("local") as rt:
            echo = rt.create(Echo)
            rt.tell(echo, ("echo", 2))
            assert rt.listen(1.0) == ("echoed", 2)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert any("got message" in r.getMessage() and "echo" in r.getMessage() for r in records)
