"""A small typed facade over Thespian: the only module of axo that imports ``thespian``.

It knows how to start an actor system in one of axo's modes, create actors, send, listen and
shut down cleanly. It knows nothing about runs, lattices or LLMs. Failure rules:

- ``tell`` to an actor that has exited is dropped by Thespian; the run actor guards against it
  by tracking which agents it has already finished.
- the multiproc admin is a daemon: ``shutdown()`` is always called (context manager), and each
  system gets its own admin port so tests and runs never share one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import tempfile
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Literal

import msgspec
from thespian.actors import Actor, ActorExitRequest, ActorSystem

Mode = Literal["local", "multiproc"]
MODES: tuple[Mode, ...] = ("local", "multiproc")

__all__ = [
    "MODES",
    "Actor",
    "ActorRuntime",
    "ExitRequest",
    "Mode",
    "free_port",
    "hide_in_logs",
    "log_path",
]
ExitRequest = ActorExitRequest


_HIDDEN: set[str] = set()  # secrets of the workflows run in this process: never logged


def hide_in_logs(secrets: Iterable[str]) -> None:
    """Show these values as ``***`` in whatever is logged to axo's log from now on (a library's
    warning may quote what an MCP server printed, an environment value among it)."""
    _HIDDEN.update(s for s in secrets if s)


class Redacting(logging.Filter):
    """Replaces the hidden values in a record's message and traceback with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _HIDDEN:
            return True
        hidden = sorted(_HIDDEN, key=len, reverse=True)
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # the formatter would print it again, unredacted
        for secret in hidden:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = message, None
        return True


