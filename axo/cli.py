"""The ``axo`` command line.

Exit codes: 0 success, 1 the run failed, 2 a usage or configuration error (one message, no
traceback), 3 the run was stopped (SIGINT, SIGTERM, a STOP file, ``axo stop``) and can be
resumed, 130 interrupted outside a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from axo.errors import UserError
from axo.graph import to_dot, to_mermaid, to_text
from axo.workflow import load_file, load_workflow


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"axo: error: {message}\n")
        sys.exit(2)


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
    r.add_argument("--timeout", type=float, help="cancel the run after this many seconds")
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
        sys.stderr.write(f"{exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    raise AssertionError(args.command)


def _validate(args: argparse.Namespace) -> int:
    wf = load_file(args.file)
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


def _read_input(args: argparse.Namespace) -> str:
    if args.input_file is None:
        return args.input or ""
    if args.input_file == "-":
        return sys.stdin.read()
    path = Path(args.input_file)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"{args.input_file}: cannot read the input file ({exc.strerror}) — check the path"
        ) from None


def _run(args: argparse.Namespace) -> int:
    from axo.api import run
    from axo.progress import ProgressView, print_result

    wf = load_workflow(args.file, args.workflow)
    if args.resume and (args.input is not None or args.input_file is not None):
        raise UserError(
            "--resume continues a run with the input it started with; drop --input/--input-file"
        )
    text = "" if args.resume else _read_input(args)
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
        sys.stderr.write(
            f"run {result.run_id} stopped; continue it with: axo run "
            f"{args.file} --resume {result.run_id}"
            f"{' --workflow ' + args.workflow if args.workflow else ''}\n"
        )
        return 3
    return 0 if result.ok else 1


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
    wf = load_workflow(args.file, args.workflow)
    names = {a.id: a.display_name for a in wf.agents}
    render = {"text": to_text, "mermaid": to_mermaid, "dot": to_dot}[args.format]
    print(render(wf.graph, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
