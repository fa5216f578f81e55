"""The Thespian facade: the lean local dispatch keeps Thespian's behaviour."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import msgspec

from axo.runtime.system import Actor, ActorRuntime


class Job(msgspec.Struct, frozen=True):
    """A message of axo's kind (a msgspec Struct), which the lean dispatch delivers itself."""

    fail_times: int


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
        elif isinstance(msg, Job):
            self.tries = getattr(self, "tries", 0) + 1
            if self.tries <= msg.fail_times:
                raise RuntimeError(f"failing on purpose, try {self.tries}")
            self.send(sender, ("done after", self.tries))


def test_patched_names_still_exist_in_thespian() -> None:
    """A Thespian upgrade that renames what the lean dispatch replaces must fail here."""
    from thespian.system import simpleSystemBase as simple

    with ActorRuntime("local"):
        assert simple._axo_lean is True
        assert callable(simple.actor_base_receive)
        assert callable(simple.ActorSystemBase._realizeWakeups)
        assert callable(simple.ActorSystemBase._callActorWithMessage)
        assert simple.ActorSystemBase._runSingleSend.__name__ == "run_single_send"


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


def test_a_handler_that_raises_is_retried_then_poisoned_as_thespian_does() -> None:
    """Thespian redelivers a message whose handler raised, twice, then returns it to its
    sender as a PoisonMessage; the lean path for axo's messages keeps that."""
    with ActorRuntime("local") as rt:
        flaky = rt.create(Echo)
        rt.tell(flaky, Job(fail_times=2))
        assert rt.listen(1.0) == ("done after", 3)
        broken = rt.create(Echo)
        rt.tell(broken, Job(fail_times=99))
        poisoned = rt.listen(1.0)
        assert type(poisoned).__name__ == "PoisonMessage"
        assert poisoned.poisonMessage == Job(fail_times=99)


def test_a_message_to_an_actor_that_exited_is_dropped() -> None:
    with ActorRuntime("local") as rt:
        gone = rt.create(Echo)
        rt.stop_actor(gone)
        while (notice := rt.listen(0.2)) is not None:
            assert type(notice).__name__ in ("ChildActorExited", "ActorExitRequest")
        rt.tell(gone, Job(fail_times=0))
        assert rt.listen(0.2) is None