def log_path() -> str:
    """Where axo's actor systems log (warnings and worse): ``axo.log`` in a folder only this
    user may read (``$TMPDIR/axo-<uid>``, mode 0700; a fresh one when that name is taken by
    something else), the file itself mode 0600."""
    folder = os.path.join(tempfile.gettempdir(), f"axo-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        folder = tempfile.mkdtemp(prefix="axo-")  # squatted or a link: not ours to write in
    elif stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    path = os.path.join(folder, "axo.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    return path


def _bind_loopback_only() -> None:
    """Make Thespian's TCP transport bind 127.0.0.1 when its own address is loopback.

    Thespian binds every listening socket to all interfaces ('') whatever address it
    announces, and its TCP transport unpickles what it receives: on a loopback-only system
    that must not be reachable from the network. Forked actor processes inherit the patch.
    """
    from thespian.system.transport.IPBase import IPActorAddress

    if getattr(IPActorAddress, "_axo_loopback", False):
        return

    def bind_args(self: Any) -> tuple[tuple[str, int]]:
        host, port = self.bindname[0], self.bindname[1]
        if host in ("", "0.0.0.0") and str(self.sockname[0]).startswith("127."):
            return ((str(self.sockname[0]), port),)
        return (self.bindname,)

    IPActorAddress.bindArgs = property(bind_args)
    IPActorAddress._axo_loopback = True


def _lean_local_dispatch() -> None:
    """Take per-message costs out of simpleSystemBase's dispatch loop, behaviour unchanged.

    Measured here (thespian 4.0.1, pinned): a message hop cost ~5 µs, of which ~2 µs went to
    ``logging.getLogger('Thespian')`` — a module-lock round trip — for a debug line that is off,
    and to scanning the (empty) wakeup list before every message; and ~0.6 µs to checks that
    can only match Thespian's own messages (status requests, exit requests, source loading,
    dead children, comparing the target with the system's address). The replacements keep the
    debug line whenever that logger has DEBUG enabled; still fire every wakeup (the list is
    only skipped when it is empty); and hand a first delivery of one of axo's messages (a
    msgspec Struct) to a live actor directly through Thespian's own ``_callActorWithMessage``,
    so a handler that raises is retried and then poisoned exactly as before. Everything else
    takes Thespian's path. ``tests/runtime/test_system.py`` checks that the names patched here
    still exist and that retries behave as Thespian documents, so an upgrade that changes them
    fails loudly.
    """
    import logging

    from thespian.system import simpleSystemBase as simple

    if getattr(simple, "_axo_lean", False):
        return
    log = logging.getLogger("Thespian")

    def receive(actor: Any, msg: object, sender: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug('Actor "%s" got message "%s" from "%s"', actor, msg, sender)
        actor.receiveMessage(msg, sender)

    realize = simple.ActorSystemBase._realizeWakeups

    def realize_wakeups(self: Any) -> None:
        if self._wakeUps:
            realize(self)

    single_send = simple.ActorSystemBase._runSingleSend

    def run_single_send(self: Any, pending: Any) -> None:
        if pending.attempts == 0 and isinstance(pending.msg, msgspec.Struct):
            target = self.actorRegistry.get(pending.toActor.actorAddressString)
            if target and target.instance:
                self._callActorWithMessage(target, pending, pending.msg, pending.sender)
                return
        single_send(self, pending)

    simple.actor_base_receive = receive
    simple.ActorSystemBase._realizeWakeups = realize_wakeups
    simple.ActorSystemBase._runSingleSend = run_single_send
    simple._axo_lean = True


_host_pid: int | None = None


def _follow_host_in_child() -> None:
    """In a process forked for the actor system: exit as soon as the host process is gone.

    Thespian's multiproc admin daemonizes (a double fork), so it and the actor processes it
    forks outlive a host killed with SIGKILL and keep its stdout open. Every process forked
    from the host (and from those) runs this: one thread blocks on a pidfd of the host — no
    polling — and ends the process when the host exits. A normal shutdown stops them first.
    """
    host = _host_pid
    if host is None or host == os.getpid():
        return
    _exit_when_gone(host, "axo-host-watch")


def _exit_when_gone(pid: int, name: str) -> None:
    """End this process once process ``pid`` has exited: a daemon thread named ``name`` blocks
    on a pidfd of it (nothing happens where pidfds are not available)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return

    def watch() -> None:
        select.select([fd], [], [])
        os._exit(0)

    threading.Thread(target=watch, name=name, daemon=True).start()


_parent_followed: list[int] = []


def follow_parent() -> None:
    """In an actor process forked by another actor (multiproc): exit once that parent is gone,
    as ``_follow_host_in_child`` does for the host — the agents of a run actor whose process
    died are not left behind. Nothing happens in the host's own process (local mode)."""
    if _host_pid is None or os.getpid() == _host_pid or _parent_followed:
        return
    _parent_followed.append(os.getppid())
    _exit_when_gone(_parent_followed[0], "axo-parent-watch")


def _watch_host_from_children() -> None:
    global _host_pid
    if _host_pid is None:
        os.register_at_fork(after_in_child=_follow_host_in_child)
    _host_pid = os.getpid()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ActorRuntime:
    """One Thespian actor system, opened in a mode and closed exactly once.

    Args:
        mode: ``local`` (simpleSystemBase, one process) or ``multiproc`` (multiprocTCPBase on
            loopback, one process per actor, its own admin port).
        admin_port: for multiproc; default a free port.
    """

    def __init__(
        self, mode: Mode = "local", *, admin_port: int | None = None, log_file: str | None = None
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown runtime mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.admin_port: int | None = None
        log_file = log_file or log_path()
        os.environ.setdefault("THESPLOG_FILE", log_file)
        os.environ.setdefault("THESPLOG_THRESHOLD", "WARNING")
        log_defs = {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"redact": {"()": Redacting}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": log_file,
                    "level": "WARNING",
                    "filters": ["redact"],
                }
            },
            "root": {"handlers": ["file"], "level": "WARNING"},
        }
        if mode == "local":
            _lean_local_dispatch()
            self._system = ActorSystem("simpleSystemBase", transientUnique=True, logDefs=log_defs)
        else:
            # bind and announce loopback only; children inherit the environment
            os.environ["THESPIAN_BASE_IPADDR"] = "127.0.0.1"
            _bind_loopback_only()
            _watch_host_from_children()
            self.admin_port = admin_port or free_port()
            self._system = ActorSystem(
                "multiprocTCPBase",
                capabilities={"Admin Port": self.admin_port},
                transientUnique=True,
                logDefs=log_defs,
            )
        self._closed = False

    @property
    def inline(self) -> bool:
        """True when actors run inside ``tell``/``listen`` calls on the caller's thread."""
        return self.mode == "local"

    def create(self, actor_class: type[Actor]) -> Any:
        return self._system.createActor(actor_class)

    def tell(self, address: Any, message: object) -> None:
        self._system.tell(address, message)

    def listen(self, timeout: float) -> object | None:
        """The next message sent to this process's external address, or None at timeout."""
        return self._system.listen(timedelta(seconds=timeout))

    def stop_actor(self, address: Any) -> None:
        self._system.tell(address, ActorExitRequest())

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._system.shutdown()

    def __enter__(self) -> ActorRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
