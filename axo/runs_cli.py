"""``axo runs``, ``axo events RUN_ID`` and ``axo stop RUN_ID``: the state directory's runs."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from datetime import datetime

import msgspec

from axo.errors import UsageError
from axo.eventlog import CorruptLog, EventLog, EventLogFailed, RunInfo
from axo.runtime.pidfile import run_process_gone


def _open(state_dir: str) -> EventLog:
    if not os.path.exists(os.path.join(state_dir, "events.db")):
        raise UsageError(
            f"no event log in {state_dir} — runs started with `axo run` are "
            f"recorded there (or pass --state-dir)"
        )
    try:
        return EventLog.open(state_dir)
    except EventLogFailed as exc:
        raise _unusable(state_dir, exc) from None


def _unusable(state_dir: str, exc: Exception) -> UsageError:
    return UsageError(
        f"{exc} — the event log in {state_dir} can't be used: move it away or pass "
        f"another --state-dir"
    )


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def main(args: argparse.Namespace) -> int:
    try:
        return _command(args)
    except sqlite3.DatabaseError as exc:  # a SQLite file, but not axo's event log
        raise _unusable(args.state_dir, exc) from None


def _command(args: argparse.Namespace) -> int:
    if args.command == "stop":
        return _stop(args)
    with _open(args.state_dir) as log:
        if args.command == "runs":
            runs = [_effective(args.state_dir, r) for r in log.runs()]
            if args.json:
                print(json.dumps([msgspec.to_builtins(r) for r in runs]))
                return 0
            if not runs:
                print("no runs")
            for r in runs:
                wf = f"{r.workflow_file}" + (
                    f" --workflow {r.workflow_id}" if r.workflow_id else ""
                )
                print(f"{r.run_id}  {r.status:<9}  {_when(r.started)}  {r.events:>5} events  {wf}")
            return 0
        try:
            records = log.events(args.run_id)
            problem = None
        except CorruptLog as exc:
            records, problem = exc.records, str(exc)
        if not records and not any(r.run_id == args.run_id for r in log.runs()):
            raise UsageError(f"no run '{args.run_id}' in {args.state_dir} — `axo runs` lists them")
        if args.json:
            print(
                json.dumps(
                    {
                        "run_id": args.run_id,
                        "problem": problem,
                        "events": [
                            {
                                **msgspec.to_builtins(r),
                                "data": r.data if isinstance(r.data, dict) else r.data.hex(),
                            }
                            for r in records
                        ],
                    },
                    default=str,
                )
            )
        else:
            for r in records:
                data = r.data if isinstance(r.data, dict) else f"<{len(r.data)} bytes>"
                if isinstance(data, dict) and "reply" in data:
                    data = {**data, "reply": f"<{data['reply'].get('type', 'reply')}>"}
                print(
                    f"{r.seq:>5}  {_when(r.at)}  {r.kind:<16} {r.agent or '':<14} "
                    f"{json.dumps(data, default=str)[:160]}"
                )
            if problem:
                print(f"problem: {problem}", file=sys.stderr)
        return 0


def _effective(state_dir: str, run: RunInfo) -> RunInfo:
    """A run the log says is running whose process is gone was killed: "interrupted"
    (``--resume`` continues it)."""
    if run.status == "running" and run_process_gone(os.path.join(state_dir, "runs", run.run_id)):
        return msgspec.structs.replace(run, status="interrupted")
    return run


def _stop(args: argparse.Namespace) -> int:
    with _open(args.state_dir) as log:
        run = next((r for r in log.runs() if r.run_id == args.run_id), None)
    if run is not None:
        run = _effective(args.state_dir, run)
    if run is None:
        raise UsageError(
            f"no run '{args.run_id}' in {args.state_dir} — `axo runs` lists the runs "
            f"and their status"
        )
    if run.status == "interrupted":
        raise UsageError(
            f"run '{args.run_id}' is not running: the process that ran it is gone (killed?) — "
            f"continue it with axo run {run.workflow_file} --resume {args.run_id}"
            + (f" --state-dir {args.state_dir}" if args.state_dir != ".axo" else "")
        )
    if run.status != "running":
        raise UsageError(
            f"run '{args.run_id}' is not running (status: {run.status}"
            f"{', finished ' + _when(run.finished) if run.finished else ''}), so there is "
            f"nothing to stop — `axo runs` lists the runs and their status"
        )
    run_dir = os.path.join(args.state_dir, "runs", args.run_id)
    if not os.path.isdir(run_dir):
        raise UsageError(f"no run folder {run_dir} — `axo runs` lists the runs")
    with open(os.path.join(run_dir, "STOP"), "w") as f:
        f.write(f"stop requested at {time.time()}\n")
    print(f"asked run {args.run_id} to stop; it finishes its running agents first")
    return 0
