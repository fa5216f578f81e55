"""The ``axo`` command line.

Exit codes: 0 success, 1 the run failed, 2 a usage or configuration error (one message, no
traceback), 130 interrupted.
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

    b = sub.add_parser("bench", help="run benchmarks (from the repository's benches/)")
    b.add_argument("names", nargs="*", metavar="NAME")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quick", action="store_true", help="small sizes: checks, not figures")

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
        print(json.dumps({"ok": True, "file": args.file, "agents": len(cfg.agents),
                          "workflows": [w.id for w in cfg.workflows],
                          "summaries": summaries}))
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
        raise UserError(f"{args.input_file}: cannot read the input file ({exc.strerror}) — "
                        f"check the path") from None


def _run(args: argparse.Namespace) -> int:
    from axo.api import run
    from axo.progress import ProgressView, print_result

    wf = load_workflow(args.file, args.workflow)
    text = _read_input(args)
    if args.json or args.quiet:
        result = run(wf, text, runtime=args.runtime, timeout=args.timeout)
    else:
        with ProgressView() as view:
            result = run(wf, text, runtime=args.runtime, timeout=args.timeout,
                         on_event=view.on_event)
    if args.json:
        sys.stdout.buffer.write(result.to_json() + b"\n")
        sys.stdout.flush()
    else:
        print_result(result)
    return 0 if result.ok else 1


def _bench(args: argparse.Namespace) -> int:
    root = Path.cwd()
    if not (root / "benches" / "runner.py").exists():
        raise UserError("axo bench runs the subjects in the repository's benches/ folder: "
                        "run it from the repository's top directory")
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
