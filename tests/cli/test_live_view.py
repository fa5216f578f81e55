"""``axo run`` on a terminal: the live table of agents, tokens and time, then the result.

The command runs in a pseudo-terminal (so it sees a TTY, as a user's shell gives it) against
the fake LLM; what the terminal received is read back, escape sequences and all.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from axo.testing import FakeLLM, Reply

WORKFLOW = """
providers:
  fake: {type: openai, base_url: "BASE", max_retries: 0, timeout: 30}
agents:
  - {id: drafter}
  - {id: checker, depends_on: [drafter]}
"""
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def read_until(fd: int, seen: list[str], done: str | None, timeout: float) -> str:
    """What the terminal got, until ``done`` appears in it or (``done`` None) the other end
    closes; fails at the deadline."""
    deadline = time.monotonic() + timeout
    while done is None or done not in _ESCAPES.sub("", "".join(seen)):
        left = deadline - time.monotonic()
        assert left > 0, f"waited {timeout}s for {done!r}; the terminal got: {''.join(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            chunk = b""
        if not chunk:
            assert done is None, f"closed before {done!r}: {''.join(seen)!r}"
            break
        seen.append(chunk.decode("utf-8", "replace"))
    return _ESCAPES.sub("", "".join(seen))


def test_a_run_on_a_terminal_shows_a_live_table_then_the_result(tmp_path: Path) -> None:
    scripts = {
        "drafter": [Reply("the draft", delay=2.0, prompt_tokens=11, completion_tokens=7)],
        "checker": [Reply("looks right", prompt_tokens=13, completion_tokens=5)],
    }
    with FakeLLM(scripts=scripts) as fake:
        wf = tmp_path / "wf.yaml"
        wf.write_text(WORKFLOW.replace("BASE", fake.base_url))
        main, terminal = pty.openpty()
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
        env.pop("NO_COLOR", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "axo.cli", "run", str(wf), "--input", "x"],
            cwd=tmp_path,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        seen: list[str] = []
        try:
            # while the drafter waits for its answer, the table shows it running and the
            # checker waiting, with the clock in the footer
            live = read_until(main, seen, "running", timeout=60)
            frame = live[live.rindex("agent") :]
            assert "drafter" in frame and "checker" in frame
            assert "waiting" in frame
            shown = read_until(main, seen, None, timeout=60)
            assert proc.wait(timeout=60) == 0, shown
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            os.close(main)
    assert re.search(r"\d+\.\ds · \d+ tokens", shown), shown  # the live footer
    # the sink's output, then the final table (the live frames never show outputs)
    assert "looks right" in shown
    end = shown[shown.rindex("looks right") :]
    assert re.search(r"drafter\W+done\W+11\W+7\W", end), end  # tokens in and out
    assert re.search(r"checker\W+done\W+13\W+5\W", end), end
    assert re.search(r"succeeded in \d+\.\d+s · 36 tokens \(24 in, 12 out\)", end), end
