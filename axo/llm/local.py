"""The embedded local model server: ``python -m llama_cpp.server`` as a managed subprocess.

This module knows how to start that server on a free loopback port, wait until it answers, share
one server between agents that name the same model and options, and stop it on every exit path
(context exit, errors, Ctrl-C, interpreter exit, even ``kill -9`` of the parent on Linux). It also
lives in ``axo.llm.quirks``: what a client needs for the server's quirks with small models.
It does not speak the chat protocol (the OpenAI-compatible client does) and does not resolve
model names (``axo.llm.models`` does).

What llama_cpp.server 0.3.36 does with SmolLM2-135M-Instruct and no ``--chat_format`` (the GGUF's
own template is used), measured here:

- The template renders only ``role`` and ``content``: ``tools`` and ``tool_calls`` are never shown
  to the model, and an assistant turn with ``content: null`` is refused (HTTP 500, pydantic
  validation; a null user content fails in the template, also 500). ``prepare_messages`` fixes
  both and can describe the tools in the system message.
- ``tool_choice: {"type": "function", "function": {"name": ...}}`` compiles the tool's JSON
  schema to a grammar and returns a real ``tool_calls`` entry (``finish_reason: "tool_calls"``);
  an unknown name is a 500. ``"auto"`` and ``"required"`` are the same as no tool choice: any
  call arrives as JSON text in ``content`` (``parse_text_tool_calls``).
- ``response_format: {"type": "json_object", "schema": {...}}`` constrains the answer to the
  schema; OpenAI's ``{"type": "json_schema", ...}`` is refused (500). A named tool choice wins
  over ``response_format``.
- Responses carry ``usage`` but no ``timings``: the server reports no time of its own (with
  ``verbose`` llama.cpp prints per-request timings to the log only). ``model`` in a response
  echoes the request's, or is the GGUF's full path when the request has none.
- Errors are ``{"error": {"message", "type", "code"}}``; validation and template errors are 500
  (not retryable despite the status), context overflow is 400 ``context_length_exceeded``.
- Requests are served one at a time; with ``--interrupt_requests True`` (the default) a new
  request cuts a running stream short, so shared servers turn it off.
- ``--chat_format chatml-function-calling`` does fill ``tool_calls`` on ``"auto"``, but always
  picks some tool, drops ``tool`` messages and HTML-escapes content: not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx
import msgspec

from axo.errors import ProviderError, UsageError

HOST = "127.0.0.1"

# llama_cpp.server's settings are pydantic BaseSettings without an env prefix, and its __main__
# reads HOST, PORT and CONFIG_FILE itself: any of these in the user's environment would silently
# override our command line (bind address, port, API key, ...). Pinned to 0.3.36's field names.
# fmt: off
_SERVER_ENV_NAMES = frozenset((
    "api_key", "cache", "cache_size", "cache_type", "chat_format", "chat_template_kwargs",
    "clip_model_path", "config_file", "disable_ping_events", "draft_model",
    "draft_model_num_pred_tokens", "embedding", "flash_attn", "hf_model_repo_id",
    "hf_pretrained_model_name_or_path", "hf_tokenizer_config_path", "host",
    "interrupt_requests", "kv_overrides", "last_n_tokens_size", "logits_all", "lora_base",
    "lora_path", "main_gpu", "model", "model_alias", "mul_mat_q", "n_batch", "n_ctx",
    "n_gpu_layers", "n_threads", "n_threads_batch", "n_ubatch", "numa", "offload_kqv", "port",
    "root_path", "rope_freq_base", "rope_freq_scale", "rope_scaling_type", "rpc_servers",
    "seed", "split_mode", "ssl_certfile", "ssl_keyfile", "tensor_split", "type_k", "type_v",
    "use_mlock", "use_mmap", "verbose", "vocab_only", "yarn_attn_factor", "yarn_beta_fast",
    "yarn_beta_slow", "yarn_ext_factor", "yarn_orig_ctx",
))
# fmt: on
_PR_SET_PDEATHSIG = 1
_PORT_ATTEMPTS = 3
_TAIL_CHARS = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """What the server is started with; hashable, so a pool can key servers by it.

    Attributes:
        n_ctx: context size in tokens.
        n_threads: threads for generation and prompt processing (1 is fastest under load).
        seed: the server's RNG seed, or None for llama.cpp's default.
        chat_format: a llama-cpp-python chat format, or None for the GGUF's own template.
        verbose: let llama.cpp print per-request timings to the log file.
    """

    n_ctx: int = 2048
    n_threads: int = 1
    seed: int | None = None
    chat_format: str | None = None
    verbose: bool = False

    def to_args(self) -> list[str]:
        args = ["--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads)]
        args += ["--n_threads_batch", str(self.n_threads), "--verbose", str(self.verbose)]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        if self.chat_format is not None:
            args += ["--chat_format", self.chat_format]
        return args


class LocalServerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one server (pid and port of the last process, also after it stopped);
    ``start_s`` is the time from spawn to the first good answer."""

    pid: int | None
    port: int | None
    base_url: str | None
    running: bool
    start_s: float | None
    log_path: str | None


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Return ``environ`` without the variables llama_cpp.server would read as settings."""
    env = {k: v for k, v in environ.items() if k.lower() not in _SERVER_ENV_NAMES}
    env["PYTHONUNBUFFERED"] = "1"  # so the log tail shown on failure is complete
    return env


class LocalServer:
    """One ``llama_cpp.server`` subprocess on ``127.0.0.1``.

    Use ``async with LocalServer(path) as srv:`` or ``start()`` / ``stop()`` (also ``with``).
    The child runs in its own session (a terminal's Ctrl-C reaches only the parent, which stops
    it in order); a ``weakref.finalize`` stops it when this object is collected or the
    interpreter exits; on Linux the kernel kills it when the thread that started it dies
    (``PR_SET_PDEATHSIG``), so start it from a long-lived thread, e.g. the event loop's.

    Args:
        model_path: a GGUF file, normally from ``axo.llm.models.resolve_model``.
        options: server settings.
        log_dir: where the server's stdout and stderr go; default a temp dir removed on stop.
        ready_timeout_s: bound on the wait for the first good answer.
        stop_timeout_s: bound on each wait after SIGTERM and after SIGKILL.
        poll_interval_s: pause between readiness probes.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        options: ServerOptions = ServerOptions(),
        *,
        log_dir: str | os.PathLike[str] | None = None,
        ready_timeout_s: float = 60.0,
        stop_timeout_s: float = 5.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.model_path = Path(model_path)
        self.options = options
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._own_log_dir: Path | None = None
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._poll_interval_s = poll_interval_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None  # kept after stop, for statistics and post-mortems
        self._port: int | None = None
        self._log_path: Path | None = None
        self._start_s: float | None = None
        self._spawned_at = 0.0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- public surface ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._start_s is not None

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def port(self) -> int:
        self._require()
        assert self._port is not None
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root, e.g. ``http://127.0.0.1:40123/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def alias(self) -> str:
        """The model name the server reports (the file name without ``.gguf``)."""
        return self.model_path.stem

    def statistics(self) -> LocalServerStatistics:
        return LocalServerStatistics(
            pid=self._pid,
            port=self._port,
            base_url=f"http://{HOST}:{self._port}/v1" if self._port is not None else None,
            running=self.running,
            start_s=self._start_s,
            log_path=str(self._log_path) if self._log_path is not None else None,
        )

    def start(self) -> LocalServer:
        """Start the server and block until it answers; a no-op when already running.

        Raises:
            ProviderError: the server exited early (the message holds its log's tail) or did
                not answer within ``ready_timeout_s``.
        """
        if self.running:
            return self
        deadline = time.monotonic() + self._ready_timeout_s
        try:
            with httpx.Client() as client:
                for _ in range(_PORT_ATTEMPTS):
                    self._spawn()
                    state = "wait"
                    while state == "wait":
                        state = self._judge(self._probe(client, deadline), deadline)
                        if state == "wait":
                            time.sleep(self._poll_interval_s)
                    if state == "ready":
                        return self
        except BaseException:
            self.stop()  # interrupted (Ctrl-C) while waiting: leave nothing behind
            raise
        raise self._fail("kept losing its port to other processes")

    async def astart(self) -> LocalServer:
        """Like ``start`` but waits without blocking the event loop (the spawn itself is
        synchronous and quick, and happens on the calling thread — see the class docstring)."""
        if self.running:
            return self
        deadline = time.monotonic() + self._ready_timeout_s
        try:
            async with httpx.AsyncClient() as client:
                for _ in range(_PORT_ATTEMPTS):
                    self._spawn()
                    state = "wait"
                    while state == "wait":
                        state = self._judge(await self._aprobe(client, deadline), deadline)
                        if state == "wait":
                            await asyncio.sleep(self._poll_interval_s)
                    if state == "ready":
                        return self
        except BaseException:
            self.stop()  # cancelled (Ctrl-C) while waiting: leave nothing behind
            raise
        raise self._fail("kept losing its port to other processes")

    def stop(self) -> None:
        """Stop the server: SIGTERM, bounded wait, SIGKILL, bounded wait. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs _terminate once, then detaches itself
            self._finalizer = None
        self._proc = None
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None
            self._log_path = None

    async def aclose(self) -> None:
        """Like ``stop`` but waits for a graceful exit without blocking the event loop."""
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                deadline = time.monotonic() + self._stop_timeout_s
                while proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(self._poll_interval_s)
        finally:
            self.stop()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------------

    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._start_s is None:
            raise UsageError("the local model server is not running: start() it or use `with`")
        return self._proc

    def _spawn(self) -> None:
        self.stop()
        log_dir = self._log_dir
        if log_dir is None:
            log_dir = self._own_log_dir = Path(tempfile.mkdtemp(prefix="axo-llama-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self._port = _free_port()
        self._log_path = log_dir / f"llama-server-{self._port}.log"
        self._start_s = None
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path)]
        command += ["--model_alias", self.alias, "--host", HOST, "--port", str(self._port)]
        command += ["--interrupt_requests", "False", "--use_mlock", "False"]
        command += self.options.to_args()
        self._spawned_at = time.monotonic()
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(os.environ),
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        self._pid = self._proc.pid
        self._finalizer = weakref.finalize(self, _terminate, self._proc, self._stop_timeout_s)

    def _probe(self, client: httpx.Client, deadline: float) -> bool:
        try:
            response = client.get(f"{self._url()}/models", timeout=_probe_timeout(deadline))
        except httpx.HTTPError:
            return False
        return self._answers(response)

    async def _aprobe(self, client: httpx.AsyncClient, deadline: float) -> bool:
        try:
            response = await client.get(f"{self._url()}/models", timeout=_probe_timeout(deadline))
        except httpx.HTTPError:
            return False
        return self._answers(response)

    def _url(self) -> str:
        return f"http://{HOST}:{self._port}/v1"

    def _answers(self, response: httpx.Response) -> bool:
        # Another process may have taken the port between _free_port() and the bind: check
        # that the answer names our model.
        if response.status_code != 200:
            return False
        try:
            ids = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            return False
        return self.alias in ids

    def _judge(self, answered: bool, deadline: float) -> Literal["ready", "wait", "retry"]:
        proc = self._proc
        assert proc is not None
        if answered and proc.poll() is None:
            self._start_s = time.monotonic() - self._spawned_at
            return "ready"
        if proc.poll() is not None:
            tail = self._tail()
            if "address already in use" in tail.lower():
                return "retry"
            raise self._fail(f"exited with status {proc.returncode}", tail)
        if time.monotonic() >= deadline:
            raise self._fail(f"did not answer within {self._ready_timeout_s:g} s", self._tail())
        return "wait"

    def _fail(self, what: str, tail: str = "") -> ProviderError:
        # Keep a failed server's log: the message points at it.
        self._own_log_dir = None
        log = self._log_path
        self.stop()
        message = f"local model server for {self.model_path.name} {what}; log: {log}"
        if tail:
            message += "\n--- last lines of its output ---\n" + tail
        return ProviderError(message, retryable=False)

    def _tail(self) -> str:
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_bytes()[-_TAIL_CHARS:].decode("utf-8", "replace")
        except OSError:
            return ""
        return text.strip()


def _terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Stop ``proc`` and reap it; shared by ``stop()``, garbage collection and interpreter exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout_s)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _probe_timeout(deadline: float) -> float:
    return max(0.05, min(2.0, deadline - time.monotonic()))


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to kill the child when its parent dies, else None.

    SIGKILL rather than SIGTERM: uvicorn's graceful SIGTERM waits for a running generation to
    end, and an orphaned server has nothing worth flushing.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


# -- sharing -----------------------------------------------------------------------------------


class LocalServerPoolStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a pool; ``starts`` counts server starts, restarts included."""

    servers: int
    running: int
    starts: int


