"""The ``axo`` command line.

Exit codes: 0 success, 1 the run failed, 2 a usage or configuration error (one message, no
traceback), 3 the run was stopped (SIGINT, SIGTERM, a STOP file, ``axo stop``) and can be
resumed, 130 interrupted outside a run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from axo.errors import ConfigError, UserError
from axo.eventrecords import EventLogFailed
from axo.graph import to_dot, to_mermaid, to_text
from axo.workflow import Workflow, load_file, load_workflow


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"axo: error: {message}\n")
        sys.exit(2)


def _seconds(text: str) -> float:
    """``--timeout``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a number of seconds — give e.g. --timeout 300"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a positive number of seconds — give e.g. --timeout 300"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="axo", description="An actor-model runtime for multi-agent LLM workflows.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="check a workflow file")
    v.add_argument("file")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    r = sub.add_parser("run", help="run a workflow")
    r.add_argument("file")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--input", help="the run's input text")
    src.add_argument("--input-file", help="read the run's input from a file ('-': stdin)")
    r.add_argument("--workflow", help="which workflow of the file to run")
    r.add_argument("--runtime", choices=["local", "multiproc"], default="local")
    r.add_argument("--timeout", type=_seconds, help="cancel the run after this many seconds")
    r.add_argument("--json", action="store_true", help="print the full result as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress view")
    r.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue a run that was stopped or "
        "killed (completed agents and LLM/tool results are not repeated)",
    )
    r.add_argument(
        "--state-dir",
        default=".axo",
        help="where the event log, checkpoints and workspaces live (.axo)",
    )
    r.add_argument(
        "--workspace", help="folder the file tools are confined to (default: the run's own folder)"
    )

    rs = sub.add_parser("runs", help="list the runs in the state directory")
    rs.add_argument("--state-dir", default=".axo")
    rs.add_argument("--json", action="store_true")

    ev = sub.add_parser("events", help="print a run's events")
    ev.add_argument("run_id", metavar="RUN_ID")
    ev.add_argument("--state-dir", default=".axo")
    ev.add_argument("--json", action="store_true")

    st = sub.add_parser("stop", help="ask a running run to stop gracefully (resumable)")
    st.add_argument("run_id", metavar="RUN_ID")
    st.add_argument("--state-dir", default=".axo")

    b = sub.add_parser("bench", help="run benchmarks (from the repository's benches/)")
    b.add_argument("names", nargs="*", metavar="NAME")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quick", action="store_true", help="small sizes: checks, not figures")

    from axo.mcp.cli import add_commands

    add_commands(sub)

    g = sub.add_parser("graph", help="print a workflow's DAG")
    g.add_argument("file")
    g.add_argument("--workflow")
    g.add_argument("--format", choices=["text", "mermaid", "dot"], default="text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``axo`` command; return its exit code (see the module docstring).

    A closed stdout (``axo runs | head``) ends the command quietly with 141, the status of a
    process killed by SIGPIPE, as other command-line tools report it.
    """
    try:
        try:
            code = _main(argv)
        except SystemExit:  # argparse's --help and usage errors: flush what they printed
            sys.stdout.flush()
            raise
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests)
        pass


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "run":
            return _run(args)
        if args.command == "graph":
            return _graph(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "mcp":
            from axo.mcp.cli import run_command

            return run_command(args)
        if args.command in ("runs", "events", "stop"):
            from axo import runs_cli

            return runs_cli.main(args)
    except UserError as exc:
        if getattr(args, "json", False) and args.command != "validate":  # it printed its own
            print(json.dumps({"ok": False, "errors": _problems(args, exc)}))
        sys.stderr.write(f"{exc}\n")
        return 2
    except EventLogFailed as exc:
        state_dir = getattr(args, "state_dir", ".axo")
        message = f"{exc} — the event log in {state_dir} can't be used: move it away or pass "
        message += "another --state-dir"
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "errors": _problems(args, UserError(message))}))
        sys.stderr.write(f"{message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    raise AssertionError(args.command)


def _validate(args: argparse.Namespace) -> int:
    try:
        wf = load_file(args.file, known_tools=_builtin_names())
        return _validated(args, wf)
    except UserError as exc:
        if args.json:
            print(json.dumps({"ok": False, "file": args.file, "errors": _problems(args, exc)}))
        raise


def _problems(args: argparse.Namespace, exc: UserError) -> list[dict[str, object]]:
    if isinstance(exc, ConfigError):
        return [
            {"file": p.file, "line": p.line, "path": p.path, "message": p.message, "fix": p.fix}
            for p in exc.problems
        ]
    message, _, fix = str(exc).partition(" — ")
    return [
        {
            "file": getattr(args, "file", None),
            "line": None,
            "path": None,
            "message": message,
            "fix": fix,
        }
    ]


def _validated(args: argparse.Namespace, wf: Workflow) -> int:
    cfg = wf.config
    summaries = []
    if cfg.workflows:
        for w in cfg.workflows:
            summaries.append(wf.select(w.id).summary())
    else:
        summaries.append(wf.summary())
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "file": args.file,
                    "agents": len(cfg.agents),
                    "workflows": [w.id for w in cfg.workflows],
                    "summaries": summaries,
                }
            )
        )
    else:
        for s in summaries:
            print(f"ok  {args.file}: {s}")
    return 0


def _builtin_names() -> list[str]:
    """The tools a run started from the command line can have, besides MCP servers'."""
    from axo.tools.builtins import builtin_tools

    return [t.name for t in builtin_tools()]


def _read_input(args: argparse.Namespace) -> str:
    if args.input_file is None:
        return args.input or ""
    try:
        if args.input_file == "-":
            data = sys.stdin.buffer.read()
        else:
            path = Path(args.input_file)
            if path.exists() and not path.is_file():  # a folder, a pipe, a device
                raise UserError(
                    f"{args.input_file}: not a regular file — give a text file, "
                    "or - to read standard input"
                )
            data = path.read_bytes()
        return data.decode("utf-8")
    except OSError as exc:
        raise UserError(
            f"{args.input_file}: cannot read the input file ({exc.strerror}) — check the path"
        ) from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{args.input_file}: the input is not UTF-8 text (byte {exc.start}: "
            f"{exc.reason}) — convert it to UTF-8, e.g. with iconv"
        ) from None


def _check_folder(option: str, folder: str | None, default: str = "") -> None:
    """A folder option must name a folder, or nothing yet (it is made)."""
    if folder is None:
        return
    if not folder.strip():
        raise UserError(f"{option} '{folder}': give a folder{default}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(
            f"{option} {folder}: not a directory — pass a folder (it is created if missing)"
        )


def _check_state_dir(state_dir: str) -> None:
    """The state directory must be a folder axo can write in, or one it can create."""
    _check_folder("--state-dir", state_dir, " (the default is .axo)")
    try:
        os.makedirs(os.path.join(state_dir, "runs"), exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--state-dir {state_dir}: cannot create the state directory there "
            f"({exc.strerror}) — pass a folder you can write in (it is created if missing)"
        ) from None


def _run(args: argparse.Namespace) -> int:
    from axo.api import run
    from axo.progress import ProgressView, print_result

    wf = load_workflow(args.file, args.workflow, known_tools=_builtin_names())
    if args.resume and (args.input is not None or args.input_file is not None):
        raise UserError(
            "--resume continues a run with the input it started with; drop --input/--input-file"
        )
    text = "" if args.resume else _read_input(args)
    _check_state_dir(args.state_dir)
    _check_folder("--workspace", args.workspace)
    options = {
        "runtime": args.runtime,
        "timeout": args.timeout,
        "state_dir": args.state_dir,
        "resume": args.resume,
        "workspace": args.workspace,
        "handle_signals": True,
    }
    if args.json or args.quiet:
        result = run(wf, text, **options)
    else:
        with ProgressView() as view:
            result = run(wf, text, on_event=view.on_event, **options)
    if args.json:
        sys.stdout.buffer.write(result.to_json() + b"\n")
        sys.stdout.flush()
    else:
        print_result(result)
    if result.status == "stopped":
        again = _resume_command(args, result.run_id)
        sys.stderr.write(f"run {result.run_id} stopped; continue it with: {again}\n")
        return 3
    return 0 if result.ok else 1


def _resume_command(args: argparse.Namespace, run_id: str) -> str:
    words = ["axo", "run", args.file, "--resume", run_id]
    if args.workflow:
        words += ["--workflow", args.workflow]
    if os.path.normpath(args.state_dir) != ".axo":
        words += ["--state-dir", args.state_dir]
    if args.runtime != "local":
        words += ["--runtime", args.runtime]
    return " ".join(shlex.quote(w) for w in words)


def _bench(args: argparse.Namespace) -> int:
    root = Path.cwd()
    if not (root / "benches" / "runner.py").exists():
        raise UserError(
            "axo bench runs the subjects in the repository's benches/ folder: "
            "run it from the repository's top directory"
        )
    sys.path.insert(0, str(root))
    from benches.runner import main as bench_main

    return bench_main(args.names, as_json=args.json, quick=args.quick)


def _graph(args: argparse.Namespace) -> int:
    wf = load_workflow(args.file, args.workflow, known_tools=_builtin_names())
    names = dict(wf.labels)  # secrets in names shown as ***
    render = {"text": to_text, "mermaid": to_mermaid, "dot": to_dot}[args.format]
    print(render(wf.graph, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