class LocalServerPool:
    """Servers keyed by (model file, options): agents naming the same local model share one.

    A server is started on the first ``get`` for its key (again if it has died) and every
    server is stopped by ``aclose`` / ``close`` or when the pool is used as a context manager.
    """

    def __init__(
        self,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        ready_timeout_s: float = 60.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._log_dir = log_dir
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._servers: dict[tuple[Path, ServerOptions], LocalServer] = {}
        self._locks: dict[tuple[Path, ServerOptions], asyncio.Lock] = {}
        self._starts = 0

    async def get(
        self, model_path: str | os.PathLike[str], options: ServerOptions = ServerOptions()
    ) -> LocalServer:
        """Return the running server for this model and options, starting it if needed."""
        key = (Path(model_path).expanduser().resolve(), options)
        async with self._locks.setdefault(key, asyncio.Lock()):
            server = self._servers.get(key)
            if server is None:
                server = self._servers[key] = LocalServer(
                    key[0],
                    options,
                    log_dir=self._log_dir,
                    ready_timeout_s=self._ready_timeout_s,
                    stop_timeout_s=self._stop_timeout_s,
                )
            if not server.running:
                self._starts += 1
                await server.astart()
            return server

    def servers(self) -> Iterator[LocalServer]:
        return iter(list(self._servers.values()))

    async def aclose(self) -> None:
        servers = list(self._servers.values())
        self._servers.clear()
        try:
            await asyncio.gather(*(s.aclose() for s in servers))
        finally:
            for server in servers:
                server.stop()

    def close(self) -> None:
        servers = list(self._servers.values())
        self._servers.clear()
        for server in servers:
            server.stop()

    def statistics(self) -> LocalServerPoolStatistics:
        return LocalServerPoolStatistics(
            servers=len(self._servers),
            running=sum(s.running for s in self._servers.values()),
            starts=self._starts,
        )

    async def __aenter__(self) -> LocalServerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
